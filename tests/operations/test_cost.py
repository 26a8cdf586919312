"""Cost table from benchmark files: hours × price per instance type, per stage and per model."""

import math
import re

import pytest

from cellvae.cli import main
from cellvae.operations.cost import CostError, cost_table, job_of
from cellvae.testing.workflow import CELLPROFILER, snakemake

SETTINGS = {
    "currency": "USD",
    "gpu_rules": ["train_vae"],
    "instances": {
        "cpu": {"type": "c6i.2xlarge", "price_per_hour": 0.5},
        "gpu": {"type": "p3.2xlarge", "price_per_hour": 3.0},
    },
}
STAGES = {
    "illumination": "illumination",
    "train_vae": "train",
    "analyze_model": "analysis",
    "compare_models": "analysis",
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
    table = cost_table(files, SETTINGS, STAGES).set_index(["stage", "model"])
    assert table.loc[("illumination", "all models"), "jobs"] == 2
    assert table.loc[("illumination", "all models"), "hours"] == 1.5
    assert table.loc[("illumination", "all models"), "cost"] == 0.75
    assert table.loc[("train", "z=75"), "cost"] == 6.0
    assert table.loc[("train", "z=150"), "cost"] == 6.0
    assert table.loc[("train", "z=150"), "instance_type"] == "p3.2xlarge"
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


@pytest.mark.parametrize(
    "cell, problem",
    [
        ("-3600", "is '-3600', not wall seconds (a finite number >= 0)"),
        ("abc", "is 'abc', not wall seconds (a finite number >= 0)"),
        ("inf", "is 'inf', not wall seconds (a finite number >= 0)"),
        ("", "is empty"),
    ],
)
def test_seconds_that_are_not_wall_times_are_refused_naming_file_column_and_row(tmp_path, cell, problem):
    path = benchmark(tmp_path, "train_vae/z4.tsv", [60, cell])
    with pytest.raises(CostError) as error:
        cost_table([path], SETTINGS, STAGES)
    assert str(error.value) == f"{path}: column 's', row 2 {problem}; expected a Snakemake benchmark file"


def test_cost_command_refuses_negative_seconds_and_prices_in_one_line(tmp_path, capsys):
    negative = benchmark(tmp_path, "illumination/Week1_1.tsv", [-3600])
    assert main(["cost", str(negative)]) == 1
    out, err = capsys.readouterr()
    why = "not wall seconds (a finite number >= 0); expected a Snakemake benchmark file"
    assert not out and err == f"cellvae cost: {negative}: column 's', row 1 is '-3600', {why}\n"
    good = benchmark(tmp_path, "illumination/Week2_2.tsv", [3600])
    for kind, price in [("cpu", "-0.5"), ("gpu", "nan"), ("cpu", "cheap")]:
        with pytest.raises(SystemExit) as exit:
            main(["cost", f"--{kind}", "m6i.large", price, str(good)])
        assert exit.value.code == 2
        bound = f"expected a finite number >= 0 (config cost.instances.{kind}.price_per_hour), got {price!r}"
        assert capsys.readouterr().err.splitlines()[-1] == f"cellvae cost: error: argument --{kind} PRICE: {bound}"
    assert main(["cost", "--cpu", "m6i.large", "0.5", str(good)]) == 0
    assert "0.5" in capsys.readouterr().out


def test_stages_in_workflow_order_and_an_unknown_rule_as_its_own_stage_last(tmp_path):
    files = [
        benchmark(tmp_path, "compare_models.tsv", [60]),
        benchmark(tmp_path, "new_rule.tsv", [60]),
        benchmark(tmp_path, "train_vae/z4.tsv", [60]),
        benchmark(tmp_path, "illumination/Week1_1.tsv", [60]),
    ]
    table = cost_table(files, SETTINGS, STAGES)
    assert list(table["stage"]) == ["illumination", "train", "analysis", "new_rule", "total"]


@pytest.mark.skipif(not CELLPROFILER.exists(), reason=f"CellProfiler not installed at {CELLPROFILER}")
def test_cost_job_reads_the_benchmark_of_every_other_job_of_the_plan(selection):
    workdir, config = selection  # past the selection: the plates, the whole plan
    jobs = re.split(r"\n(?=(?:local)?rule \w+:)", snakemake(workdir, "-n", config=config).stdout)
    done = {str(path.relative_to(workdir)) for path in (workdir / "results" / "benchmarks").rglob("*.tsv")}
    planned = {re.search(r"^\s+benchmark: (\S+)$", job, re.M)[1] for job in jobs if "    benchmark: " in job}
    assert done == {"results/benchmarks/fetch_metadata.tsv", "results/benchmarks/select_images.tsv"}
    assert len(planned) > 10
    benchmarks = done | planned
    (cost,) = [job for job in jobs if job.startswith("rule cost:")]
    read = set(re.search(r"^\s+input: (.*)$", cost, re.M)[1].split(", "))
    assert read == benchmarks - {"results/benchmarks/cost.tsv", "results/benchmarks/glance.tsv"}  # glance reads cost
    assert {"results/benchmarks/response_profiles/z4.tsv", "results/benchmarks/png_scale.tsv"} <= read
