"""MoA evaluator: hand-made cases with known answers, normalizations, the CLI on the real Ljosa profiles."""

import json

import numpy as np
import pandas as pd
import pytest

from cellvae.cli import main as cli
from cellvae.profiling import moa

SETTINGS = {
    "normalize": "none",
    "aggregate": "mean",
    "min_controls": 2,
    "reference_cap": 1000,
    "bootstrap": 200,
    "seed": 0,
}
UNCAPPED = {"reference_cap": 1000, "seed": 0}  # normalize's statistics from every row


def evaluate(wells, features, normalize="none", aggregate="mean", cells=False):
    """moa.evaluate_rows on metadata + features, the other settings at SETTINGS."""
    table = pd.concat([wells, features], axis=1)
    settings = {**SETTINGS, "normalize": normalize, "aggregate": aggregate}
    return moa.evaluate_rows(table, list(features.columns), settings, cells=cells)


def wells_table(rows):
    """rows: (plate, well, compound, concentration, moa, features...) → (wells, features)."""
    meta = pd.DataFrame([row[:5] for row in rows], columns=["plate", "well", "compound", "concentration", "moa"])
    meta["batch"] = meta["plate"].str.split("_").str[0]
    features = pd.DataFrame([row[5:] for row in rows], columns=[f"f{i}" for i in range(len(rows[0]) - 5)])
    return meta, features


def orthogonal_case():
    """3 MoAs × 2 compounds; each MoA owns one axis, so every NSC neighbour is the other compound of the MoA."""
    rows = []
    for index, moa_name in enumerate(["A", "B", "C"]):
        for compound, scale in ((f"{moa_name}1", 1.0), (f"{moa_name}2", 2.0)):
            profile = np.zeros(3)
            profile[index] = scale
            week = "Week1" if compound.endswith("1") else "Week2"
            rows.append((f"{week}_1", f"B0{index}{compound[-1]}", compound, 1.0, moa_name, *profile))
    rows.append(("Week1_1", "B11", "DMSO", 0.0, "DMSO", 0.0, 0.0, 0.0))
    rows.append(("Week2_1", "B11", "DMSO", 0.0, "DMSO", 0.0, 0.0, 0.0))
    return wells_table(rows)


def test_orthogonal_profiles_are_all_matched():
    wells, features = orthogonal_case()
    result = evaluate(wells, features)
    assert result["n_treatments"] == 6 and result["n_moas"] == 3
    assert result["nsc"] == {"value": 1.0, "ci": [1.0, 1.0]} and result["nscb"]["value"] == 1.0
    assert result["map"] == {"value": 1.0, "ci": [1.0, 1.0]} and result["map_evaluated"] == 6
    assert {m["compound"]: m["nsc_match"] for m in result["matches"]}["A1"] == "A2 @ 1"


def test_nearest_neighbour_of_the_same_compound_is_skipped():
    # A1 at two concentrations is nearly identical; NSC must skip it and match A2 (same MoA) over B1.
    rows = [
        ("Week1_1", "B02", "A1", 1.0, "A", 1.0, 0.0),
        ("Week1_1", "B03", "A1", 3.0, "A", 0.99, 0.01),
        ("Week1_1", "B04", "A2", 1.0, "A", 0.8, 0.6),
        ("Week1_1", "B05", "B1", 1.0, "B", 0.7, 0.714),
        ("Week1_1", "B06", "B2", 1.0, "B", 0.0, 1.0),
    ]
    wells, features = wells_table(rows)
    result = evaluate(wells, features)
    first = result["matches"][0]
    assert first["compound"] == "A1" and first["nsc_match"] == "A2 @ 1"
    # A2 and B1 are each other's nearest (cosine 0.99): two wrong matches the evaluator must count as wrong.
    assert result["per_moa"]["B"]["nsc"] == {"n": 2, "correct": 1, "accuracy": 0.5}
    assert result["per_moa"]["A"]["nsc"] == {"n": 3, "correct": 2, "accuracy": pytest.approx(2 / 3)}
    assert result["nsc"]["value"] == pytest.approx(3 / 5)
    low, high = result["nsc"]["ci"]
    assert 0 <= low < 3 / 5 < high <= 1  # five treatments: the bootstrap interval is wide


