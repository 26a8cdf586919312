"""CellProfiler's own measurements of single-cell crops: the classic baseline of the MoA comparison.

Each crop (H×W×3, channels DAPI, Tubulin, Actin, uint16) becomes three 16-bit TIFFs and one row of a LoadData CSV;
one headless CellProfiler run (pipelines/measure_crops.cppipe) segments and measures every cell of every crop, and
the cell whose centroid is nearest the crop's centre is kept, with its nucleus. TIFFs, not .npy copies as in
cellvae.imaging.cellprofiler: Bio-Formats gives an image its bit depth (65535), which MeasureColocalization's Costes
thresholds use; a .npy image has depth 1 there and its Costes coefficients are meaningless.

Columns keep CellProfiler's names with the object as prefix (Cells_AreaShape_Zernike_2_0,
Cells_Intensity_MeanIntensity_Tubulin, Nuclei_Texture_…); positions and object numbers are dropped. Non-finite
values of a found cell (e.g. a Costes coefficient of a channel without signal above its threshold) become 0, so the
columns are the same for every batch; columns constant over the crops are kept (the caller sees all crops at once).
"""

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

from cellvae.core.files import write_csv
from cellvae.imaging.cellprofiler import _resolve_executable

IMAGES = ("DNA", "Tubulin", "Actin")  # the pipeline's image names, in the crops' channel order
OBJECTS = ("Cells", "Nuclei")
PLUGINS = Path(__file__).resolve().parents[2] / "pipelines" / "plugins"  # MeasureGranularity for scikit-image ≥ 0.20
NOT_FEATURES = (  # where an object is, and which: not what it looks like
    "ImageNumber",
    "ObjectNumber",
    "Metadata_",
    "Location_",
    "Parent_",
    "Children_",
    "Number_Object_Number",
    "AreaShape_Center_",
    "AreaShape_BoundingBoxMaximum_",
    "AreaShape_BoundingBoxMinimum_",
    "Neighbors_FirstClosestObjectNumber_",
    "Neighbors_SecondClosestObjectNumber_",
)
LOG_NAME = "measure_crops.log"


def _check_crops(crops):
    for index, crop in enumerate(crops):
        if crop.ndim != 3 or crop.shape[2] != len(IMAGES) or not np.issubdtype(crop.dtype, np.integer):
            raise ValueError(
                f"crop {index}: expected an H×W×{len(IMAGES)} integer array ({', '.join(IMAGES)}), "
                f"got shape {crop.shape} {crop.dtype}"
            )


def _write_images(crops, folder):
    """Each crop's channels as 16-bit TIFFs in folder; returns the LoadData table (one row per crop)."""
    folder.mkdir()
    rows = []
    for index, crop in enumerate(crops):
        row = {"Metadata_Crop": index}
        for channel, image in enumerate(IMAGES):
            name = f"crop{index}_{image}.tiff"
            tifffile.imwrite(folder / name, np.ascontiguousarray(crop[..., channel]), photometric="minisblack")
            row[f"FileName_{image}"] = name
            row[f"PathName_{image}"] = str(folder.resolve())
        rows.append(row)
    return pd.DataFrame(rows)


def _run(executable, pipeline, load_data, scratch, log_path):
    """One headless CellProfiler run over every row of load_data; returns its output folder."""
    data_file = scratch / "load_data.csv"
    write_csv(load_data, data_file)
    output = scratch / "output"
    output.mkdir()
    command = [
        *(executable, "-c", "-r", "-p", str(Path(pipeline).resolve())),
        *("--plugins-directory", str(PLUGINS), "--data-file", str(data_file)),
        *("-i", str(scratch), "-o", str(output), "-t", str(scratch)),
    ]
    with open(log_path, "a") as log:
        log.write(f"$ {' '.join(command)}\n")
        log.flush()
        returncode = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT).returncode
    if returncode != 0:
        raise RuntimeError(
            f"CellProfiler failed measuring {len(load_data)} crops (exit code {returncode}): see {log_path}"
        )
    return output


def _object_table(output, objects, log_path):
    """CellProfiler's table of one object type, feature columns prefixed with the object's name."""
    path = output / f"{objects}.csv"
    if not path.is_file():
        raise RuntimeError(f"CellProfiler wrote no {path.name}: see {log_path}")
    table = pd.read_csv(path)
    return table.rename(columns={column: f"{objects}_{column}" for column in table.columns})


def _is_feature(column):
    return not column.split("_", 1)[1].startswith(NOT_FEATURES)


def centre_cells(cells, nuclei, shapes):
    """The centre cell of each crop and its nucleus: one row per crop (index = crop), NaN where no cell was found;
    centre_distance is the pixels from the crop's centre to the cell's centroid.

    cells, nuclei: CellProfiler's prefixed tables (Cells_Metadata_Crop, Cells_Location_Center_X/Y,
    Cells_Parent_Nuclei, Nuclei_ObjectNumber, …); shapes: each crop's (height, width).
    """
    centres = pd.DataFrame(
        [((width - 1) / 2, (height - 1) / 2) for height, width in shapes], columns=["centre_x", "centre_y"]
    )
    cells = cells.join(centres, on="Cells_Metadata_Crop")
    cells["distance"] = np.hypot(
        cells["Cells_Location_Center_X"] - cells["centre_x"], cells["Cells_Location_Center_Y"] - cells["centre_y"]
    )
    nearest = cells.sort_values(["Cells_Metadata_Crop", "distance"]).drop_duplicates("Cells_Metadata_Crop")
    nearest = nearest.merge(
        nuclei,
        left_on=["Cells_Metadata_Crop", "Cells_Parent_Nuclei"],
        right_on=["Nuclei_Metadata_Crop", "Nuclei_ObjectNumber"],
        how="left",
        validate="one_to_one",
    )
    features = [column for column in nearest.columns if column.startswith(OBJECTS) and _is_feature(column)]
    nearest = nearest.rename(columns={"distance": "centre_distance"}).set_index("Cells_Metadata_Crop")
    return nearest[["centre_distance", *features]].reindex(range(len(shapes))).astype(np.float64)


def measure_crops(crops, executable, pipeline, work_dir):
    """CellProfiler's measurements of each crop's centre cell: one row per crop (crop = its index in crops, then
    cell_found, centre_distance and the features).

    cell_found is False where CellProfiler found no cell in a crop: its features are NaN (the caller decides);
    elsewhere non-finite values are 0. One CellProfiler run for all crops; its output goes to
    work_dir/measure_crops.log, which a RuntimeError names when the run fails. Scratch files are removed.
    """
    executable = _resolve_executable(executable)
    _check_crops(crops)
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    log_path = work_dir / LOG_NAME
    scratch = Path(tempfile.mkdtemp(prefix="measure_crops.", dir=work_dir))
    try:
        load_data = _write_images(crops, scratch / "images")
        output = _run(executable, pipeline, load_data, scratch, log_path)
        cells, nuclei = (_object_table(output, objects, log_path) for objects in OBJECTS)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    table = centre_cells(cells, nuclei, [crop.shape[:2] for crop in crops])
    found = table.notna().any(axis=1).rename("cell_found")
    values = table.to_numpy()
    values[found] = np.nan_to_num(values[found], nan=0.0, posinf=0.0, neginf=0.0)
    with open(log_path, "a") as log:
        log.write(f"{len(crops)} crops measured, {(~found).sum()} without a cell\n")
    table = pd.DataFrame(values, index=table.index, columns=table.columns)
    return pd.concat([found, table], axis=1).rename_axis("crop").reset_index()
