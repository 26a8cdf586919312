"""Paired MoA comparisons (cellvae.profiling.moa_paired, `cellvae moa-eval --compare`): known differences, intervals
that
resample compounds, seed averages; a capped normalization reference (cellvae.profiling.moa.capped_rows)."""

import json

import numpy as np
import pandas as pd
import pytest

from cellvae.cli import main as cli
from cellvae.profiling import moa
from cellvae.profiling.moa_paired import compound_intervals, paired_difference, seed_average


def scores(hits, doses=2):
    """Treatment scores of compounds c0, c1, … with `doses` treatments each; hits: one value per treatment."""
    compounds = [f"c{i // doses}" for i in range(len(hits))]
    index = pd.MultiIndex.from_arrays([compounds, [float(i % doses) for i in range(len(hits))]])
    index.names = ["compound", "concentration"]
    values = np.asarray(hits, dtype=float)
    return pd.DataFrame({"moa": "m", "nsc": values, "nscb": values, "map": values}, index=index)


def test_a_difference_shared_by_every_compound_has_no_spread():
    """Every compound: one dose hit by both, one by the first only: the difference is 0.5 in every resample."""
    difference = paired_difference(scores([1, 1] * 4), scores([1, 0] * 4), bootstrap=200, seed=0)
    assert difference["nsc"]["difference"] == {"value": 0.5, "ci": [0.5, 0.5]}
    assert difference["nsc"]["first"] == 1.0 and difference["nsc"]["second"] == 0.5
    assert difference["n_compounds"] == 4 and difference["nsc"]["n_treatments"] == 8


def test_the_interval_resamples_compounds_not_treatments():
    """Two doses of a compound move together: the compound bootstrap is wider than a treatment bootstrap, and a
    treatment scored by one table only is left out of both."""
    first = scores([1, 1, 1, 1, 1, 1, 1, 1, 1, 1])
    second = scores([0, 0, 1, 1, 1, 1, 0, 0, 1, np.nan])
    result = paired_difference(first, second, bootstrap=2000, seed=0)["nsc"]
    assert result["n_treatments"] == 9 and result["difference"]["value"] == pytest.approx(4 / 9)
    low, high = result["difference"]["ci"]
    treatment_level = moa.interval(np.array([1, 1, 0, 0, 0, 0, 1, 1, 0]), 2000, 0)["ci"]
    assert low < 4 / 9 < high and high - low > treatment_level[1] - treatment_level[0]


def test_seed_average_gets_an_interval_of_its_own():
    """Two seeds' hits averaged per treatment, then one interval over compounds for the mean (not the mean of the
    seeds' bounds)."""
    averaged = seed_average([scores([1, 0, 1, 0]), scores([1, 1, 0, 0])])
    np.testing.assert_allclose(averaged["nsc"], [1.0, 0.5, 0.5, 0.0])
    intervals = compound_intervals(averaged, bootstrap=500, seed=0)
    assert intervals["nsc"]["value"] == 0.5 and intervals["nsc"]["ci"][0] < 0.5 < intervals["nsc"]["ci"][1]
    with pytest.raises(ValueError, match="different treatments"):
        seed_average([scores([1, 0]), scores([1, 0, 1, 0])])


def write_cells(path, informative: bool):
    """Cells of 3 MoAs × 2 compounds × 2 doses on two plates, plus DMSO: informative features point along the
    MoA's axis; the others are noise."""
    rng = np.random.default_rng(0)
    rows = []
    for m in range(3):
        for compound in range(2):
            for dose, plate in ((1.0, "Week1_1"), (3.0, "Week2_1")):
                for _ in range(4):
                    axis = np.eye(3)[m] if informative else rng.normal(size=3)
                    well = f"B{2 + 2 * compound + (dose > 1):02d}"
                    rows.append((plate, well, f"m{m}c{compound}", dose, f"moa{m}", *(axis + 0.05 * rng.normal(size=3))))
    for plate in ("Week1_1", "Week2_1"):
        rows += [(plate, "G11", "DMSO", 0.0, "", *(0.05 * rng.normal(size=3))) for _ in range(4)]
    columns = ["plate", "well", "compound", "concentration_uM", "moa", "z0", "z1", "z2"]
    pd.DataFrame(rows, columns=columns).to_csv(path, index=False)
    return path


def test_compare_prints_the_paired_difference_of_two_tables(tmp_path, capsys):
    good, noise = write_cells(tmp_path / "good.csv", True), write_cells(tmp_path / "noise.csv", False)
    args = ["--normalize", "none", "--bootstrap", "300"]
    assert cli(["moa-eval", "--compare", str(good), str(noise), *args]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["a"]["nsc"]["value"] == 1.0 and result["a"]["table"] == str(good)
    nsc = result["a_minus_b"]["nsc"]
    assert nsc["difference"]["value"] == pytest.approx(1.0 - result["b"]["nsc"]["value"])
    assert nsc["difference"]["ci"][0] <= nsc["difference"]["value"] <= nsc["difference"]["ci"][1]
    assert result["a_minus_b"]["n_compounds"] == 6
    assert cli(["moa-eval", "--compare", str(good), str(good), *args]) == 0
    same = json.loads(capsys.readouterr().out)["a_minus_b"]
    assert all(same[metric]["difference"] == {"value": 0.0, "ci": [0.0, 0.0]} for metric in ("nsc", "nscb", "map"))


def test_the_normalization_reference_takes_at_most_cap_rows_of_each_treatment():
    """A treatment of 100 rows and one of 5: with a cap of 10 each enters the statistics with at most 10 rows, the
    same ones for the same seed."""
    table = pd.DataFrame({"compound": ["big"] * 100 + ["small"] * 5, "concentration": 1.0})
    allowed = moa.capped_rows(table, 10, seed=0)
    assert allowed[:100].sum() == 10 and allowed[100:].all()
    assert allowed.equals(moa.capped_rows(table, 10, seed=0)) and not allowed.equals(moa.capped_rows(table, 10, 1))
    features = pd.DataFrame({"f0": np.r_[np.full(100, 10.0), np.zeros(5)] + np.arange(105) * 1e-3})
    rows = pd.concat([table.assign(plate="P_1", batch="P", well="B02", moa="x"), features], axis=1)
    capped, _ = moa.normalize(rows, ["f0"], "standardize", 2, reference_cap=5, seed=0)
    uncapped, _ = moa.normalize(rows, ["f0"], "standardize", 2, reference_cap=1000, seed=0)
    big, small = slice(0, 100), slice(100, 105)
    assert capped["f0"][big].mean() == pytest.approx(-capped["f0"][small].mean(), abs=0.1)  # centred between them
    assert capped["f0"][big].mean() > 0.5 and uncapped["f0"][small].mean() < -3  # uncapped: centred on the big one