def test_nscb_excludes_the_same_batch_and_single_batch_moas():
    # A1 (Week1) is closest to A2, then B1 (Week2), then A3 (Week3). NSC matches A2; NSCB cannot (A2 shares
    # Week1) and matches B1. MoA C lives in Week4 only: left out of NSCB.
    rows = [
        ("Week1_1", "B02", "A1", 1.0, "A", 1.0, 0.0),
        ("Week1_1", "B03", "A2", 1.0, "A", 0.9, 0.1),
        ("Week3_1", "B03", "A3", 1.0, "A", 0.5, 0.5),
        ("Week2_1", "B02", "B1", 1.0, "B", 0.8, 0.2),
        ("Week3_1", "B02", "B2", 1.0, "B", 0.0, 1.0),
        ("Week4_1", "B02", "C1", 1.0, "C", 0.3, 1.0),
        ("Week4_1", "B03", "C2", 1.0, "C", 0.3, 1.0),
    ]
    wells, features = wells_table(rows)
    result = evaluate(wells, features)
    by_compound = {m["compound"]: m for m in result["matches"]}
    assert by_compound["A1"]["nsc_match"] == "A2 @ 1"
    assert by_compound["A1"]["nscb_match"] == "B1 @ 1" and by_compound["A1"]["nscb_match_moa"] == "B"
    assert result["nscb_left_out_moas"] == ["C"] and by_compound["C1"]["nscb_match"] is None
    assert result["nscb_evaluated"] == 5 and result["per_moa"]["C"]["nscb"] is None
    assert by_compound["C1"]["nsc_match"] == "C2 @ 1"


def test_single_compound_leaves_nsc_undefined():
    rows = [("Week1_1", "B02", "taxol", 0.3, "MT", 1.0, 0.0), ("Week1_1", "B11", "DMSO", 0.0, "DMSO", 0.0, 1.0)]
    wells, features = wells_table(rows)
    result = evaluate(wells, features)
    assert result["nsc"]["value"] is None and "1 compound" in result["nsc_undefined"] and result["n_treatments"] == 1


def test_plate_dmso_standardizes_against_each_plates_controls():
    rows = [
        ("Week1_1", "B02", "DMSO", 0.0, "DMSO", 10.0, 5.0),
        ("Week1_1", "B03", "DMSO", 0.0, "DMSO", 12.0, 3.0),
        ("Week1_1", "B04", "A1", 1.0, "A", 13.0, 7.0),
        ("Week1_2", "B02", "DMSO", 0.0, "DMSO", 0.0, 1.0),
        ("Week1_2", "B03", "DMSO", 0.0, "DMSO", 4.0, 3.0),
        ("Week1_2", "B04", "A1", 1.0, "A", 6.0, 3.0),
    ]
    wells, features = wells_table(rows)
    table = pd.concat([wells, features], axis=1)
    values, references = moa.normalize(table, ["f0", "f1"], "plate-dmso", min_controls=2, **UNCAPPED)
    # plate 1: mean 11 sd 1, mean 4 sd 1; plate 2: mean 2 sd 2, mean 2 sd 1
    assert values.loc[2, ["f0", "f1"]].tolist() == pytest.approx([2.0, 3.0])
    assert values.loc[5, ["f0", "f1"]].tolist() == pytest.approx([2.0, 1.0])
    assert values.loc[0, ["f0", "f1"]].tolist() == pytest.approx([-1.0, 1.0])
    assert references == {"Week1_1": "plate-dmso", "Week1_2": "plate-dmso"}


def test_plates_with_too_few_controls_fall_back_to_their_batch_then_to_their_own_cells():
    rows = [
        ("Week1_1", "B02", "DMSO", 0.0, "DMSO", 10.0),
        ("Week1_1", "B03", "A1", 1.0, "A", 30.0),
        ("Week1_2", "B02", "DMSO", 0.0, "DMSO", 14.0),
        ("Week1_2", "B03", "A1", 1.0, "A", 20.0),
        ("Week2_1", "B02", "A1", 1.0, "A", 5.0),
        ("Week2_1", "B03", "A2", 1.0, "A", 7.0),
    ]
    wells, features = wells_table(rows)
    values, references = moa.normalize(pd.concat([wells, features], axis=1), ["f0"], "plate-dmso", 2, **UNCAPPED)
    assert references == {"Week1_1": "batch-dmso", "Week1_2": "batch-dmso", "Week2_1": "plate-all"}
    # Week1: the batch's two DMSO rows, mean 12 sd 2; Week2_1: its own rows, mean 6 sd 1
    assert values["f0"].tolist() == pytest.approx([-1.0, 9.0, 1.0, 4.0, -1.0, 1.0])


