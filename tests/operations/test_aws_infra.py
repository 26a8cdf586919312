"""infra/aws/cellvae-batch.yaml: cfn-lint, and policy checks (least privilege, no ingress, safe bucket, budget).

Each check is also run on a deliberately broken copy of the template, so a check that cannot fail fails here.
"""

import copy
import subprocess
import sys
from pathlib import Path

import pytest

from cellvae.operations.aws import ENV_OUTPUTS, TEMPLATE, load_template

CFN_LINT = Path(sys.executable).with_name("cfn-lint")

BUCKET_ARN = {"Fn::GetAtt": ["WorkflowBucket", "Arn"]}
PREFIX_OBJECTS = {"Fn::Sub": "${WorkflowBucket.Arn}/${WorkflowPrefix}/*"}
REPOSITORY_ARN = {"Fn::GetAtt": ["JobImageRepository", "Arn"]}
ALLOWED_RESOURCES = [BUCKET_ARN, PREFIX_OBJECTS, REPOSITORY_ARN]

# AWS-managed policies allowed, per role, with the only service that may assume that role.
SERVICE_ROLES = {
    "BatchServiceRole": ("batch.amazonaws.com", "service-role/AWSBatchServiceRole"),
    "InstanceRole": ("ec2.amazonaws.com", "service-role/AmazonEC2ContainerServiceforEC2Role"),
}


@pytest.fixture(scope="module")
def template() -> dict:
    return load_template()


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def resources_of(template: dict, *types: str) -> dict:
    return {name: r for name, r in template["Resources"].items() if r["Type"] in types}


