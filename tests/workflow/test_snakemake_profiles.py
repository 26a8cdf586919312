"""Job sizes come from the rules, the same under every profile, in sizes AWS Batch accepts; the profiles only say
where jobs go. Every profile dry-runs (placeholder cluster settings); aws-gpu is in test_s3.py (its storage needs
an S3 server), but for its refusals of unset variables, which come before any network."""

import os
import re
import subprocess
import time

import pytest
import yaml
from snakemake_executor_plugin_aws_batch.constant import VALID_RESOURCES_MAPPING

from cellvae.testing.workflow import CELLPROFILER, REPO, SNAKEMAKE, printed_jobs, snakemake

needs_cellprofiler = pytest.mark.skipif(
    not CELLPROFILER.exists(), reason=f"CellProfiler not installed at {CELLPROFILER}"
)
# a dry run caps threads at --cores (1 when not given), as a local run does; cluster runs leave them as the rules say
CORES = ("--cores", "64")
SIZES = ("threads", "mem_mb", "runtime", "gpu", "_gpus")
# what a profile may set per job: where it goes, never how big it is
SUBMISSION_KEYS = {"slurm_account", "slurm_partition", "gpu_model"}
SLURM_ENV = {
    "CELLVAE_SLURM_ACCOUNT": "acct-x",
    "CELLVAE_SLURM_PARTITION": "cpu-x",
    "CELLVAE_SLURM_GPU_PARTITION": "gpu-x",
    "CELLVAE_SLURM_GPU_MODEL": "a100",
}
UNSET = {name: "" for name in SLURM_ENV}
# what `python -m cellvae aws env` prints, in form (tests/workflow/test_s3.py dry-runs the profile against a real
# bucket)
PLACEHOLDERS = {
    "CELLVAE_AWS_REGION": "us-east-1",
    "CELLVAE_S3_PREFIX": "s3://cellvae-test/run",
    "CELLVAE_BATCH_JOB_QUEUE_GPU": "arn:aws:batch:us-east-1:123456789012:job-queue/gpu",
    "CELLVAE_BATCH_JOB_ROLE_ARN": "arn:aws:iam::123456789012:role/cellvae-job",
    "CELLVAE_ECR_IMAGE": "123456789012.dkr.ecr.us-east-1.amazonaws.com/cellvae:test",
}


@pytest.fixture(scope="module")
def profiles_by_name(tmp_path_factory):
    """The environment where `--profile slurm-gpu` names the checkout's profile, as after make setup
    (envs/link_profiles.sh) with a throw-away XDG_CONFIG_HOME; tests/workflow/test_profiles_link.py tests the
    linking."""
    config_home = tmp_path_factory.mktemp("xdg")
    env = {"XDG_CONFIG_HOME": str(config_home)}
    subprocess.run(
        ["bash", REPO / "envs" / "link_profiles.sh"], check=True, capture_output=True, env={**os.environ, **env}
    )
    return env


@pytest.fixture(scope="module")
def rules_plan(selection):
    """{rule: [resources of each job]} of the whole plan as the rules size it (no profile but the default)."""
    return planned_resources(snakemake(selection.workdir, "-n", *CORES, config=selection.config).stdout)


def planned_resources(output):
    """{rule: [resources of each planned job, threads included]} from a dry run's output (checkpoints aside)."""
    plan = {}
    for job in printed_jobs(output):
        if not job["checkpoint"] and "resources" in job:
            resources = dict(item.split("=", 1) for item in job["resources"].split(", "))
            plan.setdefault(job["rule"], []).append({**resources, "threads": job.get("threads", "1")})
    plan.pop("all", None)
    return plan


def sizes(plan):
    """{rule: the sizes its jobs ask for}."""
    return {rule: [{key: job[key] for key in SIZES if key in job} for job in jobs] for rule, jobs in plan.items()}


def profile_job_keys(settings):
    """The keys a profile sets per job (default-resources, set-resources, set-threads), through yte `?if` blocks."""

    def keys(mapping):
        for key, value in (mapping or {}).items():
            yield from keys(value) if key.startswith("?") else [key]

    def section(mapping, name):
        for key, value in (mapping or {}).items():
            if key.startswith("?"):
                yield from section(value, name)
            elif key == name:
                yield value

    found = {"set-threads"} if list(section(settings, "set-threads")) else set()
    for defaults in section(settings, "default-resources"):
        found |= set(keys(defaults))
    for per_rule in section(settings, "set-resources"):
        for resources in per_rule.values():
            found |= set(keys(resources))
    return found


def test_profiles_say_where_jobs_go_not_how_big_they_are():
    profiles = sorted((REPO / "profiles").glob("*/config.yaml"))
    assert {profile.parent.name for profile in profiles} >= {"default", "slurm-gpu", "aws-gpu"}
    for profile in profiles:
        assert profile_job_keys(yaml.safe_load(profile.read_text())) <= SUBMISSION_KEYS, profile


