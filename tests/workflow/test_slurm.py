"""The demo pipeline through --profile profiles/slurm-gpu on a real single-node Slurm (fake GPU) on 127.0.0.1.

Only the partition (CELLVAE_SLURM_PARTITION) and the account (--slurm-no-account) are test settings. The jobs
write the same local files as a local run, whose second run tests/workflow/test_workflow.py checks has nothing to do."""

import os
import re
import subprocess
import time

import pytest
import yaml

from cellvae.testing.live_servers import require, slurm_cluster
from cellvae.testing.workflow import REPO, snakemake, tiny_config

pytestmark = [pytest.mark.slurm, pytest.mark.e2e]
PARTITION = "cellvae-test"


@pytest.fixture(scope="module")
def slurm_run(tmp_path_factory):
    require("slurmctld", "slurmd", "sbatch", "munged")
    workdir = tmp_path_factory.mktemp("slurm-run")
    (workdir / "config.yaml").write_text(yaml.safe_dump(tiny_config()))
    with slurm_cluster(tmp_path_factory.mktemp("slurm-state")) as slurm_env:
        env = {**slurm_env, "CELLVAE_SLURM_PARTITION": PARTITION}
        started = time.monotonic()
        result = snakemake(workdir, "--profile", str(REPO / "profiles" / "slurm-gpu"), "--slurm-no-account", env=env)
        print(f"tiny demo through Slurm: {time.monotonic() - started:.0f} s")
        jobs = subprocess.run(
            ["squeue", "--states=all", "--noheader", "--format=%i|%k|%P|%T"],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, **env},
        ).stdout
        details = {}
        for line in jobs.splitlines():
            job_id, comment, partition, state = line.strip().split("|")
            shown = subprocess.run(
                ["scontrol", "show", "job", job_id],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, **env},
            ).stdout
            details[job_id] = {
                "rule": comment.removeprefix("rule_").split("_wildcards_")[0],
                "partition": partition,
                "state": state,
                "scontrol": shown,
            }
    yield workdir, result, details


def test_every_rule_ran_as_a_slurm_job_and_completed(slurm_run):
    workdir, _, details = slurm_run
    rules = {job["rule"] for job in details.values()}
    assert {
        "fetch_images",
        "illumination",
        "segmentation",
        "compose_pngs",
        "dataset",
        "train_vae",
        "analyze_model",
        "compare_models",
    } <= rules
    assert {job["state"] for job in details.values()} == {"COMPLETED"}
    assert {job["partition"] for job in details.values()} == {PARTITION}
    assert (workdir / "results/analysis/metrics.csv").exists()
    assert (workdir / "results/models/z4/model.keras").exists()


def test_train_vae_reaches_sbatch_with_a_gpu_and_nothing_else_does(slurm_run):
    _, _, details = slurm_run
    training = [job for job in details.values() if job["rule"] == "train_vae"]
    assert len(training) == 1
    assert re.search(r"TresPerJob=gres:gpu:1\b", training[0]["scontrol"])
    assert re.search(r"TRES=cpu=8,mem=(32768M|32G)\b", training[0]["scontrol"])
    others = [job for job in details.values() if job["rule"] != "train_vae"]
    assert others and not any("gpu" in job["scontrol"] for job in others)
