"""Cost table from benchmark files: hours × price per instance type, per stage and per model."""

import math

import pytest

from cellvae.cost import CostError, cost_table, job_of

SETTINGS = {
    "currency": "USD",
    "gpu_rules": ["train_vae"],
    "instances": {
        "cpu": {"type": "c6i.2xlarge", "price_per_hour": 0.5},
        "gpu": {"type": "p3.2xlarge", "price_per_hour": 3.0},
    },
}


def benchmark(root, relative, seconds):
    path = root / "results" / "benchmarks" / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("s\th:m:s\tmax_rss\n" + "".join(f"{s}\t0:00:00\t1.0\n" for s in seconds))
    return path


def test_hours_times_price_per_stage_and_model(tmp_path):
    files = [
        benchmark(tmp_path, "illumination/Week1_1.tsv", [1800]),
        benchmark(tmp_path, "illumination/Week2_2.tsv", [3600]),
        benchmark(tmp_path, "train_vae/z75.tsv", [7200]),
        benchmark(tmp_path, "train_vae/z150.tsv", [3600, 3600]),
        benchmark(tmp_path, "compare_models.tsv", [360]),
    ]
    table = cost_table(files, SETTINGS).set_index(["stage", "model"])
    assert table.loc[("illumination", "all models"), "jobs"] == 2
    assert table.loc[("illumination", "all models"), "hours"] == 1.5
    assert table.loc[("illumination", "all models"), "cost"] == 0.75
    assert table.loc[("training", "z=75"), "cost"] == 6.0
    assert table.loc[("training", "z=150"), "cost"] == 6.0
    assert table.loc[("training", "z=150"), "instance_type"] == "p3.2xlarge"
    assert table.loc[("analysis", "all models"), "cost"] == 0.05
    total = table.loc[("total", "")]
    assert total["jobs"] == 5 and math.isclose(total["cost"], 12.8) and math.isclose(total["hours"], 5.6)


def test_job_of_names_rule_and_model():
    assert job_of("results/benchmarks/analyze_model/z300.tsv") == ("analyze_model", "z=300")
    assert job_of("x/results/benchmarks/segmentation/Week4_27481.tsv") == ("segmentation", "all models")


def test_bad_benchmark_file_is_named(tmp_path):
    bad = tmp_path / "results" / "benchmarks" / "dataset.tsv"
    bad.parent.mkdir(parents=True)
    bad.write_text("wall\n3\n")
    with pytest.raises(CostError, match="dataset.tsv: no 's' column"):
        cost_table([bad], SETTINGS)
