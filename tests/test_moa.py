"""MoA evaluator: hand-made cases with known answers, normalizations, the CLI on the real Ljosa profiles."""

import json

import numpy as np
import pandas as pd
import pytest

from cellvae import moa
from cellvae.cli import main as cli


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
    result = moa.evaluate_wells(wells, features, "none", "mean")
    assert result["n_treatments"] == 6 and result["n_moas"] == 3
    assert result["nsc"] == 1.0 and result["nscb"] == 1.0
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
    result = moa.evaluate_wells(wells, features, "none", "mean")
    first = result["matches"][0]
    assert first["compound"] == "A1" and first["nsc_match"] == "A2 @ 1"
    # A2 and B1 are each other's nearest (cosine 0.99): two wrong matches the evaluator must count as wrong.
    assert result["per_moa"]["B"]["nsc"] == {"n": 2, "correct": 1, "accuracy": 0.5}
    assert result["per_moa"]["A"]["nsc"] == {"n": 3, "correct": 2, "accuracy": pytest.approx(2 / 3)}
    assert result["nsc"] == pytest.approx(3 / 5)


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
    result = moa.evaluate_wells(wells, features, "none", "mean")
    by_compound = {m["compound"]: m for m in result["matches"]}
    assert by_compound["A1"]["nsc_match"] == "A2 @ 1"
    assert by_compound["A1"]["nscb_match"] == "B1 @ 1" and by_compound["A1"]["nscb_match_moa"] == "B"
    assert result["nscb_left_out_moas"] == ["C"] and by_compound["C1"]["nscb_match"] is None
    assert result["nscb_evaluated"] == 5 and result["per_moa"]["C"]["nscb"] is None
    assert by_compound["C1"]["nsc_match"] == "C2 @ 1"


def test_single_compound_leaves_nsc_undefined():
    rows = [("Week1_1", "B02", "taxol", 0.3, "MT", 1.0, 0.0), ("Week1_1", "B11", "DMSO", 0.0, "DMSO", 0.0, 1.0)]
    wells, features = wells_table(rows)
    result = moa.evaluate_wells(wells, features, "none", "mean")
    assert result["nsc"] is None and "1 compound" in result["nsc_undefined"] and result["n_treatments"] == 1


def test_plate_dmso_standardizes_against_each_plates_controls():
    rows = [
        ("Week1_1", "B02", "DMSO", 0.0, "DMSO", 10.0, 5.0),
        ("Week1_1", "B03", "DMSO", 0.0, "DMSO", 12.0, 5.0),
        ("Week1_1", "B04", "A1", 1.0, "A", 13.0, 7.0),
        ("Week1_2", "B02", "DMSO", 0.0, "DMSO", 0.0, 1.0),
        ("Week1_2", "B03", "DMSO", 0.0, "DMSO", 4.0, 3.0),
        ("Week1_2", "B04", "A1", 1.0, "A", 6.0, 3.0),
    ]
    wells, features = wells_table(rows)
    values = moa.plate_dmso(wells, features.to_numpy(float))
    # plate 1: feature 0 mean 11 sd 1 → 2; feature 1 is constant in DMSO → pooled DMSO sd
    # (plate-centred DMSO values 0, 0, -1, 1 → sd 1/√2) → (7 - 5)·√2; plate 2: mean 2 sd 2 → 2, mean 2 sd 1 → 1
    assert values[2] == pytest.approx([2.0, 2.0 * np.sqrt(2)])
    assert values[5] == pytest.approx([2.0, 1.0])


def test_tvn_whitens_the_dmso_wells():
    rng = np.random.default_rng(0)
    dmso = rng.normal(size=(40, 3)) @ np.array([[3.0, 0, 0], [1.0, 0.5, 0], [0, 0, 0.2]])
    rows = [("Week1_1", f"W{i}", "DMSO", 0.0, "DMSO", *row) for i, row in enumerate(dmso)]
    rows.append(("Week1_1", "X01", "A1", 1.0, "A", 1.0, 1.0, 1.0))
    wells, features = wells_table(rows)
    values = moa.tvn(wells, features.to_numpy(float))
    assert np.cov(values[:-1].T) == pytest.approx(np.eye(3), abs=1e-9)


def test_nan_and_constant_features_are_dropped():
    wells, features = orthogonal_case()
    features["broken"] = np.nan
    features["constant"] = 7.0
    result = moa.evaluate_wells(wells, features, "none", "mean")
    assert result["dropped_features"] == ["broken", "constant"] and result["n_features"] == 3
    assert result["nsc"] == 1.0


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
    assert moa.evaluate_wells(wells, features, "none", "median")["nsc"] == 1.0
    assert moa.evaluate_wells(wells, features, "none", "mean")["nsc"] < 1.0


def test_plate_without_dmso_is_a_clear_error():
    wells, features = wells_table(
        [("Week1_1", "B02", "A1", 1.0, "A", 1.0), ("Week1_2", "B02", "DMSO", 0.0, "DMSO", 1.0)]
    )
    with pytest.raises(ValueError, match="plate Week1_1 has no DMSO"):
        moa.plate_dmso(wells, features.to_numpy(float))


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
    assert abs(result["nsc"] - 0.83) <= 0.02
    assert result["nscb_left_out_moas"] == ["Cholesterol-lowering", "Kinase inhibitors"]
    assert result["nscb_evaluated"] == 92 and 0.5 < result["nscb"] < result["nsc"]


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
