"""Response profiles (cellvae.profiling.response): field selection for profiling, separation statistics
(cellvae.profiling.separation: classifier, cross-fitted Mahalanobis distance, within-well null), well aggregation, the
per-model profile stage on tiny PNG sets, and real DMSO vs cycloheximide crops."""

import json
import math
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from cellvae.core.files import read_pngs  # noqa: E402
from cellvae.data.metadata import MetadataError, training_and_profiled_fields  # noqa: E402
from cellvae.evaluation.baselines import Baselines  # noqa: E402
from cellvae.profiling import response, separation  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

FIGURES = ("confusion", "embedding", "traversals", "interpolations")


def image_and_moa_tables():
    """Two plates: DMSO in B02/C02, taxol in B03 and the positive control G02, drug X in B04 (plate 2 only)."""
    rows = []
    for plate in ("Week1_1", "Week2_1"):
        for well, compound, concentration in (
            ("B02", "DMSO", 0.0),
            ("C02", "DMSO", 0.0),
            ("B03", "taxol", 1.0),
            ("G02", "taxol", 1.0),
            ("B04", "X", 2.0),
        ):
            if compound == "X" and plate == "Week1_1":
                continue
            rows.append(
                {
                    "plate": plate,
                    "well": well,
                    "site": 1,
                    "compound": compound,
                    "concentration": concentration,
                    "replicate": 1,
                    "image_number": len(rows),
                    "path": plate,
                    "file_dapi": "d",
                    "file_tubulin": "t",
                    "file_actin": "a",
                    "week": plate.split("_")[0],
                }
            )
    moa = pd.DataFrame(
        {"compound": ["DMSO", "taxol"], "concentration": [0.0, 1.0], "moa": ["DMSO", "Microtubule stabilizers"]}
    )
    return pd.DataFrame(rows), moa


def test_selection_is_the_union_with_purpose_flags():
    images, moa = image_and_moa_tables()
    selected = training_and_profiled_fields(
        images, moa, compounds=["DMSO"], response={"compounds": "all", "moas": "all", "exclude_wells": ["G02"]}
    )
    flags = selected.set_index(["plate", "well"])[["train", "response"]]
    assert flags.loc[("Week1_1", "B02")].tolist() == [True, True]  # DMSO: trained on and the reference
    assert flags.loc[("Week2_1", "B03")].tolist() == [False, True]  # taxol: profiled only
    assert ("Week1_1", "G02") not in flags.index  # positive control excluded
    assert ("Week2_1", "B04") not in flags.index  # X has no MoA: not profiled
    assert len(selected) == 6
    only_training = training_and_profiled_fields(images, moa, compounds=["DMSO"])
    assert only_training["train"].all() and not only_training["response"].any() and len(only_training) == 4


def test_profiling_dmso_only_on_plates_with_profiled_treatments_and_a_clear_error():
    images, moa = image_and_moa_tables()
    images = images[~((images["plate"] == "Week2_1") & (images["compound"] == "taxol"))]
    selected = training_and_profiled_fields(
        images, moa, compounds=["X"], response={"compounds": ["taxol"], "moas": "all", "exclude_wells": []}
    )
    assert set(selected.loc[selected["response"], "plate"]) == {"Week1_1"}
    assert set(selected.loc[selected["train"], "compound"]) == {"X"}
    with pytest.raises(MetadataError, match="response.compounds/moas/exclude_wells select no treated field"):
        training_and_profiled_fields(
            images, moa, response={"compounds": "all", "moas": "all", "exclude_wells": ["B03", "G02"]}
        )


def wells_of(n_cells, n_wells, prefix):
    return [f"{prefix}{i % n_wells}" for i in range(n_cells)]


