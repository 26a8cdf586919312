"""`cellvae aws deploy|env|destroy`: the AWS side of profiles/aws-gpu as one CloudFormation stack.

The stack (infra/aws/cellvae-batch.yaml) holds the workflow bucket, the job image repository, the Batch
queues, the job role and the budget; `env` turns its outputs into the variables the profile reads
(infra/aws/README.md is the contract). Credentials come from boto3's usual chain and are never printed.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import boto3
import yaml
from botocore.exceptions import ClientError, WaiterError

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "aws" / "cellvae-batch.yaml"
CAPABILITIES = ["CAPABILITY_IAM"]
WAIT = {"Delay": 10, "MaxAttempts": 360}  # up to an hour: GPU compute environments can take a while

# Variable the aws-gpu profile reads -> stack output it comes from.
ENV_OUTPUTS = {
    "CELLVAE_AWS_REGION": "Region",
    "CELLVAE_S3_PREFIX": "S3Prefix",
    "CELLVAE_BATCH_JOB_QUEUE_CPU": "CpuJobQueueArn",
    "CELLVAE_BATCH_JOB_QUEUE_GPU": "GpuJobQueueArn",
    "CELLVAE_BATCH_JOB_ROLE_ARN": "JobRoleArn",
    "CELLVAE_ECR_IMAGE": "JobImage",
}


class AwsError(Exception):
    """A failure to report as one line, without a traceback."""


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that reads CloudFormation short forms (!Ref, !Sub, ...) as their long JSON forms."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict:
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {"Ref" if suffix == "Ref" else f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path = TEMPLATE) -> dict:
    """The template as plain data, intrinsic functions in their long form ({"Fn::Sub": ...})."""
    return yaml.load(path.read_text(), Loader=_CfnLoader)


def make_session(region: str | None) -> boto3.Session:
    """A boto3 session in `region`, else the configured default region."""
    session = boto3.Session(region_name=region) if region else boto3.Session()
    if not session.region_name:
        raise AwsError("no AWS region: pass --region or set AWS_DEFAULT_REGION")
    return session


def find_stack(cfn, stack: str) -> dict | None:
    """The stack's description, or None where it does not exist."""
    try:
        return cfn.describe_stacks(StackName=stack)["Stacks"][0]
    except ClientError as error:
        if "does not exist" in str(error):
            return None
        raise


def stack_outputs(cfn, stack: str) -> dict[str, str]:
    """OutputKey -> OutputValue of a stack that must exist."""
    found = find_stack(cfn, stack)
    if found is None:
        raise AwsError(f"stack {stack!r} not found in {cfn.meta.region_name}: run `cellvae aws deploy` first")
    return {o["OutputKey"]: o["OutputValue"] for o in found.get("Outputs", [])}


def profile_env(outputs: dict[str, str]) -> dict[str, str]:
    """The profile's variables from the stack outputs."""
    missing = [key for key in ENV_OUTPUTS.values() if key not in outputs]
    if missing:
        raise AwsError(f"stack outputs lack {', '.join(missing)}: is the stack complete? (`aws deploy` updates it)")
    return {name: outputs[key] for name, key in ENV_OUTPUTS.items()}


def _failure_reasons(cfn, stack: str, limit: int = 5) -> str:
    events = cfn.describe_stack_events(StackName=stack)["StackEvents"]
    reasons = [
        f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason', '')}"
        for e in events
        if e["ResourceStatus"].endswith("FAILED")
    ]
    return "; ".join(reasons[:limit]) or "no failure reason recorded"


def _wait(cfn, waiter: str, stack: str) -> None:
    try:
        cfn.get_waiter(waiter).wait(StackName=stack, WaiterConfig=WAIT)
    except WaiterError as error:
        raise AwsError(f"stack {stack!r}: {waiter} failed ({_failure_reasons(cfn, stack)})") from error


def default_network(ec2) -> dict[str, str]:
    """VpcId and SubnetIds (comma-separated) of the region's default VPC."""
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
    if not vpcs:
        raise AwsError(
            f"{ec2.meta.region_name} has no default VPC: pass --parameter VpcId=vpc-... "
            "--parameter SubnetIds=subnet-...,subnet-... (subnets with outbound internet access)"
        )
    vpc = vpcs[0]["VpcId"]
    subnets = ec2.describe_subnets(
        Filters=[{"Name": "vpc-id", "Values": [vpc]}, {"Name": "default-for-az", "Values": ["true"]}]
    )["Subnets"]
    if not subnets:
        raise AwsError(f"default VPC {vpc} has no default subnets: pass --parameter SubnetIds=subnet-...,subnet-...")
    return {"VpcId": vpc, "SubnetIds": ",".join(sorted(s["SubnetId"] for s in subnets))}


