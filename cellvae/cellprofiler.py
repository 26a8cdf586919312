"""Headless CellProfiler per plate: illumination functions, then segmentation and single-cell crops.

CellProfiler (4.2.8.1, its own venv) runs only as an external executable; image sets reach it as a
LoadData CSV (``--data-file``), so file names need no regular expression. The analysis pipeline saves each
field's corrected channels and Cells label matrix; the per-cell crops are cut here (one pass per field
instead of CellProfiler's whole-image scan per cell), then those full-size images are deleted.
"""
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from scipy import ndimage

CHANNELS = ["DAPI", "Tubulin", "Actin"]
FILE_COLUMNS = {channel: f"file_{channel.lower()}" for channel in CHANNELS}
FIELD_COLUMNS = ["plate", "well", "site", *FILE_COLUMNS.values()]
QUARANTINE_COLUMNS = ["plate", "well", "site", "file", "reason"]
CELL_COLUMNS = ["plate", "well", "site", "field", "label",
                "bbox_min_x", "bbox_min_y", "bbox_max_x", "bbox_max_y", "area", "center_x", "center_y",
                *(f"crop_{channel.lower()}" for channel in CHANNELS)]
ILLUMINATION_OUTPUTS = ["quarantine.csv", "fields.csv", *(f"illum_{channel}.npy" for channel in CHANNELS)]
SEGMENTATION_OUTPUTS = ["cells.csv", "fields_summary.csv", "crops", "measurements"]
FIELD_IMAGES = "fields"  # analysis.cppipe's SaveImages folder: <DAPI stem>_Corr<Channel>.tiff, <DAPI stem>_Cells.npy
BBOX_COLUMNS = ["bbox_min_y", "bbox_min_x", "bbox_max_y", "bbox_max_x"]


class CellProfilerNotFoundError(FileNotFoundError):
    """The configured CellProfiler executable does not exist."""

    def __init__(self, executable):
        super().__init__(
            f"cellprofiler executable '{executable}' not found (config key cellprofiler.executable): "
            "run 'make setup' to install CellProfiler 4.2.8.1 into .venv-cellprofiler, "
            "or point the key to your own install")


def _tiff_problem(path):
    """Why a channel TIFF cannot be used (None if fine), and its shape."""
    if not path.is_file():
        return "missing", None
    if path.stat().st_size == 0:
        return "empty file", None
    try:
        pixels = tifffile.imread(path)
    except Exception as error:  # tifffile raises many types on corrupt files
        return f"unreadable ({type(error).__name__}: {error})", None
    if pixels.ndim != 2:
        return f"not a 2-D image (shape {pixels.shape})", None
    if pixels.size == 0:
        return "empty image", None
    return None, pixels.shape


def check_fields(fields, image_dir, log):
    """Decode every channel TIFF; return (readable fields, quarantined files).

    A field with any missing, unreadable, empty, non-2-D channel, or a shape unlike the plate's
    usual one, is quarantined; ``log`` (a callable taking one line) gets one line per bad file.
    """
    fields = fields.reset_index(drop=True)
    problems, shapes = [], {}
    for index, field in fields.iterrows():
        for column in FILE_COLUMNS.values():
            name = field[column]
            reason, shape = ("no file name", None) if pd.isna(name) else _tiff_problem(Path(image_dir) / name)
            if reason:
                problems.append((index, name, reason))
            shapes[index, column] = shape
    bad = {index for index, _, _ in problems}
    good_shapes = pd.Series([shape for (index, _), shape in shapes.items() if index not in bad])
    if len(good_shapes):
        plate_shape = good_shapes.mode()[0]
        for (index, column), shape in shapes.items():
            if index not in bad and shape != plate_shape:
                problems.append((index, fields.at[index, column], f"shape {shape} differs from {plate_shape}"))
    rows = []
    for index, name, reason in problems:
        plate, well, site = fields.loc[index, ["plate", "well", "site"]]
        log(f"quarantined {name}: {reason} (plate {plate}, well {well}, site {site})")
        rows.append((plate, well, site, name, reason))
    quarantined = pd.DataFrame(rows, columns=QUARANTINE_COLUMNS)
    readable = fields.drop(index={index for index, _, _ in problems}).reset_index(drop=True)
    if readable.empty:
        raise ValueError(f"no readable field among {len(fields)} in {image_dir}: all quarantined (see the log)")
    return readable, quarantined


