"""`cellvae aws deploy|env|destroy` against moto's in-process CloudFormation, S3, Batch, IAM, ECR and EC2.

moto 5.2.5 limits, handled explicitly: its CloudFormation skips AWS::S3::BucketPolicy and AWS::Budgets::Budget
(with a warning; test_stack_creates_every_supported_resource pins exactly those two), applies only the
encryption of a bucket's properties (versioning, public-access block and lifecycle are checked on the template
in test_aws_infra.py), and leaves Batch and launch-template resources behind when a stack is deleted.
"""

import ast
import base64
import os
import shlex
import stat
import subprocess
import warnings

import boto3
import pytest
from moto import mock_aws

from cellvae.cli import main
from cellvae.operations import aws

REGION = "eu-west-1"
SECRET = "cellvae-test-secret-must-never-be-printed"
MOTO_SKIPS = {"WorkflowBucketPolicy": "AWS::S3::BucketPolicy", "MonthlyBudget": "AWS::Budgets::Budget"}


@pytest.fixture
def cloud(monkeypatch, tmp_path):
    """A fresh emulated AWS account; credentials only from the environment, never from ~/.aws."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIACELLVAETEST00001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")  # Batch picks its own AMIs; skip moto's catalogue
    with warnings.catch_warnings(), mock_aws():
        warnings.filterwarnings(
            "ignore", r"Tried to parse AWS::(S3::BucketPolicy|Budgets::Budget) but it's not supported"
        )
        yield


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["aws", *argv])
    out, err = capsys.readouterr()
    assert SECRET not in out + err
    return code, out, err


def exported(env_output: str) -> dict[str, str]:
    """The variables a shell gets from `eval "$(cellvae aws env)"`."""
    names = " ".join(f'"${name}"' for name in aws.ENV_OUTPUTS)
    shell = subprocess.run(
        ["bash", "-c", f'eval "$1"; printf "%s\\n" {names}', "_", env_output],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": os.environ["PATH"]},
    )
    return dict(zip(aws.ENV_OUTPUTS, shell.stdout.splitlines()))


def deploy(capsys, *extra: str) -> None:
    code, _, err = run(capsys, "deploy", "--alert-email", "ops@example.org", *extra)
    assert code == 0, err


def test_round_trip_deploy_env_destroy(cloud, capsys):
    deploy(capsys, "--image-tag", "v1", "--gpu-family", "g5")
    code, out, _ = run(capsys, "env")
    assert code == 0
    env = exported(out)
    assert set(env) == set(aws.ENV_OUTPUTS) and all(env.values())
    assert env["CELLVAE_AWS_REGION"] == REGION

    bucket, prefix = env["CELLVAE_S3_PREFIX"].removeprefix("s3://").split("/", 1)
    assert prefix == "cellvae"
    s3 = boto3.client("s3")
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"

    batch = boto3.client("batch")
    queues = batch.describe_job_queues(
        jobQueues=[env["CELLVAE_BATCH_JOB_QUEUE_CPU"], env["CELLVAE_BATCH_JOB_QUEUE_GPU"]]
    )
    environments = {}
    for queue in queues["jobQueues"]:
        order = [e["computeEnvironment"] for e in queue["computeEnvironmentOrder"]]
        described = batch.describe_compute_environments(computeEnvironments=order)["computeEnvironments"]
        environments[queue["jobQueueArn"]] = [e["computeResources"] for e in described]
    cpu, gpu = environments[env["CELLVAE_BATCH_JOB_QUEUE_CPU"]], environments[env["CELLVAE_BATCH_JOB_QUEUE_GPU"]]
    assert [(c["type"], c["instanceTypes"]) for c in cpu] == [("SPOT", ["c6i", "m6i"])]
    assert [(c["type"], c["instanceTypes"]) for c in gpu] == [("SPOT", ["g5"])]

    iam = boto3.client("iam")
    role = env["CELLVAE_BATCH_JOB_ROLE_ARN"].rsplit("/", 1)[1]
    [policy_name] = iam.list_role_policies(RoleName=role)["PolicyNames"]
    document = iam.get_role_policy(RoleName=role, PolicyName=policy_name)["PolicyDocument"]
    if isinstance(document, str):  # moto returns a CloudFormation-made inline policy as the repr of a dict
        document = ast.literal_eval(document)
    statements = document["Statement"]
    assert {s["Resource"] for s in statements} == {f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/cellvae/*"}

    repository, tag = env["CELLVAE_ECR_IMAGE"].split("/", 1)[1].split(":")
    assert tag == "v1"
    assert boto3.client("ecr").describe_repositories(repositoryNames=[repository])["repositories"]

    code, _, err = run(capsys, "destroy")
    assert code == 0, err
    assert aws.find_stack(boto3.client("cloudformation"), "cellvae") is None
    assert bucket not in {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert repository not in {r["repositoryName"] for r in boto3.client("ecr").describe_repositories()["repositories"]}
    assert role not in {r["RoleName"] for r in iam.list_roles()["Roles"]}


def test_destroy_refuses_a_non_empty_bucket_without_the_flag(cloud, capsys):
    deploy(capsys)
    bucket = aws.stack_outputs(boto3.client("cloudformation"), "cellvae")["BucketName"]
    s3 = boto3.client("s3")
    # The template turns versioning on (moto's CloudFormation ignores it): every version must go.
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=bucket, Key="cellvae/results/models/z75/model.keras", Body=b"v1")
    s3.put_object(Bucket=bucket, Key="cellvae/results/models/z75/model.keras", Body=b"v2")
    s3.put_object(Bucket=bucket, Key="cellvae/results/dataset/manifest.csv", Body=b"x")
    s3.delete_object(Bucket=bucket, Key="cellvae/results/dataset/manifest.csv")

    code, _, err = run(capsys, "destroy")
    assert code == 1 and "--empty-bucket" in err and bucket in err
    assert aws.find_stack(boto3.client("cloudformation"), "cellvae")["StackStatus"] == "CREATE_COMPLETE"
    assert s3.get_object(Bucket=bucket, Key="cellvae/results/models/z75/model.keras")["Body"].read() == b"v2"

    code, _, err = run(capsys, "destroy", "--empty-bucket")
    assert code == 0 and "4 object versions and delete markers" in err
    assert aws.find_stack(boto3.client("cloudformation"), "cellvae") is None
    assert bucket not in {b["Name"] for b in s3.list_buckets()["Buckets"]}
    code, _, err = run(capsys, "destroy")
    assert code == 0 and "nothing to destroy" in err


def test_stack_creates_every_supported_resource(cloud, capsys):
    deploy(capsys, "--on-demand-fallback", "true")
    template = aws.load_template()
    created = {
        r["LogicalResourceId"]: r["ResourceType"]
        for r in boto3.client("cloudformation").list_stack_resources(StackName="cellvae")["StackResourceSummaries"]
        if r["LogicalResourceId"]
    }
    expected = {name: r["Type"] for name, r in template["Resources"].items()}
    assert {k: v for k, v in expected.items() if k not in created} == MOTO_SKIPS
    assert created == {k: v for k, v in expected.items() if k not in MOTO_SKIPS}

    batch = boto3.client("batch")
    for queue in batch.describe_job_queues()["jobQueues"]:
        order = sorted(queue["computeEnvironmentOrder"], key=lambda e: e["order"])
        described = {
            e["computeEnvironmentArn"]: e["computeResources"]["type"]
            for e in batch.describe_compute_environments(computeEnvironments=[e["computeEnvironment"] for e in order])[
                "computeEnvironments"
            ]
        }
        assert [described[e["computeEnvironment"]] for e in order] == ["SPOT", "EC2"]


def test_update_changes_only_what_is_given(cloud, capsys):
    deploy(capsys, "--image-tag", "v1", "--monthly-budget-usd", "200")
    code, _, err = run(capsys, "deploy", "--image-tag", "v2")
    assert code == 0, err
    parameters = {
        p["ParameterKey"]: p["ParameterValue"]
        for p in aws.find_stack(boto3.client("cloudformation"), "cellvae")["Parameters"]
    }
    assert (parameters["ImageTag"], parameters["MonthlyBudgetUsd"], parameters["AlertEmail"]) == (
        "v2",
        "200",
        "ops@example.org",
    )
    assert exported(run(capsys, "env")[1])["CELLVAE_ECR_IMAGE"].endswith(":v2")
    assert run(capsys, "deploy")[0] == 0  # nothing to change is not an error


def test_clear_errors(cloud, capsys, monkeypatch):
    code, _, err = run(capsys, "env")
    assert code == 1 and "not found" in err and "aws deploy" in err
    code, _, err = run(capsys, "deploy")
    assert code == 1 and "--alert-email" in err
    code, _, err = run(capsys, "deploy", "--alert-email", "a@b.org", "--parameter", "GpuCount=8")
    assert code == 1 and "GpuCount" in err
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION", raising=False)
    code, _, err = run(capsys, "env")
    assert code == 1 and "--region" in err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--monthly-budget-usd", "-5"], "--monthly-budget-usd: expected a finite number >= 1 ({} MonthlyBudgetUsd)"),
        (["--monthly-budget-usd", "lots"], "--monthly-budget-usd: expected a finite number >= 1 ({} MonthlyBudgetUsd)"),
        (
            ["--parameter", "RootVolumeGiB=5"],
            "--parameter RootVolumeGiB: expected a finite number from 30 to 2000 ({} ",
        ),
        (["--parameter", "GpuInstanceFamily=t4"], "--parameter GpuInstanceFamily: expected one of g5, p3"),
        (["--image-tag", "v 1"], "--image-tag: expected a value matching ^[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}$ ({} "),
        (["--alert-email", "nobody"], "--alert-email: expected a value matching ^[^@\\s]+@[^@\\s]+"),
    ],
)
def test_parameter_values_the_template_refuses_are_usage_errors_before_aws_is_asked(cloud, capsys, extra, message):
    cfn = boto3.client("cloudformation")
    for existing in (False, True):  # on create, then on update of a deployed stack
        with pytest.raises(SystemExit) as exit:
            main(["aws", "deploy", "--alert-email", "ops@example.org", *extra])
        assert exit.value.code == 2
        error = capsys.readouterr().err.splitlines()[-1]
        assert error.startswith(f"cellvae aws: error: argument {message.format('template parameter')}"), error
        assert error.endswith(f", got {extra[-1].split('=')[-1]!r}")
        if not existing:
            assert aws.find_stack(cfn, "cellvae") is None
            deploy(capsys, "--monthly-budget-usd", "200")
    parameters = {p["ParameterKey"]: p["ParameterValue"] for p in aws.find_stack(cfn, "cellvae")["Parameters"]}
    assert (parameters["MonthlyBudgetUsd"], parameters["RootVolumeGiB"], parameters["ImageTag"]) == (
        "200",
        "100",
        "latest",
    )


def test_push_needs_docker_and_deploys_nothing_without_it(cloud, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    code, _, err = run(capsys, "deploy", "--alert-email", "a@b.org", "--push", "cellvae:dev")
    assert code == 1 and "docker" in err
    assert aws.find_stack(boto3.client("cloudformation"), "cellvae") is None


def test_push_logs_in_with_the_token_on_stdin(cloud, capsys, monkeypatch, tmp_path):
    """docker itself is replaced by a recorder: what matters is what cellvae asks of it, and what it prints."""
    calls = tmp_path / "calls.txt"
    docker = tmp_path / "docker"
    docker.write_text(f'#!/bin/bash\necho "argv: $*" >> {calls}\necho "stdin: $(cat)" >> {calls}\n')
    docker.chmod(docker.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    deploy(capsys, "--image-tag", "v3", "--push", "cellvae:dev")
    image = aws.stack_outputs(boto3.client("cloudformation"), "cellvae")["JobImage"]
    token = boto3.client("ecr").get_authorization_token()["authorizationData"][0]["authorizationToken"]
    password = base64.b64decode(token).decode().split(":", 1)[1]
    lines = calls.read_text().splitlines()
    argv = [shlex.split(line)[1:] for line in lines if line.startswith("argv:")]
    assert [a[0] for a in argv] == ["login", "tag", "push"]
    assert "--password-stdin" in argv[0] and all(password not in " ".join(a) for a in argv)
    assert lines[1] == f"stdin: {password}"
    assert argv[1][1:] == ["cellvae:dev", image] and argv[2][1:] == [image] and image.endswith(":v3")
