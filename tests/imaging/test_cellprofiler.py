"""cellvae.imaging.cellprofiler: field checks, and one real illumination + analysis run on a BBBC021 field."""

import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
import tifffile

from cellvae.core.channels import STAINS
from cellvae.imaging.cellprofiler import (
    CELL_COLUMNS,
    FIELD_IMAGES,
    FIELDS_SUMMARY_COLUMNS,
    CellProfilerNotFoundError,
    check_fields,
    crop_and_measure,
    run_illumination,
    run_segmentation,
)
from cellvae.testing.workflow import CELLPROFILER, REPO

SHARED = REPO.parent / "shared"
CP_VENV = CELLPROFILER.parents[1]
PIPELINES = REPO / "pipelines"
REAL_DAPI = SHARED / "bbbc021/images/full_fov/Week1_150607_C02_s3_w1E54F0108-F44A-4F6E-9637-6A9DE80F0823.tif"
REAL_FIELD = {
    "plate": "Week1_22123",
    "well": "C02",
    "site": 3,
    "file_dapi": REAL_DAPI.name,
    "file_tubulin": "Week1_150607_C02_s3_w21E85592E-94B0-43AF-8EDA-40624931EA89.tif",
    "file_actin": "Week1_150607_C02_s3_w43361AA85-EDF4-4B17-996B-3C68924C5934.tif",
}
GARBAGE_FIELD = {
    "plate": "Week1_22123",
    "well": "C02",
    "site": 4,
    "file_dapi": "Week1_150607_C02_s4_w1GARBAGE.tif",
    "file_tubulin": REAL_FIELD["file_tubulin"],
    "file_actin": REAL_FIELD["file_actin"],
}

needs_cellprofiler = pytest.mark.skipif(
    not CELLPROFILER.exists(), reason=f"{CELLPROFILER} absent: run 'make setup' to install CellProfiler"
)
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} (real BBBC021 field) absent")


def field(site, **files):
    """A field row of plate P1 with one TIFF name per channel (overridable)."""
    return {
        "plate": "P1",
        "well": "B02",
        "site": site,
        **{f"file_{channel.lower()}": f"s{site}_{channel}.tif" for channel in STAINS},
        **files,
    }


def test_check_fields_quarantines_bad_fields(tmp_path):
    pixels = np.ones((8, 10), np.uint16)
    for site in range(1, 6):
        for channel in STAINS:
            tifffile.imwrite(tmp_path / f"s{site}_{channel}.tif", pixels)
    (tmp_path / "s2_DAPI.tif").write_bytes(b"not a tiff at all")
    (tmp_path / "s3_Actin.tif").write_bytes(b"")
    tifffile.imwrite(tmp_path / "s4_Tubulin.tif", np.ones((8, 12), np.uint16))
    tifffile.imwrite(tmp_path / "s5_DAPI.tif", np.ones((2, 8, 10), np.uint16))
    fields = pd.DataFrame([field(1), field(2), field(3), field(4), field(5), field(6, file_dapi="s1_DAPI.tif")])
    lines = []
    readable, quarantined = check_fields(fields, tmp_path, lines.append)
    assert readable["site"].tolist() == [1]
    reasons = dict(zip(quarantined["file"], quarantined["reason"]))
    expected = {
        "s2_DAPI.tif": "unreadable",
        "s3_Actin.tif": "empty file",
        "s4_Tubulin.tif": "shape (8, 12) differs",
        "s5_DAPI.tif": "not a 2-D image",
        "s6_Tubulin.tif": "missing",
        "s6_Actin.tif": "missing",
    }
    assert reasons.keys() == expected.keys()
    assert all(reasons[name].startswith(start) for name, start in expected.items())
    assert sorted(line.split(":")[0] for line in lines) == sorted(f"quarantined {name}" for name in expected)


def test_check_fields_raises_when_nothing_is_readable(tmp_path):
    with pytest.raises(ValueError, match="no readable field"):
        check_fields(pd.DataFrame([field(1)]), tmp_path, lambda line: None)


