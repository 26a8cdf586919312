"""Segmentation: per-cell measurements in Python, and cells touching the field border dropped and counted."""

import numpy as np
import pandas as pd
import pytest
import tifffile

from cellvae.core.channels import STAINS
from cellvae.imaging.cellprofiler import CELL_COLUMNS, FILE_COLUMNS, measure_cells, run_segmentation
from cellvae.testing.workflow import CELLPROFILER, REPO

ANALYSIS = REPO / "pipelines" / "analysis.cppipe"

needs_cellprofiler = pytest.mark.skipif(
    not CELLPROFILER.exists(), reason=f"{CELLPROFILER} absent: run 'make setup' to install CellProfiler"
)


def test_measure_cells_matches_a_hand_made_label_image():
    labels = np.zeros((10, 12), np.int32)
    labels[1:4, 2:7] = 1  # 3 × 5 rectangle
    labels[6:9, 1] = 2  # an L: three pixels down column 1 ...
    labels[8, 2:4] = 2  # ... and two along row 8
    dapi = np.zeros(labels.shape, np.uint16)
    dapi[labels == 1] = 13107  # 0.2 of 65535
    dapi[6:8, 1] = 65535  # two of cell 2's five pixels at full scale
    actin = np.where(labels == 2, 65535, 0).astype(np.uint16)
    channels = {"DAPI": dapi, "Tubulin": np.zeros(labels.shape, np.uint16), "Actin": actin}
    cells = measure_cells(labels, channels).set_index("label")
    assert cells.loc[1, ["area", "bbox_min_x", "bbox_min_y", "bbox_max_x", "bbox_max_y"]].tolist() == [15, 2, 1, 7, 4]
    assert cells.loc[2, ["area", "bbox_min_x", "bbox_min_y", "bbox_max_x", "bbox_max_y"]].tolist() == [5, 1, 6, 4, 9]
    assert cells.loc[1, ["center_x", "center_y"]].tolist() == pytest.approx([4.0, 2.0])
    assert cells.loc[2, ["center_x", "center_y"]].tolist() == pytest.approx([1.6, 7.4])  # (1+1+1+2+3)/5, (6+7+8+8+8)/5
    assert cells["intensity_mean_dapi"].tolist() == pytest.approx([0.2, 0.4])
    assert cells["intensity_integrated_dapi"].tolist() == pytest.approx([3.0, 2.0])
    assert cells["intensity_mean_actin"].tolist() == pytest.approx([0.0, 1.0])
    assert cells["intensity_mean_tubulin"].tolist() == pytest.approx([0.0, 0.0])
    empty = measure_cells(np.zeros((4, 4), np.int32), {channel: np.zeros((4, 4), np.uint16) for channel in STAINS})
    assert empty.empty and list(empty.columns) == list(cells.reset_index().columns)


def test_analysis_pipeline_drops_cells_touching_the_border():
    text = ANALYSIS.read_text()
    assert "Discard secondary objects touching the border of the image?:Yes" in text
    # Nuclei on the border stay seeds and are counted; their cells touch the border and are dropped.
    assert "Discard objects touching the border of the image?:No" in text
    assert "MeasureObject" not in text  # measurements are made in Python


def dome(shape, centre, radius, peak):
    """A paraboloid spot: peak at centre, 0 from radius on (one intensity maximum, smooth edges)."""
    rows, cols = np.indices(shape)
    distance2 = ((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2) / radius**2
    return peak * np.clip(1 - distance2, 0, None)


def border_field(tmp_path, shape=(256, 320)):
    """A field with four nucleus + cell pairs: two inside, one nucleus cut by the left edge, and one whose
    nucleus is inside but whose cell reaches the bottom edge. Returns (fields.csv, images, illum dir)."""
    centres = {"inside_1": (90, 100), "inside_2": (170, 220), "nucleus_on_edge": (120, 8), "cell_on_edge": (232, 90)}
    rng = np.random.default_rng(0)
    dapi = 300 + sum(dome(shape, centre, 14, 12000) for centre in centres.values())
    cell = 400 + sum(np.where(dome(shape, centre, 32, 1) > 0, 6000, 0) for centre in centres.values())
    images, illum = tmp_path / "images", tmp_path / "illum"
    images.mkdir()
    illum.mkdir()
    row = {"plate": "P1", "well": "B02", "site": 1}
    for channel, pixels in zip(STAINS, [dapi, cell, cell]):
        noisy = np.clip(pixels + rng.normal(0, 20, shape), 0, 65535).astype(np.uint16)
        tifffile.imwrite(images / f"f1_{channel}.tif", noisy)
        np.save(illum / f"illum_{channel}.npy", np.ones(shape, np.float32))
        row[FILE_COLUMNS[channel]] = f"f1_{channel}.tif"
    pd.DataFrame([row]).to_csv(tmp_path / "fields.csv", index=False)
    return tmp_path / "fields.csv", images, illum, centres


@needs_cellprofiler
@pytest.mark.cellprofiler
def test_cells_touching_the_border_are_dropped_and_counted(tmp_path):
    fields_csv, images, illum, centres = border_field(tmp_path)
    out = tmp_path / "segmentation"
    run_segmentation(
        fields_csv,
        images,
        {stain: illum / f"illum_{stain}.npy" for stain in STAINS},
        CELLPROFILER,
        ANALYSIS,
        tmp_path / "log",
        cells_csv=out / "cells.csv",
        summary_csv=out / "fields_summary.csv",
        crops_dir=out / "crops",
        measurements_dir=out / "measurements",
    )
    summary = pd.read_csv(out / "fields_summary.csv")
    assert summary[["nuclei", "cells", "border_cells"]].values.tolist() == [[4, 2, 2]]
    cells = pd.read_csv(out / "cells.csv")
    assert list(cells.columns) == CELL_COLUMNS
    found = sorted(zip(cells["center_y"].round(), cells["center_x"].round()))
    assert found == pytest.approx([centres["inside_1"], centres["inside_2"]], abs=3)
    assert (cells[["bbox_min_x", "bbox_min_y"]] > 0).all().all()
    assert (cells["bbox_max_x"] < 320).all() and (cells["bbox_max_y"] < 256).all()
    assert "2 cells in 1 fields, 2 more touching the field border discarded" in (tmp_path / "log").read_text()