def test_tvn_whitens_the_dmso_wells():
    rng = np.random.default_rng(0)
    dmso = rng.normal(size=(40, 3)) @ np.array([[3.0, 0, 0], [1.0, 0.5, 0], [0, 0, 0.2]])
    rows = [("Week1_1", f"W{i}", "DMSO", 0.0, "DMSO", *row) for i, row in enumerate(dmso)]
    rows.append(("Week1_1", "X01", "A1", 1.0, "A", 1.0, 1.0, 1.0))
    wells, features = wells_table(rows)
    values, _ = moa.normalize(pd.concat([wells, features], axis=1), ["f0", "f1", "f2"], "tvn", 2, **UNCAPPED)
    whitened = values[["f0", "f1", "f2"]].to_numpy()[:-1]
    assert np.cov(whitened.T) == pytest.approx(np.eye(3), abs=1e-4)


def test_cells_are_averaged_into_wells_before_treatments():
    # A1's two wells: one of 3 cells at (1, 0), one of 1 cell at (-1, 2): wells (1, 0) and (-1, 2) average to
    # (0, 1), nearer B; cells averaged directly would give (0.5, 0.5), nearer A2 at (1, 1)
    rows = [
        *[("Week1_1", "B02", "A1", 1.0, "A", 1.0, 0.0)] * 3,
        ("Week1_1", "B03", "A1", 1.0, "A", -1.0, 2.0),
        ("Week1_1", "B04", "A2", 1.0, "A", 1.0, 1.0),
        ("Week1_1", "B05", "B1", 1.0, "B", 0.0, 1.0),
        ("Week1_1", "B06", "B2", 1.0, "B", -0.1, 1.0),
    ]
    wells, features = wells_table(rows)
    result = evaluate(wells, features, cells=True)
    assert result["n_cells"] == 7 and result["n_wells"] == 5
    assert result["matches"][0]["compound"] == "A1" and result["matches"][0]["nsc_match"] == "B1 @ 1"


def test_average_precision_counts_same_moa_treatments_of_other_compounds():
    # A1's ranking (cosine): B1 (0.99), A2 (0.8): one positive at rank 2 → AP 0.5; A2's: A1 first → 1
    rows = [
        ("Week1_1", "B02", "A1", 1.0, "A", 1.0, 0.0),
        ("Week1_1", "B03", "B1", 1.0, "B", 0.99, 0.14),
        ("Week1_1", "B04", "A2", 1.0, "A", 0.8, -0.6),
        ("Week1_1", "B05", "B2", 1.0, "B", 0.0, 1.0),
    ]
    wells, features = wells_table(rows)
    result = evaluate(wells, features)
    ap = {m["compound"]: m["average_precision"] for m in result["matches"]}
    assert ap["A1"] == pytest.approx(0.5) and ap["A2"] == pytest.approx(1.0)
    assert result["map"]["value"] == pytest.approx(np.mean(list(ap.values())))


def test_nan_and_constant_features_are_dropped():
    wells, features = orthogonal_case()
    features["broken"] = np.nan
    features["constant"] = 7.0
    result = evaluate(wells, features)
    assert result["dropped_features"] == ["broken", "constant"] and result["n_features"] == 3
    assert result["nsc"]["value"] == 1.0