def test_lda_accuracy_separates_shifted_classes_and_not_identical_ones():
    rng = np.random.default_rng(0)
    control = rng.normal(size=(200, 4))
    control_wells, treated_wells = wells_of(200, 10, "c"), wells_of(100, 5, "t")
    shifted = rng.normal(size=(100, 4)) + [3, 0, 0, 0]
    assert separation.lda_cv_accuracy(control, shifted, control_wells, treated_wells, 5, 0) > 0.9
    same = rng.normal(size=(100, 4))
    assert 0.35 < separation.lda_cv_accuracy(control, same, control_wells, treated_wells, 5, 0) < 0.65
    assert math.isnan(separation.lda_cv_accuracy(control, shifted, control_wells, ["t0"] * 100, 5, 0))


def test_cross_validation_never_puts_one_well_on_both_sides():
    """Each well has its own offset and the classes differ by nothing else: a classifier that has seen a
    well's cells recognises them (cell-level folds score high); grouped folds must score near chance."""
    rng = np.random.default_rng(3)
    offsets = rng.normal(scale=3.0, size=(12, 16))
    wells = np.repeat(np.arange(12), 40)
    data = offsets[wells] + rng.normal(scale=0.3, size=(len(wells), 16))
    control, treated = data[wells < 6], data[wells >= 6]
    grouped = separation.lda_cv_accuracy(control, treated, wells[wells < 6], wells[wells >= 6], 3, 0)
    by_cell = separation.lda_cv_accuracy(
        control, treated, np.arange((wells < 6).sum()), 1000 + np.arange((wells >= 6).sum()), 3, 0
    )
    assert by_cell > 0.9 and grouped < 0.75, (by_cell, grouped)


def test_distance_is_mahalanobis_in_dmso_standard_deviations():
    """DMSO standard deviations 1 and 2, shift (3, 4): Mahalanobis sqrt(9 + 4) = 3.61 (the former centroid
    distance in DMSO spreads gave 5 / sqrt(5) = 2.24)."""
    rng = np.random.default_rng(0)
    control = rng.normal(size=(4000, 2)) * [1.0, 2.0]
    treated = rng.normal(size=(2000, 2)) * [1.0, 2.0] + [3.0, 4.0]
    result = separation.separation(control, treated, wells_of(4000, 4, "c"), wells_of(2000, 2, "t"), folds=2, seed=0)
    assert result["mahalanobis_to_dmso"] == pytest.approx(math.sqrt(13), rel=0.03) and result["accuracy"] > 0.9
    assert (result["n_wells"], result["n_dmso_wells"]) == (2, 4) and math.isnan(result["dmso_null"])


def correlated_cells(rng, n, shift, mix):
    return (rng.normal(size=(n, len(mix))) + shift) @ mix


def test_noise_columns_do_not_change_the_distance():
    """16 correlated informative features, then the same cells with 59 columns of N(0, 1) noise appended: the
    distance moves by < 5% (the centroid distance in DMSO spreads fell to ~sqrt(16 / 75) of itself)."""
    rng = np.random.default_rng(0)
    mix = rng.normal(size=(16, 16)) / 4 + np.eye(16)
    shift = np.r_[1.5, 1.0, 0.8, np.zeros(13)]
    control, treated = correlated_cells(rng, 2000, 0, mix), correlated_cells(rng, 1000, shift, mix)
    informative = separation.mahalanobis_distance(control, treated, seed=0)
    padded = separation.mahalanobis_distance(
        np.hstack([control, rng.normal(size=(2000, 59))]), np.hstack([treated, rng.normal(size=(1000, 59))]), seed=0
    )
    assert informative == pytest.approx(np.linalg.norm(shift), rel=0.05)
    assert abs(padded / informative - 1) < 0.05, (informative, padded)


def test_a_given_split_is_the_seeded_one_when_it_is_the_same_and_needs_two_cells_a_side():
    rng = np.random.default_rng(1)
    control, treated = rng.normal(size=(40, 3)), rng.normal(size=(20, 3)) + 1.0
    in_half_a = np.zeros(40, bool)
    in_half_a[np.random.default_rng(7).permutation(40)[:20]] = True
    assert separation.mahalanobis_distance(control, treated, 0, in_half_a) == pytest.approx(
        separation.mahalanobis_distance(control, treated, seed=7)
    )
    assert math.isnan(separation.mahalanobis_distance(control, treated, 0, np.arange(40) > 38))


