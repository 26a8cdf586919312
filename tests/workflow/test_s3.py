"""The demo pipeline with every input and output in a bucket of a real S3 server (Ceph radosgw on 127.0.0.1).

Keys reach Snakemake and its jobs only through SNAKEMAKE_STORAGE_S3_* environment variables."""

import os
import secrets
import subprocess
import time

import boto3
import pytest
import yaml

from cellvae.testing.live_servers import rados_gateway, require
from cellvae.testing.workflow import REPO, SNAKEMAKE, job_reasons, snakemake, snakemake_command, tiny_config

pytestmark = [pytest.mark.s3, pytest.mark.e2e]
BUCKET, PREFIX, PORT = "cellvae-test", "tiny", 7480
PLATES = tiny_config()["synthetic"]["plates"]


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    require("radosgw", "ceph-mon", "ceph-osd")
    access_key, secret_key = "cellvae" + secrets.token_hex(6), secrets.token_hex(20)
    with rados_gateway(tmp_path_factory.mktemp("ceph"), PORT, access_key, secret_key) as gateway:
        gateway.env = {
            "SNAKEMAKE_STORAGE_S3_ENDPOINT_URL": gateway.endpoint,
            "SNAKEMAKE_STORAGE_S3_ACCESS_KEY": access_key,
            "SNAKEMAKE_STORAGE_S3_SECRET_KEY": secret_key,
        }
        gateway.secret = secret_key
        gateway.client = boto3.client(
            "s3",
            endpoint_url=gateway.endpoint,
            region_name="us-east-1",
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
        )
        yield gateway


STORAGE = ("--cores", "2", "--default-storage-provider", "s3", "--default-storage-prefix", f"s3://{BUCKET}/{PREFIX}")


def objects(s3):
    """{key: LastModified} of every object under the prefix."""
    pages = s3.client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=PREFIX + "/")
    try:
        return {item["Key"]: item["LastModified"] for page in pages for item in page.get("Contents", [])}
    except s3.client.exceptions.NoSuchBucket:  # before the run's first upload
        return {}


@pytest.fixture(scope="module")
def first_run(s3, tmp_path_factory):
    """The whole demo into the bucket, with the S3 gateway restarted while jobs are reading and writing."""
    workdir = tmp_path_factory.mktemp("s3-run")
    (workdir / "config.yaml").write_text(yaml.safe_dump(tiny_config()))
    command = snakemake_command(workdir, *STORAGE)
    started = time.monotonic()
    with open(workdir / "snakemake.out", "w") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **s3.env}
        )
        try:
            deadline = time.monotonic() + 600
            while not any("/results/illumination/" in key for key in objects(s3)):
                assert process.poll() is None and time.monotonic() < deadline, "the run ended before illumination"
                time.sleep(1)
            s3.restart_gateway()
            s3.restarted_at = time.monotonic() - started
            returncode = process.wait(timeout=1200)
        finally:
            if process.poll() is None:
                process.kill()
    print(
        f"tiny demo with S3 storage: {time.monotonic() - started:.0f} s (gateway restarted at {s3.restarted_at:.0f} s)"
    )
    assert returncode == 0, (workdir / "snakemake.out").read_text()[-6000:]
    return workdir


def test_every_output_is_in_the_bucket_and_none_is_local(s3, first_run):
    keys = set(objects(s3))
    expected = [
        "results/analysis/metrics.csv",
        "results/analysis/reconstructions.png",
        "results/models/z4/model.keras",
        "results/dataset/manifest.csv",
    ]
    for plate in PLATES:
        expected += [
            f"results/illumination/{plate}/illum_DAPI.npy",
            f"results/segmentation/{plate}/cells.csv",
            f"results/png/{plate}/crop_sizes.png",
            f"results/benchmarks/segmentation/{plate}.tsv",
        ]
        assert any(key.startswith(f"{PREFIX}/results/png/{plate}/cells/") and key.endswith(".png") for key in keys)
        assert any(key.startswith(f"{PREFIX}/results/segmentation/{plate}/crops/") for key in keys)
    assert {f"{PREFIX}/{path}" for path in expected} <= keys
    assert not (first_run / "results").exists()