def test_median_aggregation_resists_an_outlier_well():
    rows = [
        ("Week1_1", "B02", "A1", 1.0, "A", 1.0, 0.0),
        ("Week1_1", "B03", "A1", 1.0, "A", 1.0, 0.0),
        ("Week1_1", "B04", "A1", 1.0, "A", -50.0, 50.0),
        ("Week1_1", "B05", "A2", 1.0, "A", 1.0, 0.1),
        ("Week1_1", "B06", "B1", 1.0, "B", -1.0, 1.0),
        ("Week1_1", "B07", "B2", 1.0, "B", -1.0, 1.1),
    ]
    wells, features = wells_table(rows)
    assert evaluate(wells, features, "none", "median")["nsc"]["value"] == 1.0
    assert evaluate(wells, features)["nsc"]["value"] < 1.0


def test_no_dmso_at_all_is_a_clear_error():
    wells, features = wells_table([("Week1_1", "B02", "A1", 1.0, "A", 1.0), ("Week1_2", "B02", "A2", 0.0, "A", 1.0)])
    with pytest.raises(ValueError, match="no DMSO row among the profiles"):
        moa.normalize(pd.concat([wells, features], axis=1), ["f0"], "plate-dmso", 2, **UNCAPPED)


def test_cli_reproduces_the_published_means_figure(shared_bbbc021, capsys):
    """Ljosa et al. 2013: 83% NSC for per-well means of CellProfiler features, 103 treatments, 12 MoAs."""
    args = [
        "moa-eval",
        "--well-profiles",
        str(shared_bbbc021 / "profiles/ljosa_jbiomolscreen_2013_per_well_mean.csv.gz"),
        "--image-metadata",
        str(shared_bbbc021 / "metadata/BBBC021_v1_image.csv"),
        "--moa",
        str(shared_bbbc021 / "metadata/BBBC021_v1_moa.csv"),
        "--normalize",
        "plate-dmso",
    ]
    assert cli(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n_treatments"] == 103 and result["n_moas"] == 12 and result["n_compounds"] == 38
    assert abs(result["nsc"]["value"] - 0.83) <= 0.02
    low, high = result["nsc"]["ci"]
    assert low < result["nsc"]["value"] < high and high - low < 0.25
    assert result["plate_references"] == {"plate-dmso": 55}
    assert result["nscb_left_out_moas"] == ["Cholesterol-lowering", "Kinase inhibitors"]
    assert result["nscb_evaluated"] == 92 and 0.5 < result["nscb"]["value"] < result["nsc"]["value"]
    assert 0.5 < result["map"]["value"] < 1 and result["map_evaluated"] == 103


def test_cli_names_a_bad_file(tmp_path, capsys):
    bad = tmp_path / "wells.csv"
    bad.write_text("a,b\n1,2\n")
    meta = tmp_path / "image.csv"
    meta.write_text("x\n")
    assert cli(["moa-eval", "--well-profiles", str(bad), "--image-metadata", str(meta), "--moa", str(meta)]) == 1
    assert "wells.csv: needs plate and well columns" in capsys.readouterr().err


@pytest.mark.parametrize(
    "content, problem", [("", "the file is empty"), ("plate,well,f0\n", "has a header but no rows")]
)
def test_cli_names_an_empty_profile_table_and_what_was_expected(tmp_path, capsys, content, problem):
    wells = tmp_path / "wells.csv"
    wells.write_text(content)
    meta = tmp_path / "image.csv"
    meta.write_text("x\n")
    assert cli(["moa-eval", "--well-profiles", str(wells), "--image-metadata", str(meta), "--moa", str(meta)]) == 1
    error = capsys.readouterr().err.strip()
    assert error == (
        f"cellvae moa-eval: {wells}: {problem}; expected per-well profiles: a header (plate, well, then one "
        "column per feature) and one row per well"
    )


def test_cli_names_an_empty_image_metadata_file(tmp_path, capsys):
    wells = tmp_path / "wells.csv"
    wells.write_text("plate,well,f0\nWeek1_1,B02,1.0\n")
    meta = tmp_path / "BBBC021_v1_image.csv"
    meta.write_bytes(b"")
    assert cli(["moa-eval", "--well-profiles", str(wells), "--image-metadata", str(meta), "--moa", str(meta)]) == 1
    assert f"cellvae moa-eval: {meta}: the file is empty" in capsys.readouterr().err


def write_cells(path, rows):
    """A per-cell table as cellvae embed writes it from a manifest (concentration_uM, moa, z0, z1)."""
    columns = ["plate", "well", "compound", "concentration_uM", "moa", "z0", "z1"]
    pd.DataFrame(rows, columns=columns).to_csv(path, index=False)


def test_cli_scores_a_per_cell_table(tmp_path, capsys):
    cells = tmp_path / "cells.csv"
    rows = []
    for index, (moa_name, direction) in enumerate((("A", (1.0, 0.0)), ("B", (0.0, 1.0)))):
        for compound in (f"{moa_name}1", f"{moa_name}2"):
            for cell in range(3):
                rows.append((f"Week{index + 1}_1", f"B0{compound[-1]}", compound, 1.0, moa_name, *direction))
    rows += [("Week1_1", "B11", "DMSO", 0.0, "", 0.1, 0.1), ("Week2_1", "B11", "DMSO", 0.0, "", 0.0, 0.0)]
    write_cells(cells, rows)
    assert cli(["moa-eval", "--cells", str(cells), "--normalize", "none", "--bootstrap", "50"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n_cells"] == 14 and result["n_wells"] == 6 and result["n_treatments"] == 4
    assert result["nsc"] == {"value": 1.0, "ci": [1.0, 1.0]} and result["map"]["value"] == 1.0


def test_cli_names_a_per_cell_table_without_treatments(tmp_path, capsys):
    cells = tmp_path / "cells.csv"
    pd.DataFrame({"plate": ["Week1_1"], "well": ["B02"], "z0": [1.0]}).to_csv(cells, index=False)
    assert cli(["moa-eval", "--cells", str(cells)]) == 1
    assert "cells.csv: per-cell table lacks column(s) compound, concentration, moa" in capsys.readouterr().err


def test_cli_names_repeated_wells_in_a_well_table(tmp_path, capsys, shared_bbbc021):
    wells = tmp_path / "wells.csv"
    wells.write_text("plate,well,f0\nWeek1_22123,B02,1.0\nWeek1_22123,B02,2.0\n")
    metadata = shared_bbbc021 / "metadata"
    args = ["--image-metadata", str(metadata / "BBBC021_v1_image.csv"), "--moa", str(metadata / "BBBC021_v1_moa.csv")]
    assert cli(["moa-eval", "--well-profiles", str(wells), *args]) == 1
    assert "2 rows repeat a plate and well, e.g. Week1_22123 B02" in capsys.readouterr().err


def test_tvn_with_fewer_controls_than_features_says_so():
    rows = [("Week1_1", f"W{i}", "DMSO", 0.0, "DMSO", *np.eye(4)[i % 4]) for i in range(3)]
    rows.append(("Week1_1", "X01", "A1", 1.0, "A", 1.0, 2.0, 3.0, 4.0))
    wells, features = wells_table(rows)
    with pytest.raises(ValueError, match=r"tvn needs more DMSO rows than features .*\(3 rows, 4 features\)"):
        moa.normalize(pd.concat([wells, features], axis=1), list(features.columns), "tvn", 2, **UNCAPPED)


def test_embed_then_moa_eval_scores_the_shared_moa_crops(shared_bbbc021, tmp_path, capsys):
    """The user's path on real cells of all 12 MoAs: train (tiny), embed the MoA manifest, moa-eval --cells."""
    manifest = shared_bbbc021 / "images/single_cells_moa/manifest.csv"
    run = tmp_path / "run"
    size = ["--size", "16", "--latent-dim", "4", "--epochs", "1", "--config", "none"]
    assert cli(["train", "--images", str(manifest), "--where", "plate=Week10_40111", *size, "--out", str(run)]) == 0
    embedded = tmp_path / "cells.parquet"  # embed's default format, read by moa-eval
    assert cli(["embed", "--model", str(run), "--images", str(manifest), "--out", str(embedded)]) == 0
    capsys.readouterr()
    assert cli(["moa-eval", "--cells", str(embedded), "--bootstrap", "100"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n_cells"] == 1945 and result["n_treatments"] == 103 and result["n_moas"] == 12
    assert result["n_features"] == 4 and sum(result["plate_references"].values()) == 54
    for key in ("nsc", "nscb", "map"):
        low, high = result[key]["ci"]
        assert 0 <= low <= result[key]["value"] <= high <= 1