@needs_cellprofiler
def test_every_rule_sizes_its_jobs_in_sizes_aws_batch_accepts(rules_plan):
    plan = {rule: list(jobs) for rule, jobs in rules_plan.items()}
    assert {"illumination", "segmentation", "compose_pngs", "train_vae", "response_profiles", "cost"} <= set(plan)
    for rule, jobs in plan.items():
        for job in jobs:
            assert re.fullmatch(r"\d+", job.get("runtime", "")), rule
            vcpus, mem_mb = int(job["threads"]), int(job["mem_mb"])
            assert vcpus in VALID_RESOURCES_MAPPING.get(mem_mb, []), f"{rule}: {vcpus} vCPUs with {mem_mb} MB"
    (training,) = plan.pop("train_vae")
    assert training["threads"] == "8" and training["gpu"] == training["_gpus"] == "1"
    assert not any("gpu" in key for jobs in plan.values() for job in jobs for key in job), "a GPU beyond training"


@needs_cellprofiler
def test_slurm_profile_by_name_keeps_the_rules_sizes_and_sends_training_to_the_gpu_partition(
    selection, profiles_by_name, rules_plan
):
    workdir, config = selection
    output = snakemake(workdir, "-n", *CORES, "--profile", "slurm-gpu", config=config, env=SLURM_ENV | profiles_by_name)
    assert "Using profiles slurm-gpu" in output.stdout + output.stderr
    plan = planned_resources(output.stdout)
    assert sizes(plan) == sizes(rules_plan)
    (training,) = plan.pop("train_vae")
    assert training["gpu_model"] == "a100" and training["slurm_partition"] == "gpu-x"
    assert training["slurm_account"] == "acct-x"
    for rule, jobs in plan.items():
        for job in jobs:
            assert job["slurm_partition"] == "cpu-x" and job["slurm_account"] == "acct-x", rule


@needs_cellprofiler
def test_slurm_profile_without_settings_leaves_account_and_partition_to_slurm(selection):
    workdir, config = selection
    output = snakemake(workdir, "-n", "--profile", REPO / "profiles" / "slurm-gpu", config=config, env=UNSET).stdout
    plan = planned_resources(output)
    assert plan["train_vae"][0]["gpu"] == "1" and "gpu_model" not in plan["train_vae"][0]
    assert not any(key.startswith("slurm_") for jobs in plan.values() for job in jobs for key in job)


AWS_VARIABLES = [
    "CELLVAE_AWS_REGION",
    "CELLVAE_S3_PREFIX",
    "CELLVAE_BATCH_JOB_QUEUE_GPU",
    "CELLVAE_BATCH_JOB_ROLE_ARN",
    "CELLVAE_ECR_IMAGE",
]


def aws_dry_run(tmp_path, **variables):
    """`snakemake --profile aws-gpu -n` with only `variables` of the profile's set, no AWS credentials and no
    network: what fails must fail before anything is contacted."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CELLVAE_", "AWS_"))}
    env.update(
        variables, AWS_EC2_METADATA_DISABLED="true", HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9"
    )
    started = time.monotonic()
    result = subprocess.run(
        [str(SNAKEMAKE), "-n", "--directory", str(tmp_path), "--profile", str(REPO / "profiles" / "aws-gpu")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=env,
    )
    return result, time.monotonic() - started


@pytest.mark.parametrize("given", [[], ["CELLVAE_AWS_REGION"], AWS_VARIABLES[:-1]])
def test_aws_profile_names_the_unset_variables_in_one_line(tmp_path, given):
    """Was: a 74-line boto traceback (region '$CELLVAE_AWS_REGION'), or with only the region set a storage error."""
    result, seconds = aws_dry_run(tmp_path, **{name: PLACEHOLDERS[name] for name in given})
    output = result.stdout + result.stderr
    unset = [name for name in AWS_VARIABLES if name not in given]
    assert result.returncode != 0
    assert f"profile aws-gpu: {', '.join(unset)} {'is' if len(unset) == 1 else 'are'} unset; " in output
    assert 'eval "$(python -m cellvae aws env)"' in output
    assert "Traceback" not in output and "botocore" not in output and len(output.strip().splitlines()) <= 2, output
    assert seconds < 60


def test_aws_profile_refuses_a_prefix_that_is_not_s3(tmp_path):
    result, _ = aws_dry_run(tmp_path, **{**PLACEHOLDERS, "CELLVAE_S3_PREFIX": "my-bucket/cellvae"})
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "CELLVAE_S3_PREFIX is 'my-bucket/cellvae', not s3://bucket/prefix" in output
    assert "Traceback" not in output