def test_a_shift_is_farther_than_none_and_the_within_well_null_is_small():
    rng = np.random.default_rng(1)
    mix = rng.normal(size=(8, 8)) / 4 + np.eye(8)
    control = correlated_cells(rng, 1200, 0, mix)
    shifted = separation.mahalanobis_distance(control, correlated_cells(rng, 400, np.r_[1.0, np.zeros(7)], mix), 0)
    unshifted = separation.mahalanobis_distance(control, correlated_cells(rng, 400, 0, mix), 0)
    assert shifted > 0.8 and abs(unshifted) < 0.25 < shifted - abs(unshifted)
    wells, fields = np.repeat(["P/B02", "P/C02"], 600), np.tile(np.repeat([1, 2, 3, 4], 150), 2)
    null = separation.within_well_null(control, wells, fields, seed=0)
    assert abs(null) < 0.25 < shifted - abs(null)
    offsets = rng.normal(scale=0.5, size=(8, 8))  # each field of each well its own offset: field-to-field variation
    with_fields = control + offsets[(wells == "P/C02") * 4 + fields - 1]
    assert separation.within_well_null(with_fields, wells, fields, seed=0) > 0.4
    assert math.isnan(separation.within_well_null(control, wells, np.ones(1200), seed=0))  # one field per well


def test_separation_table_prints_the_within_well_null_beside_each_treatment():
    rng = np.random.default_rng(2)
    rows = [("DMSO", 0.0, "DMSO", "B02", site, 0.0) for site in (1, 2, 3, 4) for _ in range(100)]
    rows += [("t", 1.0, "M", well, site, 1.0) for well in ("C02", "D02") for site in (1, 2) for _ in range(50)]
    cells = pd.DataFrame(rows, columns=["compound", "concentration", "moa", "well", "site", "shift"])
    cells = cells.assign(plate="P", split="unknown")
    mu = rng.normal(size=(len(cells), 4)) + cells[["shift"]].to_numpy() * [1.0, 0, 0, 0]
    table = separation.separation_table(cells, mu, folds=2, max_cells=1000, seed=0)
    assert table.columns.tolist()[-2:] == ["mahalanobis_to_dmso", "dmso_null"]
    row = table.iloc[0]
    assert (row.compound, row.n_cells, row.n_dmso_cells, row.n_dmso_wells) == ("t", 200, 400, 1)
    assert row.mahalanobis_to_dmso == pytest.approx(1.0, abs=0.2) and abs(row.dmso_null) < 0.3


def test_well_profiles_average_cells_per_well():
    cells = pd.DataFrame(
        {
            "plate": ["P", "P", "P"],
            "well": ["B02", "B02", "B03"],
            "compound": ["DMSO", "DMSO", "t"],
            "concentration": [0.0, 0.0, 1.0],
            "moa": ["DMSO", "DMSO", "M"],
            "batch": ["Week1"] * 3,
        }
    )
    wells = response.well_profiles(cells, np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))
    assert wells[["well", "z0", "z1", "n_cells"]].values.tolist() == [["B02", 2.0, 3.0, 2], ["B03", 5.0, 6.0, 1]]


