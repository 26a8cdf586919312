"""Every profile dry-runs (placeholder cluster settings) and asks for what it should; aws-gpu is in test_s3.py
(its storage needs an S3 server)."""

import re

import pytest
import yaml
from live_servers import CELLPROFILER, REPO, snakemake, tiny_config

pytestmark = pytest.mark.skipif(not CELLPROFILER.exists(), reason=f"CellProfiler not installed at {CELLPROFILER}")
SLURM_ENV = {
    "CELLVAE_SLURM_ACCOUNT": "acct-x",
    "CELLVAE_SLURM_PARTITION": "cpu-x",
    "CELLVAE_SLURM_GPU_PARTITION": "gpu-x",
    "CELLVAE_SLURM_GPU_MODEL": "a100",
}
UNSET = {name: "" for name in SLURM_ENV}


@pytest.fixture(scope="module")
def selected(tmp_path_factory):
    """A workdir past the selection checkpoint, so dry runs show the whole plan."""
    workdir = tmp_path_factory.mktemp("profiles")
    (workdir / "config.yaml").write_text(yaml.safe_dump(tiny_config()))
    snakemake(workdir, "--cores", "2", "results/metadata/selected_images.csv")
    return workdir


def planned_resources(output):
    """{rule: [resources line of each planned job]} from a dry run's output."""
    plan = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", output):
        rule = re.match(r"(?:local)?rule (\w+):", block)
        resources = re.search(r"^\s+resources: (.*)$", block, re.M)
        if rule and resources:
            plan.setdefault(rule.group(1), []).append(resources.group(1))
    return plan


def test_default_profile_dry_runs_the_whole_plan(selected):
    plan = planned_resources(snakemake(selected, "-n").stdout)
    assert {"illumination", "segmentation", "compose_pngs", "train_vae", "cost"} <= set(plan)


def test_slurm_profile_asks_a_gpu_for_training_only_with_account_and_partitions_from_the_environment(selected):
    output = snakemake(selected, "-n", "--profile", str(REPO / "profiles" / "slurm-gpu"), env=SLURM_ENV).stdout
    plan = planned_resources(output)
    (training,) = plan.pop("train_vae")
    assert "gpu=1" in training and "gpu_model=a100" in training and "slurm_partition=gpu-x" in training
    assert "cpus_per_task=8" in training and "slurm_account=acct-x" in training
    assert len(plan) >= 8
    for rule, jobs in plan.items():
        for resources in jobs:
            assert "gpu" not in resources, rule
            assert "slurm_partition=cpu-x" in resources and "slurm_account=acct-x" in resources, rule
            assert re.search(r"\bmem_mb=\d+", resources) and re.search(r"\bruntime=\d+", resources), rule


def test_slurm_profile_without_settings_leaves_account_and_partition_to_slurm(selected):
    output = snakemake(selected, "-n", "--profile", str(REPO / "profiles" / "slurm-gpu"), env=UNSET).stdout
    plan = planned_resources(output)
    assert "gpu=1" in plan["train_vae"][0] and "gpu_model" not in plan["train_vae"][0]
    assert not any("slurm_" in resources for jobs in plan.values() for resources in jobs)
