"""Headless CellProfiler per plate: illumination functions, then segmentation and single-cell crops.

CellProfiler (4.2.8.1, its own venv) runs only as an external executable; image sets reach it as a
LoadData CSV (``--data-file``) of .npy copies of the TIFFs, so file names need no regular expression and no
Bio-Formats reader is opened per file. The analysis pipeline only identifies nuclei and cells (cells touching
the field border discarded) and saves each field's corrected channels and Cells label matrix; the cells are
measured (regionprops) and cropped here in one pass per field, then those full-size images are deleted.
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
from skimage.measure import regionprops_table

from cellvae.core.channels import STAINS, crop_column, file_column
from cellvae.core.files import write_csv

FILE_COLUMNS = {stain: file_column(stain) for stain in STAINS}
FIELD_COLUMNS = ["plate", "well", "site", *FILE_COLUMNS.values()]
QUARANTINE_COLUMNS = ["plate", "well", "site", "file", "reason"]
CROP_COLUMNS = [crop_column(stain) for stain in STAINS]
CELL_COLUMNS = [
    "plate",
    "well",
    "site",
    "field",
    "label",
    "bbox_min_x",
    "bbox_min_y",
    "bbox_max_x",
    "bbox_max_y",
    "area",
    "center_x",
    "center_y",
    *CROP_COLUMNS,
]
FIELDS_SUMMARY_COLUMNS = ["plate", "well", "site", "field", "nuclei", "cells", "border_cells"]
FIELD_IMAGES = "fields"  # analysis.cppipe's SaveImages folder: <DAPI stem>_Corr<Channel>.tiff, <DAPI stem>_Cells.npy


class CellProfilerNotFoundError(FileNotFoundError):
    """The configured CellProfiler executable does not exist."""

    def __init__(self, executable):
        super().__init__(
            f"cellprofiler executable '{executable}' not found (config key cellprofiler.executable): "
            "run 'make setup' to install CellProfiler 4.2.8.1 into .venv-cellprofiler, "
            "or point the key to your own install"
        )


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


def _npy_name(tiff_name):
    return f"{Path(tiff_name).stem}.npy"


def _copy_as_npy(fields, image_dir, raw_dir):
    """Every channel TIFF of the fields as <stem>.npy in raw_dir, same pixels.

    LoadData reads an .npy with numpy and scales its integers to 0-1 as it does a TIFF's (uint16 / 65535),
    where a TIFF costs a Bio-Formats reader per file (~0.15 s, half of LoadData's time per field).
    """
    raw_dir.mkdir()
    for name in fields[list(FILE_COLUMNS.values())].to_numpy().ravel():
        np.save(raw_dir / _npy_name(name), tifffile.imread(Path(image_dir) / name))


def _load_data(fields, raw_dir, functions=None):
    """The LoadData CSV table: metadata, raw channels (.npy copies in raw_dir) and optionally the illumination
    functions (channel -> .npy path)."""
    table = pd.DataFrame(
        {"Metadata_Plate": fields["plate"], "Metadata_Well": fields["well"], "Metadata_Site": fields["site"]}
    )
    for channel, column in FILE_COLUMNS.items():
        table[f"FileName_Orig{channel}"] = fields[column].map(_npy_name)
        table[f"PathName_Orig{channel}"] = str(Path(raw_dir).resolve())
        if functions is not None:
            table[f"FileName_Illum{channel}"] = Path(functions[channel]).name
            table[f"PathName_Illum{channel}"] = str(Path(functions[channel]).resolve().parent)
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
    write_csv(load_data, data_file)
    output = work_dir / "output"
    output.mkdir()
    command = [
        executable,
        "-c",
        "-r",
        "-p",
        str(Path(pipeline).resolve()),
        "--data-file",
        str(data_file),
        "-i",
        str(work_dir),
        "-o",
        str(output),
        "-t",
        str(work_dir),
    ]
    with _open_log(log_path) as log:
        log.write(f"$ {' '.join(command)}\n")
        log.flush()
        returncode = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT).returncode
    if returncode != 0:
        raise RuntimeError(f"CellProfiler failed on plate {plate} (exit code {returncode}): see {log_path}")
    return output


def _publish(moves):
    """Move each staged file or folder onto its output path (staged -> output), replacing what is there."""
    for staged, path in moves.items():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        _remove([path])
        os.replace(staged, path)


def _remove(paths):
    """Delete earlier outputs, so that a failed run never leaves a complete-looking set behind."""
    for path in map(Path, paths):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def _work_dir(output):
    """A scratch dir beside an output (same file system, so results move into place atomically)."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))


def _check_stains(functions):
    if sorted(functions) != sorted(STAINS):
        raise ValueError(f"illumination functions given for {sorted(functions)}; expected one per stain {STAINS}")


def run_illumination(fields, image_dir, executable, pipeline, log_path, *, functions, fields_csv, quarantine_csv):
    """Check the plate's fields, then compute each stain's illumination function (float32 .npy; functions:
    stain -> path) with one CellProfiler run; write the readable fields to fields_csv and the quarantined
    files to quarantine_csv.
    """
    executable = _resolve_executable(executable)
    _check_stains(functions)
    plate = _plate(fields)
    _remove([*functions.values(), fields_csv, quarantine_csv])
    with _open_log(log_path) as log:
        readable, quarantined = check_fields(fields, image_dir, lambda line: log.write(line + "\n"))
    work_dir = _work_dir(fields_csv)
    try:
        _copy_as_npy(readable, image_dir, work_dir / "raw")
        output = _run_cellprofiler(
            executable, pipeline, _load_data(readable, work_dir / "raw"), work_dir, plate, log_path
        )
        staging = work_dir / "staging"
        staging.mkdir()
        moves = {}
        for stain, path in functions.items():
            function = np.load(output / f"illum_{stain}.npy").astype(np.float32)
            np.save(staging / f"illum_{stain}.npy", function)
            moves[staging / f"illum_{stain}.npy"] = path
        write_csv(quarantined, staging / "quarantine.csv")
        write_csv(readable, staging / "fields.csv")
        _publish({**moves, staging / "quarantine.csv": quarantine_csv, staging / "fields.csv": fields_csv})
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def measure_cells(labels, channels):
    """One row per cell of a label image: label, bounding box, area, centre and, per channel, the mean and
    integrated intensity on CellProfiler's 0-1 scale (uint16 / 65535).

    skimage regionprops, with CellProfiler's definitions: area in pixels, bounding box minimum inclusive and
    maximum exclusive, centre = mean pixel position, x = column. Intensities are per-label sums of the integer
    pixels (exact), scaled once: no full-size floating-point copy of the channels.
    """
    props = pd.DataFrame(regionprops_table(labels, properties=["label", "bbox", "area", "centroid"]))
    table = pd.DataFrame(
        {
            "label": props["label"],
            "bbox_min_x": props["bbox-1"],
            "bbox_min_y": props["bbox-0"],
            "bbox_max_x": props["bbox-3"],
            "bbox_max_y": props["bbox-2"],
            "area": props["area"].astype(int),
            "center_x": props["centroid-1"],
            "center_y": props["centroid-0"],
        }
    )
    for channel in STAINS:
        integrated = ndimage.sum_labels(channels[channel], labels, index=table["label"]) / 65535.0
        table[f"intensity_mean_{channel.lower()}"] = integrated / table["area"]
        table[f"intensity_integrated_{channel.lower()}"] = integrated
    return table


def _saved_field_image(images, stem, suffix, plate, log_path):
    """A full-size image that analysis.cppipe saved for one field; RuntimeError naming it when absent."""
    path = images / f"{stem}_{suffix}"
    if not path.is_file():
        raise RuntimeError(f"CellProfiler wrote no {path.name} for plate {plate}: see {log_path}")
    return np.load(path) if path.suffix == ".npy" else tifffile.imread(path)


def crop_and_measure(fields, images, crops_dir, plate, log_path):
    """Measure every cell of the fields' label matrices saved in images and cut its bounding box out of the
    saved corrected channels, zero outside the cell, into crops_dir/<Channel>/ (uint16 TIFF); then delete the
    full-size field images.

    ``fields``: one row per field with plate, well, site, field (DAPI file name) and cells (CellProfiler's
    count, checked against the label matrix). Returns the cells table with measurements and crop paths
    (relative to crops_dir).
    """
    images, crops_dir = Path(images), Path(crops_dir)
    for channel in STAINS:
        (crops_dir / channel).mkdir(parents=True, exist_ok=True)
    tables = []
    for field in fields.itertuples(index=False):
        stem = Path(field.field).stem
        labels = _saved_field_image(images, stem, "Cells.npy", plate, log_path)
        channels = {
            channel: _saved_field_image(images, stem, f"Corr{channel}.tiff", plate, log_path) for channel in STAINS
        }
        cells = measure_cells(labels, channels)
        if cells["label"].tolist() != list(range(1, field.cells + 1)):
            raise RuntimeError(
                f"{field.field} (plate {plate}): its label image does not hold labels 1..{field.cells} "
                f"(CellProfiler's cell count); see {log_path}"
            )
        for channel in STAINS:
            cells[f"crop_{channel.lower()}"] = f"{channel}/{stem}_Cells_" + cells["label"].astype(str) + ".tiff"
        for cell in cells.itertuples(index=False):
            box = (slice(cell.bbox_min_y, cell.bbox_max_y), slice(cell.bbox_min_x, cell.bbox_max_x))
            outside = labels[box] != cell.label
            for channel, pixels in channels.items():
                crop = pixels[box].copy()
                crop[outside] = 0
                tifffile.imwrite(
                    crops_dir / getattr(cell, f"crop_{channel.lower()}"),
                    crop,
                    photometric="minisblack",
                    metadata=None,
                    compression="zlib",
                    compressionargs={"level": 1},
                )
        tables.append(cells.assign(plate=field.plate, well=field.well, site=field.site, field=field.field))
    if images.exists():
        shutil.rmtree(images)
    cells = pd.concat(tables, ignore_index=True)
    identity = ["plate", "well", "site", "field"]
    return cells[[*identity, *(column for column in cells if column not in identity)]]


def _field_counts(fields, measurements):
    """Per field: plate, well, site, field (DAPI file name), nuclei, cells and border_cells.

    nuclei: every nucleus IdentifyPrimaryObjects kept (size filter only); each seeds one cell, and the cells
    touching the field border are discarded by IdentifySecondaryObjects, so border_cells = nuclei - cells.
    """
    image = pd.read_csv(measurements / "Image.csv", usecols=["FileName_OrigDAPI", "Count_Nuclei", "Count_Cells"])
    summary = fields.assign(npy=fields["file_dapi"].map(_npy_name)).merge(
        image, left_on="npy", right_on="FileName_OrigDAPI", validate="one_to_one"
    )
    summary = summary.rename(columns={"file_dapi": "field", "Count_Nuclei": "nuclei", "Count_Cells": "cells"})
    summary = summary.astype({"nuclei": int, "cells": int})
    summary["border_cells"] = summary["nuclei"] - summary["cells"]
    return summary[FIELDS_SUMMARY_COLUMNS]


def run_segmentation(
    fields_csv,
    image_dir,
    functions,
    executable,
    pipeline,
    log_path,
    *,
    cells_csv,
    summary_csv,
    crops_dir,
    measurements_dir,
):
    """Segment nuclei and cells (one CellProfiler run, with the illumination functions: stain -> .npy path),
    measure and crop each cell per stain, tabulate them.

    Writes cells_csv (crop paths relative to crops_dir), summary_csv (nuclei, cells and border-discarded cells
    per field), crops_dir/<Stain>/*.tiff, and in measurements_dir CellProfiler's Image.csv and the per-cell
    measurements Cells.csv (cells_csv's columns plus intensities).
    """
    executable = _resolve_executable(executable)
    _check_stains(functions)
    fields = pd.read_csv(fields_csv)[FIELD_COLUMNS]
    plate = _plate(fields)
    _remove([cells_csv, summary_csv, crops_dir, measurements_dir])
    work_dir = _work_dir(cells_csv)
    try:
        _copy_as_npy(fields, image_dir, work_dir / "raw")
        output = _run_cellprofiler(
            executable, pipeline, _load_data(fields, work_dir / "raw", functions), work_dir, plate, log_path
        )
        summary = _field_counts(fields, output / "measurements")
        cells = crop_and_measure(summary, output / FIELD_IMAGES, output / "crops", plate, log_path)
        write_csv(cells[CELL_COLUMNS], output / "cells.csv")
        write_csv(cells.drop(columns=CROP_COLUMNS), output / "measurements" / "Cells.csv")
        write_csv(summary, output / "fields_summary.csv")
        with _open_log(log_path) as log:
            log.write(
                f"plate {plate}: {summary['cells'].sum()} cells in {len(summary)} fields, "
                f"{summary['border_cells'].sum()} more touching the field border discarded\n"
            )
        _publish(
            {
                output / "crops": crops_dir,
                output / "measurements": measurements_dir,
                output / "fields_summary.csv": summary_csv,
                output / "cells.csv": cells_csv,
            }
        )
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
