"""cellvae.profiling.cellprofiler_features: CellProfiler's measurements of real single-cell crops, one row per crop."""

import subprocess

import numpy as np
import pandas as pd
import pytest

from cellvae.profiling.cellprofiler_features import LOG_NAME, measure_crops
from cellvae.testing.workflow import CELLPROFILER, REPO

SHARED = REPO.parent / "shared"
MOA_CROPS = SHARED / "bbbc021" / "images" / "single_cells_moa"
PIPELINE = REPO / "pipelines" / "measure_crops.cppipe"
FAMILIES = ("Zernike", "Granularity", "RadialDistribution", "Texture", "Correlation", "Neighbors", "Intensity")

pytestmark = [
    pytest.mark.cellprofiler,
    pytest.mark.skipif(
        not CELLPROFILER.exists(), reason=f"{CELLPROFILER} absent: run 'make setup' to install CellProfiler"
    ),
]
needs_shared = pytest.mark.skipif(not MOA_CROPS.is_dir(), reason=f"{MOA_CROPS} (real BBBC021 MoA crops) absent")


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """Six real crops of different plates and an empty one, the first crop again last."""
    files = pd.read_csv(MOA_CROPS / "manifest.csv").drop_duplicates("plate")["file"].iloc[:6]
    crops = [np.load(MOA_CROPS.parents[1] / file) for file in files]
    crops += [np.zeros_like(crops[0]), crops[0]]
    work_dir = tmp_path_factory.mktemp("measure")
    return measure_crops(crops, CELLPROFILER, PIPELINE, work_dir), work_dir


@needs_shared
def test_one_row_per_crop_with_finite_features_where_a_cell_was_found(measured):
    table, work_dir = measured
    assert table["crop"].tolist() == list(range(8))
    assert table["cell_found"].tolist() == [True] * 6 + [False, True]
    features = table.drop(columns=["crop", "cell_found"])
    assert np.isfinite(features[table["cell_found"]].to_numpy()).all()
    assert features.loc[6].isna().all()
    assert "8 crops measured, 1 without a cell" in (work_dir / LOG_NAME).read_text()
    assert list(work_dir.iterdir()) == [work_dir / LOG_NAME]  # no scratch images left


@needs_shared
def test_cellprofiler_column_families(measured):
    table, _ = measured
    for family in FAMILIES:
        assert (table.columns.str.startswith("Cells_") & table.columns.str.contains(family)).any(), family
    expected = ["Cells_AreaShape_Zernike_2_0", "Cells_Intensity_MeanIntensity_Tubulin", "Nuclei_AreaShape_Area"]
    expected += ["Cells_Neighbors_NumberOfNeighbors_5", "Cells_Correlation_Costes_Tubulin_Actin"]
    assert set(expected) <= set(table.columns)
    assert not table.columns.str.contains("Location_|ObjectNumber|Metadata_").any()


@needs_shared
def test_a_crop_measured_twice_gives_identical_rows(measured):
    table, _ = measured
    features = table.drop(columns="crop")
    pd.testing.assert_series_equal(features.loc[0], features.loc[7], check_names=False)


def test_failed_run_names_the_log(tmp_path):
    broken = tmp_path / "broken.cppipe"
    broken.write_text("not a pipeline\n")
    with pytest.raises(RuntimeError, match=f"CellProfiler failed measuring 1 crops .*see {tmp_path / LOG_NAME}"):
        measure_crops([np.ones((68, 68, 3), np.uint16)], CELLPROFILER, broken, tmp_path)
    assert sorted(tmp_path.iterdir()) == sorted([broken, tmp_path / LOG_NAME])  # no scratch images left


def test_pipeline_is_the_generators_output(tmp_path):
    """pipelines/measure_crops.cppipe is what pipelines/build_measure_crops.py writes (and loads back)."""
    python = CELLPROFILER.with_name("python")
    subprocess.run([python, REPO / "pipelines" / "build_measure_crops.py", tmp_path / "built.cppipe"], check=True)
    assert (tmp_path / "built.cppipe").read_text() == PIPELINE.read_text()