def illumination_files(folder):
    """run_illumination's output arguments in a folder, named as the workflow names them."""
    return {
        "functions": {stain: folder / f"illum_{stain}.npy" for stain in STAINS},
        "fields_csv": folder / "fields.csv",
        "quarantine_csv": folder / "quarantine.csv",
    }


def segmentation_files(folder):
    """run_segmentation's output arguments in a folder, named as the workflow names them."""
    return {
        "cells_csv": folder / "cells.csv",
        "summary_csv": folder / "fields_summary.csv",
        "crops_dir": folder / "crops",
        "measurements_dir": folder / "measurements",
    }


def test_missing_executable_is_a_clear_error(tmp_path):
    missing = tmp_path / "nowhere" / "cellprofiler"
    message = (
        f"cellprofiler executable '{missing}' not found (config key cellprofiler.executable): run 'make setup' "
        "to install CellProfiler 4.2.8.1 into .venv-cellprofiler, or point the key to your own install"
    )
    with pytest.raises(CellProfilerNotFoundError) as error:
        run_illumination(
            pd.DataFrame([field(1)]),
            tmp_path,
            missing,
            "illum.cppipe",
            tmp_path / "log",
            **illumination_files(tmp_path / "illum"),
        )
    assert str(error.value) == message
    with pytest.raises(CellProfilerNotFoundError, match="not found"):
        run_segmentation(
            tmp_path / "fields.csv",
            tmp_path,
            illumination_files(tmp_path / "illum")["functions"],
            missing,
            "analysis.cppipe",
            tmp_path / "log",
            **segmentation_files(tmp_path / "segmentation"),
        )


@needs_cellprofiler
@pytest.mark.cellprofiler
def test_pipelines_load_in_cellprofiler():
    script = (
        "import logging, sys; logging.disable(logging.WARNING)\n"
        "import cellprofiler_core.preferences as p; p.set_headless()\n"
        "from cellprofiler_core.pipeline import Pipeline\n"
        "from cellprofiler_core.utilities.core.modules import fill_modules; fill_modules()\n"
        "for path in sys.argv[1:]:\n"
        "    pipeline = Pipeline(); pipeline.load(path)\n"
        "    print(' '.join(module.module_name for module in pipeline.modules()))\n"
    )
    result = subprocess.run(
        [CP_VENV / "bin/python", "-c", script, PIPELINES / "illum.cppipe", PIPELINES / "analysis.cppipe"],
        capture_output=True,
        text=True,
        check=True,
    )
    illum, analysis = result.stdout.splitlines()[-2:]
    assert illum.split() == ["LoadData"] + ["CorrectIlluminationCalculate", "SaveImages"] * 3
    assert analysis.split() == [
        "LoadData",
        "CorrectIlluminationApply",
        "IdentifyPrimaryObjects",
        "IdentifySecondaryObjects",
        "ConvertObjectsToImage",
        *["SaveImages"] * 4,
        "ExportToSpreadsheet",
    ]


def saved_field(output, stem, labels):
    """What analysis.cppipe saves for one field: a label matrix and three distinct uint16 channels."""
    images = output / FIELD_IMAGES
    images.mkdir(parents=True, exist_ok=True)
    np.save(images / f"{stem}_Cells.npy", labels.astype(np.int32))
    channels = {}
    for offset, channel in enumerate(STAINS):
        channels[channel] = np.arange(labels.size, dtype=np.uint16).reshape(labels.shape) * 3 + offset + 1
        tifffile.imwrite(images / f"{stem}_Corr{channel}.tiff", channels[channel])
    return channels


def field_row(field, cells):
    """A fields_summary row of plate P1 for crop_and_measure."""
    return pd.DataFrame([{"plate": "P1", "well": "B02", "site": 1, "field": field, "cells": cells}])