def disc_pngs(directory, plate, well, n_cells, colour, radius, size=16, seed=0):
    """PNG 'cells' (a coloured disc on black) and their rows of a PNG-stage manifest."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows_, columns_ = np.mgrid[:size, :size]
    records = []
    for label in range(1, n_cells + 1):
        centre = size / 2 + rng.uniform(-1, 1, 2)
        disc = (rows_ - centre[0]) ** 2 + (columns_ - centre[1]) ** 2 <= (radius + rng.uniform(-0.5, 0.5)) ** 2
        image = (disc[..., None] * np.array(colour) * rng.uniform(0.8, 1.0)).astype(np.uint8)
        path = directory / f"{plate}_{well}_c{label}.png"
        Image.fromarray(image).save(path)
        records.append(
            {
                "path": str(path),
                "plate": plate,
                "well": well,
                "site": 1,
                "field": "f",
                "label": label,
                "crop_height": size,
                "crop_width": size,
            }
        )
    return records


@pytest.fixture(scope="module")
def profiled_run(tmp_path_factory):
    """Two plates (weeks), DMSO, two compounds of MoA 'A' and one of 'B', profiled by an untrained tiny VAE."""
    import keras

    from cellvae.core.config import vae_settings
    from cellvae.model.vae import build_vae

    keras.utils.set_random_seed(0)
    root = tmp_path_factory.mktemp("profiles")
    design = [
        ("DMSO", 0.0, "DMSO", (0, 0, 255), 3),
        ("a1", 1.0, "A", (255, 0, 0), 6),
        ("a2", 1.0, "A", (230, 20, 0), 6),
        ("b1", 1.0, "B", (0, 255, 0), 3),
    ]
    manifests, fields = [], []
    for plate_index, plate in enumerate(["Week1_1", "Week2_1"]):
        records = []
        for index, (compound, concentration, moa_name, colour, radius) in enumerate(design):
            for replicate in range(2):
                well = f"B{index * 2 + replicate + 2:02d}"
                records += disc_pngs(root / plate, plate, well, 8, colour, radius, seed=plate_index * 100 + index)
                fields.append(
                    {
                        "plate": plate,
                        "week": plate.split("_")[0],
                        "well": well,
                        "site": 1,
                        "compound": compound,
                        "concentration": concentration,
                        "moa": moa_name,
                        "train": compound == "DMSO",
                        "response": True,
                    }
                )
        manifests.append(root / f"{plate}.csv")
        pd.DataFrame(records).to_csv(manifests[-1], index=False)
    selected = root / "selected.csv"
    pd.DataFrame(fields).to_csv(selected, index=False)
    model = root / "model.keras"
    build_vae(16, 3, **vae_settings()).save(model)
    training_cells = np.random.default_rng(1).integers(0, 256, size=(20, 16, 16, 3), dtype=np.uint8)
    Baselines.fit(training_cells, 3).save(root / "baselines.npz")
    settings = dict(
        normalize="plate-dmso",
        aggregate="mean",
        min_controls=5,
        reference_cap=50,
        bootstrap=100,
        batch_size=16,
        orientations=8,
        cv_folds=3,
        max_cells_per_class=100,
        embedding_points=100,
        traversal_dims=2,
        traversal_steps=3,
        traversal_extent=2.0,
        interpolation_steps=3,
        interpolation_rows=2,
        seed=0,
    )
    out = root / "z3"
    out.mkdir()
    response.response_profiles(
        model,
        [str(path) for path in manifests],
        selected,
        settings,
        cells_csv=out / "cells.csv.gz",
        wells_csv=out / "wells.csv",
        moa_json=out / "moa.json",
        separation_csv=out / "separation.csv",
        baselines_npz=root / "baselines.npz",
        **{f"{figure}_png": out / f"{figure}.png" for figure in FIGURES},
        log=lambda m: None,
    )
    return out


def test_profile_model_writes_profiles_scores_and_figures(profiled_run):
    cells = pd.read_csv(profiled_run / "cells.csv.gz")
    assert len(cells) == 2 * 4 * 2 * 8 and {"z0", "z1", "z2", "Metadata_MoA", "Metadata_Batch"} <= set(cells.columns)
    assert {"Metadata_Plate", "Metadata_Well", "Metadata_Compound", "Metadata_Concentration_uM"} <= set(cells.columns)
    from cellvae.model.vae import load_vae

    vae = load_vae(profiled_run.parent / "model.keras")
    images = read_pngs(cells["Metadata_Path"].tolist())
    mu = cells[["z0", "z1", "z2"]].to_numpy()
    np.testing.assert_allclose(mu, response.encode_images(vae, images, orientations=8), rtol=1e-4, atol=1e-5)
    assert not np.allclose(mu, response.encode_images(vae, images), rtol=1e-4, atol=1e-5)  # over the 8 views
    wells = pd.read_csv(profiled_run / "wells.csv")
    assert len(wells) == 16 and set(wells["Metadata_Count_Cells"]) == {8} and "Metadata_Well" in wells
    result = json.loads((profiled_run / "moa.json").read_text())
    assert result["n_treatments"] == 3 and result["latent_dim"] == 3 and result["nsc_evaluated"] == 3
    assert result["nscb"]["value"] is None and "another batch" in result["nscb_undefined"]  # all in both weeks
    assert result["n_cells"] == len(cells) and result["n_wells"] == 16  # the cells, scored by cellvae.profiling.moa
    baselines = ["pixel PCA-3", "thumbnail 16px", "classic (centre cell)", "untrained encoder"]
    assert list(result["baselines"]) == baselines
    assert all(set(result["baselines"][name]) == {"nsc", "nscb", "map"} for name in baselines)
    table = pd.read_csv(profiled_run / "separation.csv")
    assert table["compound"].tolist() == ["a1", "a2", "b1"]
    assert (table["accuracy"] > 0.85).all() and (table["mahalanobis_to_dmso"] > 1).all()
    assert table["dmso_null"].isna().all()  # one field per well: no within-well null
    assert (table["n_wells"] == 4).all() and (table["n_dmso_wells"] == 4).all()
    assert set(table["dmso_reference"]) == {"training split unknown"}
    for figure in FIGURES:
        assert (profiled_run / f"{figure}.png").stat().st_size > 5000


def test_compare_profiles_tabulates_each_model(profiled_run, tmp_path):
    table = response.compare_responses(
        ["z3"],
        moa_jsons=[profiled_run / "moa.json"],
        separation_csvs=[profiled_run / "separation.csv"],
        table_csv=tmp_path / "summary.csv",
    )
    assert table["model"].tolist() == ["z3"] * 5
    assert table["method"].tolist() == [
        "VAE mu",
        "pixel PCA-3",
        "thumbnail 16px",
        "classic (centre cell)",
        "untrained encoder",
    ]
    assert set(table["latent_dim"]) == {3} and set(table["n_treatments"]) == {3}
    result = json.loads((profiled_run / "moa.json").read_text())
    row = table.iloc[0]
    assert [row.nsc, row.nsc_low, row.nsc_high] == [result["nsc"]["value"], *result["nsc"]["ci"]]
    assert row["map"] == result["map"]["value"]
    summary = pd.read_csv(tmp_path / "summary.csv").iloc[0]
    distances = pd.read_csv(profiled_run / "separation.csv")["mahalanobis_to_dmso"]
    assert summary["mean_accuracy_vs_dmso"] > 0.85 and summary["mean_mahalanobis_to_dmso"] == distances.mean()
    assert "mean_dmso_null" in summary.index
    old = pd.read_csv(profiled_run / "separation.csv").drop(columns=["mahalanobis_to_dmso", "dmso_null"])
    old.assign(distance_to_dmso=1.0).to_csv(tmp_path / "old.csv", index=False)
    with pytest.raises(ValueError, match="old.csv has no mahalanobis_to_dmso column"):
        response.compare_responses(
            ["z3"],
            moa_jsons=[profiled_run / "moa.json"],
            separation_csvs=[tmp_path / "old.csv"],
            table_csv=tmp_path / "t.csv",
        )


def test_profiled_cells_need_the_response_flags(tmp_path):
    selected = tmp_path / "selected.csv"
    pd.DataFrame({"plate": ["P"], "well": ["B02"], "site": [1]}).to_csv(selected, index=False)
    manifest = tmp_path / "cells.csv"
    pd.DataFrame({"path": ["x.png"], "plate": ["P"], "well": ["B02"], "site": [1], "label": [1]}).to_csv(
        manifest, index=False
    )
    with pytest.raises(ValueError, match="has no response column"):
        response.profiled_cells([manifest], selected)