def deploy(session: boto3.Session, stack: str, parameters: dict[str, str], template: Path = TEMPLATE) -> dict[str, str]:
    """Create the stack, or update it (parameters not given keep their values); return its outputs."""
    declared = load_template(template)["Parameters"]
    known = set(declared)
    unknown = sorted(set(parameters) - known)
    if unknown:
        raise AwsError(
            f"unknown template parameter(s) {', '.join(unknown)} ({template}); known: {', '.join(sorted(known))}"
        )
    cfn = session.client("cloudformation")
    body = template.read_text()
    existing = find_stack(cfn, stack)
    if existing is not None and existing["StackStatus"] == "ROLLBACK_COMPLETE":
        raise AwsError(
            f"stack {stack!r} failed to create earlier (ROLLBACK_COMPLETE): run `aws destroy`, then deploy again"
        )
    if existing is None:
        if "AlertEmail" not in parameters:
            raise AwsError("creating the stack needs --alert-email (the budget alerts go there)")
        # Every value is recorded explicitly, so later updates can keep each with UsePreviousValue.
        network = {} if "VpcId" in parameters else default_network(session.client("ec2"))
        defaults = {k: str(v["Default"]) for k, v in declared.items() if "Default" in v}
        given = [{"ParameterKey": k, "ParameterValue": v} for k, v in sorted((defaults | network | parameters).items())]
        cfn.create_stack(
            StackName=stack,
            TemplateBody=body,
            Parameters=given,
            Capabilities=CAPABILITIES,
            Tags=[{"Key": "Project", "Value": "cellvae"}],
        )
        _wait(cfn, "stack_create_complete", stack)
    else:
        previous = {p["ParameterKey"] for p in existing.get("Parameters", [])}
        given = [{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(parameters.items())]
        kept = [{"ParameterKey": k, "UsePreviousValue": True} for k in sorted((previous & known) - set(parameters))]
        try:
            cfn.update_stack(StackName=stack, TemplateBody=body, Parameters=given + kept, Capabilities=CAPABILITIES)
        except ClientError as error:
            if "No updates are to be performed" not in str(error):
                raise
        else:
            _wait(cfn, "stack_update_complete", stack)
    return stack_outputs(cfn, stack)


def find_docker() -> str:
    """The docker executable, or a clear error."""
    docker = shutil.which("docker")
    if docker is None:
        raise AwsError(
            "--push needs docker on PATH: install docker, or deploy without --push and push the image "
            "yourself (infra/aws/README.md)"
        )
    return docker


def push_image(session: boto3.Session, docker: str, local_image: str, target: str) -> None:
    """`docker tag local_image target` and push it to ECR, logging in with a token passed on stdin."""
    auth = session.client("ecr").get_authorization_token()["authorizationData"][0]
    user, password = base64.b64decode(auth["authorizationToken"]).decode().split(":", 1)
    registry = auth["proxyEndpoint"]
    steps = [
        ([docker, "login", "--username", user, "--password-stdin", registry], password),
        ([docker, "tag", local_image, target], None),
        ([docker, "push", target], None),
    ]
    for command, stdin in steps:
        done = subprocess.run(command, input=stdin, text=True, stderr=subprocess.PIPE)
        if done.returncode != 0:
            raise AwsError(f"`docker {command[1]}` failed (exit {done.returncode}): {done.stderr.strip()[-300:]}")


def _bucket_of(cfn, stack: str) -> str | None:
    pages = cfn.get_paginator("list_stack_resources").paginate(StackName=stack)
    for page in pages:
        for resource in page["StackResourceSummaries"]:
            if resource["LogicalResourceId"] == "WorkflowBucket" and resource["ResourceStatus"] != "DELETE_COMPLETE":
                return resource.get("PhysicalResourceId") or None
    return None


def _bucket_exists(s3, bucket: str) -> bool:
    try:
        s3.head_bucket(Bucket=bucket)
        return True
    except ClientError as error:
        if error.response["Error"]["Code"] in ("404", "NoSuchBucket"):
            return False
        raise


def _bucket_is_empty(s3, bucket: str) -> bool:
    page = s3.list_object_versions(Bucket=bucket, MaxKeys=1)
    return not (page.get("Versions") or page.get("DeleteMarkers"))


def empty_bucket(s3, bucket: str) -> int:
    """Delete every object version and delete marker in the bucket; return how many."""
    deleted = 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        batch = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ]
        if not batch:
            continue
        result = s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
        if result.get("Errors"):
            first = result["Errors"][0]
            raise AwsError(f"could not delete s3://{bucket}/{first['Key']}: {first.get('Message', first.get('Code'))}")
        deleted += len(batch)
    return deleted


def destroy(session: boto3.Session, stack: str, empty: bool) -> str:
    """Delete the stack; its bucket must be empty unless `empty` allows deleting its contents first."""
    cfn = session.client("cloudformation")
    if find_stack(cfn, stack) is None:
        return f"stack {stack!r} does not exist in {session.region_name}: nothing to destroy"
    s3 = session.client("s3")
    bucket = _bucket_of(cfn, stack)
    removed = ""
    if bucket and _bucket_exists(s3, bucket) and not _bucket_is_empty(s3, bucket):
        if not empty:
            raise AwsError(
                f"bucket {bucket} is not empty: rerun with --empty-bucket to delete every object in it "
                "(all versions, permanently) together with the stack; nothing was deleted"
            )
        removed = f"emptied bucket {bucket} ({empty_bucket(s3, bucket)} object versions and delete markers); "
    cfn.delete_stack(StackName=stack)
    _wait(cfn, "stack_delete_complete", stack)
    return f"{removed}deleted stack {stack!r} in {session.region_name}"