def test_crop_and_measure_cuts_each_cell_with_zeros_outside(tmp_path):
    labels = np.zeros((12, 16), np.int32)
    labels[1:4, 2:7] = 1
    labels[3:9, 6:10] = 2  # touches cell 1: its box holds pixels of cell 1, which must become 0
    labels[9:12, 13:16] = 3  # at the image corner
    channels = saved_field(tmp_path, "f1", labels)
    cells = crop_and_measure(
        field_row("f1.tif", 3), tmp_path / FIELD_IMAGES, tmp_path / "crops", "P1", tmp_path / "log"
    )
    assert cells["label"].tolist() == [1, 2, 3] and set(CELL_COLUMNS) <= set(cells.columns)
    assert cells[["plate", "well", "site", "field"]].drop_duplicates().values.tolist() == [["P1", "B02", 1, "f1.tif"]]
    for cell in cells.itertuples():
        ys, xs = np.nonzero(labels == cell.label)
        assert [cell.bbox_min_x, cell.bbox_min_y, cell.bbox_max_x, cell.bbox_max_y] == [
            xs.min(),
            ys.min(),
            xs.max() + 1,
            ys.max() + 1,
        ]
        box = (slice(cell.bbox_min_y, cell.bbox_max_y), slice(cell.bbox_min_x, cell.bbox_max_x))
        for channel in STAINS:
            assert getattr(cell, f"crop_{channel.lower()}") == f"{channel}/f1_Cells_{cell.label}.tiff"
            crop = tifffile.imread(tmp_path / "crops" / getattr(cell, f"crop_{channel.lower()}"))
            expected = np.where(labels[box] == cell.label, channels[channel][box], 0)
            assert crop.dtype == np.uint16 and np.array_equal(crop, expected)
    assert not (tmp_path / FIELD_IMAGES).exists()  # the full-size images are deleted


def test_crop_and_measure_refuses_labels_unlike_cellprofilers_count(tmp_path):
    labels = np.zeros((8, 8), np.int32)
    labels[2:5, 3:6] = 1
    saved_field(tmp_path, "f1", labels)
    with pytest.raises(RuntimeError, match=r"f1.tif \(plate P1\): its label image does not hold labels 1..2"):
        crop_and_measure(field_row("f1.tif", 2), tmp_path / FIELD_IMAGES, tmp_path / "crops", "P1", tmp_path / "log")


@needs_cellprofiler
@pytest.mark.cellprofiler
def test_failed_run_raises_and_leaves_no_outputs(tmp_path):
    for channel in STAINS:
        tifffile.imwrite(tmp_path / f"s1_{channel}.tif", np.ones((64, 64), np.uint16))
    pd.DataFrame([field(1)]).to_csv(tmp_path / "fields.csv", index=False)
    out = tmp_path / "segmentation"
    out.mkdir()
    (out / "cells.csv").write_text("stale")
    with pytest.raises(RuntimeError, match=f"plate P1 .*see {tmp_path / 'log'}"):
        run_segmentation(
            tmp_path / "fields.csv",
            tmp_path,
            illumination_files(tmp_path / "no-illumination")["functions"],
            CELLPROFILER,
            PIPELINES / "analysis.cppipe",
            tmp_path / "log",
            **segmentation_files(out),
        )
    assert list(out.iterdir()) == []  # no stale outputs, no partial ones, no scratch folder


@pytest.fixture(scope="module")
def plate_run(tmp_path_factory):
    """One illumination and one analysis run on the real field (same DAPI image for all three
    channels) plus a second field whose DAPI TIFF is garbage."""
    root = tmp_path_factory.mktemp("cellprofiler")
    images = root / "images"
    images.mkdir()
    for column in ["file_dapi", "file_tubulin", "file_actin"]:
        shutil.copy(REAL_DAPI, images / REAL_FIELD[column])
    (images / GARBAGE_FIELD["file_dapi"]).write_bytes(b"garbage, not a TIFF" * 100)
    log = root / "cellprofiler.log"
    illumination = illumination_files(root / "illum")
    run_illumination(
        pd.DataFrame([REAL_FIELD, GARBAGE_FIELD]), images, CELLPROFILER, PIPELINES / "illum.cppipe", log, **illumination
    )
    run_segmentation(
        illumination["fields_csv"],
        images,
        illumination["functions"],
        CELLPROFILER,
        PIPELINES / "analysis.cppipe",
        log,
        **segmentation_files(root / "segmentation"),
    )
    return root