def role_policy_documents(template: dict):
    """(resource name, policy document) for every identity policy in the template."""
    for name, role in resources_of(template, "AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            yield name, policy["PolicyDocument"]
    for name, policy in resources_of(template, "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy").items():
        yield name, policy["Properties"]["PolicyDocument"]


def iam_violations(template: dict) -> list[str]:
    """Wildcard actions, resources beyond the bucket/prefix/repository, stray managed policies or principals."""
    found = []
    for name, document in role_policy_documents(template):
        for statement in as_list(document["Statement"]):
            where = f"{name}/{statement.get('Sid', '?')}"
            if "NotAction" in statement or "NotResource" in statement:
                found.append(f"{where}: NotAction/NotResource")
            if statement["Effect"] != "Allow":
                continue
            found += [f"{where}: wildcard action {a}" for a in as_list(statement.get("Action", [])) if "*" in a]
            resources = as_list(statement.get("Resource", []))
            if not resources:
                found.append(f"{where}: no Resource")
            found += [
                f"{where}: resource {r} beyond the bucket prefix / repository"
                for r in resources
                if r not in ALLOWED_RESOURCES
            ]
    for name, role in resources_of(template, "AWS::IAM::Role").items():
        properties = role["Properties"]
        service, managed = SERVICE_ROLES.get(name, (None, None))
        for arn in properties.get("ManagedPolicyArns", []):
            text = arn["Fn::Sub"] if isinstance(arn, dict) else arn
            if managed is None or not text.endswith(f":policy/{managed}"):
                found.append(f"{name}: managed policy {text} not allowed")
        for statement in as_list(properties["AssumeRolePolicyDocument"]["Statement"]):
            principal = statement.get("Principal")
            services = as_list(principal.get("Service", [])) if isinstance(principal, dict) else []
            if principal == "*" or (isinstance(principal, dict) and set(principal) != {"Service"}):
                found.append(f"{name}: trusts {principal}")
            elif service is not None and services != [service]:
                found.append(f"{name}: holds {managed} but trusts {services}")
    for name, policy in resources_of(template, "AWS::S3::BucketPolicy").items():
        for statement in as_list(policy["Properties"]["PolicyDocument"]["Statement"]):
            if statement["Effect"] != "Deny":
                found.append(f"{name}: bucket policies may only deny")
    return found


def ingress_violations(template: dict) -> list[str]:
    """Any inbound rule, ssh key, or security group from outside the template."""
    found = [f"{name}: ingress rule resource" for name in resources_of(template, "AWS::EC2::SecurityGroupIngress")]
    groups = resources_of(template, "AWS::EC2::SecurityGroup")
    found += [
        f"{name}: SecurityGroupIngress" for name, g in groups.items() if g["Properties"].get("SecurityGroupIngress")
    ]
    found += [f"{name}: instance outside Batch" for name in resources_of(template, "AWS::EC2::Instance")]
    for name, lt in resources_of(template, "AWS::EC2::LaunchTemplate").items():
        if "KeyName" in lt["Properties"]["LaunchTemplateData"]:
            found.append(f"{name}: ssh key")
    for name, env in resources_of(template, "AWS::Batch::ComputeEnvironment").items():
        compute = env["Properties"]["ComputeResources"]
        if "Ec2KeyPair" in compute:
            found.append(f"{name}: ssh key")
        for group in compute.get("SecurityGroupIds", []):
            if not (isinstance(group, dict) and group.get("Fn::GetAtt", [None])[0] in groups):
                found.append(f"{name}: security group {group} not defined here")
    return found


def bucket_violations(template: dict) -> list[str]:
    """Buckets without full public-access block, encryption, versioning or multipart-upload clean-up."""
    found = []
    for name, bucket in resources_of(template, "AWS::S3::Bucket").items():
        properties = bucket["Properties"]
        block = properties.get("PublicAccessBlockConfiguration", {})
        flags = ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")
        if not all(block.get(flag) is True for flag in flags):
            found.append(f"{name}: public access not fully blocked")
        rules = properties.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", [])
        if not any(r.get("ServerSideEncryptionByDefault", {}).get("SSEAlgorithm") for r in rules):
            found.append(f"{name}: no default encryption")
        if properties.get("VersioningConfiguration", {}).get("Status") != "Enabled":
            found.append(f"{name}: versioning off")
        lifecycle = properties.get("LifecycleConfiguration", {}).get("Rules", [])
        if not any(r.get("Status") == "Enabled" and "AbortIncompleteMultipartUpload" in r for r in lifecycle):
            found.append(f"{name}: incomplete multipart uploads never aborted")
    return found


def budget_violations(template: dict) -> list[str]:
    """No monthly budget at the configurable amount with an e-mail alert."""
    for budget in resources_of(template, "AWS::Budgets::Budget").values():
        properties = budget["Properties"]
        limit = properties["Budget"].get("BudgetLimit", {})
        emailed = any(
            s.get("SubscriptionType") == "EMAIL"
            for n in properties.get("NotificationsWithSubscribers", [])
            for s in n["Subscribers"]
        )
        if (
            properties["Budget"].get("TimeUnit") == "MONTHLY"
            and limit.get("Amount") == {"Ref": "MonthlyBudgetUsd"}
            and emailed
        ):
            return []
    return ["no monthly budget at MonthlyBudgetUsd with an e-mail alert"]


def test_cfn_lint_passes():
    done = subprocess.run([str(CFN_LINT), str(TEMPLATE)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_cfn_lint_fails_on_a_broken_copy(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text(TEMPLATE.read_text().replace("MinvCpus: 0", "MinvCpu: 0", 1))
    done = subprocess.run([str(CFN_LINT), str(broken)], capture_output=True, text=True)
    assert done.returncode != 0 and "MinvCpu" in done.stdout


def test_template_passes_every_policy_check(template):
    assert iam_violations(template) == []
    assert ingress_violations(template) == []
    assert bucket_violations(template) == []
    assert budget_violations(template) == []


def broken(template: dict, change) -> dict:
    copied = copy.deepcopy(template)
    change(copied["Resources"])
    return copied


def job_statements(resources: dict) -> list:
    return resources["JobRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]


IAM_BREAKS = {
    "s3:*": lambda r: job_statements(r)[1].update(Action="s3:*"),
    "wildcard resource": lambda r: job_statements(r)[1].update(Resource="*"),
    "whole bucket objects": lambda r: job_statements(r)[1].update(Resource={"Fn::Sub": "${WorkflowBucket.Arn}/*"}),
    "another bucket": lambda r: job_statements(r)[0].update(Resource="arn:aws:s3:::someone-elses-bucket"),
    "no resource": lambda r: job_statements(r)[0].pop("Resource"),
    "NotResource": lambda r: job_statements(r)[0].update(NotResource="arn:aws:s3:::x"),
    "managed admin policy": lambda r: r["JobRole"]["Properties"].update(
        ManagedPolicyArns=["arn:aws:iam::aws:policy/AdministratorAccess"]
    ),
    "service policy on the job role": lambda r: r["JobRole"]["Properties"].update(
        ManagedPolicyArns=[{"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSBatchServiceRole"}]
    ),
    "service role trusts another service": lambda r: r["InstanceRole"]["Properties"]["AssumeRolePolicyDocument"][
        "Statement"
    ][0].update(Principal={"Service": "lambda.amazonaws.com"}),
    "anyone may assume": lambda r: r["JobRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0].update(
        Principal="*"
    ),
    "allowing bucket policy": lambda r: r["WorkflowBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"][
        0
    ].update(Effect="Allow"),
    "extra policy resource": lambda r: r.update(
        Extra={
            "Type": "AWS::IAM::Policy",
            "Properties": {
                "PolicyName": "x",
                "Roles": [{"Ref": "JobRole"}],
                "PolicyDocument": {"Statement": [{"Effect": "Allow", "Action": "ecr:*", "Resource": REPOSITORY_ARN}]},
            },
        }
    ),
}

INGRESS_BREAKS = {
    "ssh ingress": lambda r: r["BatchSecurityGroup"]["Properties"].update(
        SecurityGroupIngress=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "CidrIp": "0.0.0.0/0"}]
    ),
    "jupyter ingress resource": lambda r: r.update(
        Jupyter={
            "Type": "AWS::EC2::SecurityGroupIngress",
            "Properties": {
                "GroupId": {"Fn::GetAtt": ["BatchSecurityGroup", "GroupId"]},
                "IpProtocol": "tcp",
                "FromPort": 8888,
                "ToPort": 8888,
                "CidrIp": "0.0.0.0/0",
            },
        }
    ),
    "ssh key": lambda r: r["InstanceLaunchTemplate"]["Properties"]["LaunchTemplateData"].update(KeyName="thesis"),
    "foreign security group": lambda r: r["GpuSpotEnvironment"]["Properties"]["ComputeResources"].update(
        SecurityGroupIds=["sg-0123456789abcdef0"]
    ),
}

BUCKET_BREAKS = {
    "no public access block": lambda r: r["WorkflowBucket"]["Properties"].pop("PublicAccessBlockConfiguration"),
    "public policies allowed": lambda r: r["WorkflowBucket"]["Properties"]["PublicAccessBlockConfiguration"].update(
        BlockPublicPolicy=False
    ),
    "no encryption": lambda r: r["WorkflowBucket"]["Properties"].pop("BucketEncryption"),
    "no versioning": lambda r: r["WorkflowBucket"]["Properties"].pop("VersioningConfiguration"),
    "no multipart clean-up": lambda r: r["WorkflowBucket"]["Properties"]["LifecycleConfiguration"]["Rules"].pop(0),
    "second unsafe bucket": lambda r: r.update(Other={"Type": "AWS::S3::Bucket", "Properties": {}}),
}

BUDGET_BREAKS = {
    "no budget": lambda r: r.pop("MonthlyBudget"),
    "fixed amount": lambda r: r["MonthlyBudget"]["Properties"]["Budget"]["BudgetLimit"].update(Amount=100),
    "no e-mail": lambda r: r["MonthlyBudget"]["Properties"].update(NotificationsWithSubscribers=[]),
}


@pytest.mark.parametrize(
    "check, breaks",
    [
        (iam_violations, IAM_BREAKS),
        (ingress_violations, INGRESS_BREAKS),
        (bucket_violations, BUCKET_BREAKS),
        (budget_violations, BUDGET_BREAKS),
    ],
    ids=["iam", "ingress", "bucket", "budget"],
)
def test_each_check_fails_on_broken_copies(template, check, breaks):
    passed = [label for label, change in breaks.items() if not check(broken(template, change))]
    assert passed == [], f"{check.__name__} missed: {passed}"


def test_outputs_cover_the_profile_contract(template):
    assert set(ENV_OUTPUTS.values()) <= set(template["Outputs"])


def test_gpu_environment_is_spot_on_the_chosen_family(template):
    compute = template["Resources"]["GpuSpotEnvironment"]["Properties"]["ComputeResources"]
    assert compute["Type"] == "SPOT" and compute["InstanceTypes"] == [{"Ref": "GpuInstanceFamily"}]
    assert set(template["Parameters"]["GpuInstanceFamily"]["AllowedValues"]) == {"g5", "p3"}