def _plate(fields):
    plates = fields["plate"].unique()
    if len(plates) != 1:
        raise ValueError(f"expected the fields of one plate, got plates {list(plates)}")
    return plates[0]


def _load_data(fields, image_dir, illum_dir=None):
    """The LoadData CSV table: metadata, raw channels and optionally illumination functions."""
    table = pd.DataFrame({"Metadata_Plate": fields["plate"], "Metadata_Well": fields["well"],
                          "Metadata_Site": fields["site"]})
    for channel, column in FILE_COLUMNS.items():
        table[f"FileName_Orig{channel}"] = fields[column]
        table[f"PathName_Orig{channel}"] = str(Path(image_dir).resolve())
        if illum_dir is not None:
            table[f"FileName_Illum{channel}"] = f"illum_{channel}.npy"
            table[f"PathName_Illum{channel}"] = str(Path(illum_dir).resolve())
    return table


def _open_log(log_path):
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    return open(log_path, "a")


def _resolve_executable(executable):
    """The executable's path (a bare name is looked up on PATH); CellProfilerNotFoundError if absent."""
    executable = str(executable)
    found = executable if os.sep in executable else shutil.which(executable)
    if found is None or not os.access(found, os.X_OK) or not Path(found).is_file():
        raise CellProfilerNotFoundError(executable)
    return found


def _run_cellprofiler(executable, pipeline, load_data, work_dir, plate, log_path):
    """Run one headless CellProfiler job on a LoadData table; output goes to work_dir/output."""
    data_file = work_dir / "load_data.csv"
    load_data.to_csv(data_file, index=False)
    output = work_dir / "output"
    output.mkdir()
    command = [executable, "-c", "-r", "-p", str(Path(pipeline).resolve()), "--data-file", str(data_file),
               "-i", str(work_dir), "-o", str(output), "-t", str(work_dir)]
    with _open_log(log_path) as log:
        log.write(f"$ {' '.join(command)}\n")
        log.flush()
        returncode = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT).returncode
    if returncode != 0:
        raise RuntimeError(f"CellProfiler failed on plate {plate} (exit code {returncode}): see {log_path}")
    return output


def _publish(staging, out_dir):
    """Move every entry of staging into out_dir, replacing what is there."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for entry in staging.iterdir():
        _remove(out_dir, [entry.name])
        os.replace(entry, out_dir / entry.name)


def _remove(out_dir, names):
    """Delete earlier outputs, so that a failed run never leaves a complete-looking set behind."""
    for path in (out_dir / name for name in names):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def _work_dir(out_dir):
    """A scratch dir beside out_dir (same file system, so results move into place atomically)."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))


def run_illumination(fields, image_dir, out_dir, executable, pipeline, log_path):
    """Check the plate's fields, then compute illum_<Channel>.npy (float32) with one CellProfiler run.

    Writes out_dir/quarantine.csv, out_dir/fields.csv (readable fields) and the three functions.
    """
    executable = _resolve_executable(executable)
    out_dir = Path(out_dir)
    plate = _plate(fields)
    _remove(out_dir, ILLUMINATION_OUTPUTS)
    with _open_log(log_path) as log:
        readable, quarantined = check_fields(fields, image_dir, lambda line: log.write(line + "\n"))
    work_dir = _work_dir(out_dir)
    try:
        output = _run_cellprofiler(executable, pipeline, _load_data(readable, image_dir), work_dir, plate, log_path)
        staging = work_dir / "staging"
        staging.mkdir()
        for channel in CHANNELS:
            function = np.load(output / f"illum_{channel}.npy").astype(np.float32)
            np.save(staging / f"illum_{channel}.npy", function)
        quarantined.to_csv(staging / "quarantine.csv", index=False)
        readable.to_csv(staging / "fields.csv", index=False)
        _publish(staging, out_dir)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def _cells_table(fields, measurements):
    """One row per cell: field identity, bounding box, area, centre and the three crop paths."""
    image = pd.read_csv(measurements / "Image.csv", usecols=["ImageNumber", "FileName_OrigDAPI"])
    cells = pd.read_csv(measurements / "Cells.csv").merge(image, on="ImageNumber", validate="many_to_one")
    cells = cells.merge(fields, left_on="FileName_OrigDAPI", right_on="file_dapi", validate="many_to_one")
    table = cells.rename(columns={
        "FileName_OrigDAPI": "field", "ObjectNumber": "label",
        "AreaShape_BoundingBoxMinimum_X": "bbox_min_x", "AreaShape_BoundingBoxMinimum_Y": "bbox_min_y",
        "AreaShape_BoundingBoxMaximum_X": "bbox_max_x", "AreaShape_BoundingBoxMaximum_Y": "bbox_max_y",
        "AreaShape_Area": "area", "Location_Center_X": "center_x", "Location_Center_Y": "center_y"})
    crop_names = table["field"].map(lambda name: Path(name).stem) + "_Cells_" + table["label"].astype(str) + ".tiff"
    for channel in CHANNELS:
        table[f"crop_{channel.lower()}"] = f"crops/{channel}/" + crop_names
    return table.reindex(columns=CELL_COLUMNS)