def test_second_run_does_nothing(s3, first_run):
    result = snakemake(first_run, *STORAGE, "--dry-run", env=s3.env)
    output = result.stdout + result.stderr
    assert "Nothing to be done" in output, f"jobs a rerun would redo:\n{job_reasons(output)}"


def test_replacing_one_plates_input_reruns_only_its_chain(s3, first_run):
    changed, kept = PLATES[1], PLATES[0]
    archive = f"{PREFIX}/results/synthetic/bbbc021/BBBC021_v1_images_{changed}.zip"
    body = s3.client.get_object(Bucket=BUCKET, Key=archive)["Body"].read()
    before = objects(s3)
    time.sleep(1)  # S3 times have one-second resolution
    s3.client.put_object(Bucket=BUCKET, Key=archive, Body=body)
    result = snakemake(first_run, *STORAGE, env=s3.env)
    after = objects(s3)
    rewritten = {key for key in before if after.get(key) != before[key]}
    jobs = job_reasons(result.stdout + result.stderr)
    for stage in ["fetch", "illumination", "segmentation", "png"]:
        assert any(key.startswith(f"{PREFIX}/results/{stage}/{changed}/") for key in rewritten), (stage, jobs)
        assert not any(key.startswith(f"{PREFIX}/results/{stage}/{kept}/") for key in rewritten), (stage, jobs)
    assert f"{PREFIX}/results/models/z4/model.keras" in rewritten
    assert f"{PREFIX}/results/metadata/selected_images.csv" not in rewritten
    assert set(before) <= set(after)


def test_credentials_appear_in_no_file_log_or_report(s3, first_run):
    snakemake(first_run, *STORAGE, "--report", str(first_run / "report.html"), env=s3.env)
    assert (first_run / "report.html").stat().st_size > 1000
    leaks = [str(path) for path in first_run.rglob("*") if path.is_file() and s3.secret.encode() in path.read_bytes()]
    for key in objects(s3):
        if s3.secret.encode() in s3.client.get_object(Bucket=BUCKET, Key=key)["Body"].read():
            leaks.append(f"s3://{BUCKET}/{key}")
    assert not leaks


def test_aws_gpu_profile_dry_runs_against_the_bucket(s3, tmp_path):
    """`--profile aws-gpu` by name, as a user runs it after make setup (envs/link_profiles.sh links it into a
    throw-away HOME), from the repository root with placeholder Batch settings; its storage is this S3 server."""
    home = {
        **{key: value for key, value in os.environ.items() if key != "XDG_CONFIG_HOME"},
        "HOME": str(tmp_path / "home"),
    }
    linked = subprocess.run(
        ["bash", str(REPO / "envs" / "link_profiles.sh")], capture_output=True, text=True, timeout=60, env=home
    )
    assert linked.returncode == 0, linked.stderr
    placeholders = {
        "CELLVAE_AWS_REGION": "us-east-1",
        "CELLVAE_S3_PREFIX": f"s3://{BUCKET}/aws-dry-run",
        "CELLVAE_BATCH_JOB_QUEUE_GPU": "arn:aws:batch:us-east-1:123456789012:job-queue/gpu",
        "CELLVAE_BATCH_JOB_ROLE_ARN": "arn:aws:iam::123456789012:role/cellvae-job",
        "CELLVAE_ECR_IMAGE": "123456789012.dkr.ecr.us-east-1.amazonaws.com/cellvae:test",
    }
    result = subprocess.run(
        [str(SNAKEMAKE), "-n", "--directory", str(tmp_path / "work"), "--profile", "aws-gpu"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env={**home, **s3.env, **placeholders},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "Using profiles aws-gpu" in output
    assert f"s3://{BUCKET}/aws-dry-run/results/metadata/selected_images.csv" in output