@needs_cellprofiler
@needs_shared
@pytest.mark.cellprofiler
def test_unreadable_field_is_quarantined(plate_run):
    quarantine = pd.read_csv(plate_run / "illum/quarantine.csv")
    assert quarantine[["site", "file"]].values.tolist() == [[4, GARBAGE_FIELD["file_dapi"]]]
    assert pd.read_csv(plate_run / "illum/fields.csv")["site"].tolist() == [3]
    log_lines = (plate_run / "cellprofiler.log").read_text().splitlines()
    assert any(line.startswith(f"quarantined {GARBAGE_FIELD['file_dapi']}: unreadable") for line in log_lines)


@needs_cellprofiler
@needs_shared
@pytest.mark.cellprofiler
def test_illumination_functions(plate_run):
    for channel in STAINS:
        function = np.load(plate_run / f"illum/illum_{channel}.npy")
        assert function.dtype == np.float32 and function.shape == (1024, 1280)
        assert function.min() >= 1.0 - 1e-6  # rescaled: divides raw intensities by >= 1


@needs_cellprofiler
@needs_shared
@pytest.mark.cellprofiler
def test_segmentation_outputs(plate_run):
    out = plate_run / "segmentation"
    summary = pd.read_csv(out / "fields_summary.csv")
    nuclei = summary.loc[0, "nuclei"]
    print(
        f"\nnuclei on {REAL_DAPI.name}: {nuclei}, cells: {summary.loc[0, 'cells']}, "
        f"touching the border: {summary.loc[0, 'border_cells']}"
    )
    assert list(summary.columns) == FIELDS_SUMMARY_COLUMNS
    assert len(summary) == 1 and 150 <= nuclei <= 350 and 0 < summary.loc[0, "border_cells"] < nuclei / 3
    assert summary.loc[0, "cells"] + summary.loc[0, "border_cells"] == nuclei
    cells = pd.read_csv(out / "cells.csv")
    assert list(cells.columns) == CELL_COLUMNS and cells.notna().all().all()
    assert len(cells) == summary.loc[0, "cells"] and cells["label"].is_unique
    assert cells[["plate", "well", "site", "field"]].drop_duplicates().values.tolist() == [
        ["Week1_22123", "C02", 3, REAL_DAPI.name]
    ]
    assert (cells[["bbox_min_x", "bbox_min_y"]] > 0).all().all()  # no cell touches the field border
    assert (cells["bbox_max_x"] < 1280).all() and (cells["bbox_max_y"] < 1024).all()
    measured = pd.read_csv(out / "measurements/Cells.csv")
    assert measured[CELL_COLUMNS[:12]].equals(cells[CELL_COLUMNS[:12]])
    assert ((measured["intensity_mean_dapi"] > 0) & (measured["intensity_mean_dapi"] <= 1)).all()
    for cell in cells.itertuples():
        shapes = set()
        for channel in STAINS:
            crop = tifffile.imread(out / "crops" / getattr(cell, f"crop_{channel.lower()}"))
            assert crop.dtype == np.uint16
            shapes.add(crop.shape)
        assert shapes == {(cell.bbox_max_y - cell.bbox_min_y, cell.bbox_max_x - cell.bbox_min_x)}
    assert {path.name for path in (out / "measurements").iterdir()} == {"Image.csv", "Cells.csv"}
    assert {path.name for path in out.iterdir()} == {"cells.csv", "fields_summary.csv", "crops", "measurements"}
    assert sum(1 for _ in (out / "crops").rglob("*.tiff")) == 3 * len(cells)