def _saved_field_image(images, stem, suffix, plate, log_path):
    """A full-size image that analysis.cppipe saved for one field; RuntimeError naming it when absent."""
    path = images / f"{stem}_{suffix}"
    if not path.is_file():
        raise RuntimeError(f"CellProfiler wrote no {path.name} for plate {plate}: see {log_path}")
    return np.load(path) if path.suffix == ".npy" else tifffile.imread(path)


def write_crops(cells, output, plate, log_path):
    """Cut every cell's bounding box out of the saved corrected channels, zero outside the cell, into
    output/crops/<Channel>/ (uint16 TIFF), checking each box against CellProfiler's; then delete the
    full-size field images."""
    images = output / FIELD_IMAGES
    for channel in CHANNELS:
        (output / "crops" / channel).mkdir(parents=True, exist_ok=True)
    for field, field_cells in cells.groupby("field", sort=False):
        stem = Path(field).stem
        labels = _saved_field_image(images, stem, "Cells.npy", plate, log_path)
        channels = {channel: _saved_field_image(images, stem, f"Corr{channel}.tiff", plate, log_path)
                    for channel in CHANNELS}
        boxes = ndimage.find_objects(labels)
        for cell in field_cells.itertuples(index=False):
            box = boxes[cell.label - 1] if 0 < cell.label <= len(boxes) else None
            if box is None or [box[0].start, box[1].start, box[0].stop, box[1].stop] != [
                    getattr(cell, column) for column in BBOX_COLUMNS]:
                raise RuntimeError(f"cell {cell.label} of {field} (plate {plate}): its label image does not match "
                                   f"CellProfiler's bounding box; see {log_path}")
            outside = labels[box] != cell.label
            for channel, pixels in channels.items():
                crop = pixels[box].copy()
                crop[outside] = 0
                tifffile.imwrite(output / getattr(cell, f"crop_{channel.lower()}"), crop, compression="zlib",
                                 compressionargs={"level": 1})
    if images.exists():
        shutil.rmtree(images)


def _fields_summary(fields, measurements):
    """Nuclei and cell counts per field."""
    image = pd.read_csv(measurements / "Image.csv", usecols=["FileName_OrigDAPI", "Count_Nuclei", "Count_Cells"])
    summary = fields.merge(image, left_on="file_dapi", right_on="FileName_OrigDAPI", validate="one_to_one")
    summary = summary.rename(columns={"file_dapi": "field", "Count_Nuclei": "nuclei", "Count_Cells": "cells"})
    return summary[["plate", "well", "site", "field", "nuclei", "cells"]].astype({"nuclei": int, "cells": int})


def run_segmentation(fields_csv, image_dir, illum_dir, out_dir, executable, pipeline, log_path):
    """Segment nuclei and cells (one CellProfiler run), crop each cell per channel and tabulate them.

    Writes out_dir/cells.csv, out_dir/fields_summary.csv, out_dir/crops/<Channel>/*.tiff and
    CellProfiler's Image/Nuclei/Cells CSVs in out_dir/measurements/.
    """
    executable = _resolve_executable(executable)
    out_dir = Path(out_dir)
    fields = pd.read_csv(fields_csv)[FIELD_COLUMNS]
    plate = _plate(fields)
    _remove(out_dir, SEGMENTATION_OUTPUTS)
    work_dir = _work_dir(out_dir)
    try:
        output = _run_cellprofiler(executable, pipeline, _load_data(fields, image_dir, illum_dir),
                                   work_dir, plate, log_path)
        cells = _cells_table(fields, output / "measurements")
        write_crops(cells, output, plate, log_path)
        cells.to_csv(output / "cells.csv", index=False)
        _fields_summary(fields, output / "measurements").to_csv(output / "fields_summary.csv", index=False)
        _publish(output, out_dir)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
