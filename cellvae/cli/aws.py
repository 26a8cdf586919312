"""cellvae aws deploy|env|destroy: the AWS side of profiles/aws-gpu as one CloudFormation stack
(cellvae/operations/aws.py).

deploy creates or updates the stack (infra/aws/cellvae-batch.yaml); env prints `export NAME=value` lines for the
profile (eval "$(cellvae aws env)"); destroy deletes it. Credentials come from boto3's usual chain and are never
printed.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys

from cellvae.cli.common import CommandError, UsageError
from cellvae.core.option_types import bounded

DEFAULT_STACK = "cellvae"
OPTIONS = {  # template parameter: the deploy option that sets it (any other: --parameter KEY=VALUE)
    "ImageTag": "--image-tag",
    "AlertEmail": "--alert-email",
    "MonthlyBudgetUsd": "--monthly-budget-usd",
    "GpuInstanceFamily": "--gpu-family",
    "OnDemandFallback": "--on-demand-fallback",
}


def key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="<action>")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--stack-name", default=DEFAULT_STACK, help=f"CloudFormation stack (default {DEFAULT_STACK})")
    common.add_argument("--region", help="AWS region (default: AWS_DEFAULT_REGION / your AWS config)")

    deploy = actions.add_parser("deploy", parents=[common], help="create or update the stack")
    deploy.add_argument("--image-tag", help="job image tag to record in the stack (template parameter ImageTag)")
    deploy.add_argument("--alert-email", help="budget alert address (needed on create)")
    deploy.add_argument("--monthly-budget-usd", help="monthly budget; alerts at BudgetAlertPercent of it")
    deploy.add_argument("--gpu-family", choices=["g5", "p3"], help="GPU instance family for training")
    deploy.add_argument(
        "--on-demand-fallback", choices=["true", "false"], help="add on-demand compute environments after the spot ones"
    )
    deploy.add_argument(
        "--parameter",
        action="append",
        type=key_value,
        default=[],
        metavar="KEY=VALUE",
        help="any other template parameter (repeatable)",
    )
    deploy.add_argument(
        "--push",
        metavar="LOCAL_IMAGE",
        help="after deploying, docker-tag LOCAL_IMAGE as <repository>:<image tag> and push it (needs docker)",
    )

    actions.add_parser("env", parents=[common], help="print `export NAME=value` lines for profiles/aws-gpu")

    destroy = actions.add_parser("destroy", parents=[common], help="delete the stack")
    destroy.add_argument(
        "--empty-bucket",
        action="store_true",
        help="permanently delete everything in the workflow bucket first (else a non-empty bucket stops destroy)",
    )


def check_parameters(parameters: dict[str, str], declared: dict, named: set[str]) -> None:
    """Refuse, before AWS is asked, a value that the template's declaration of the parameter refuses: a Number
    outside MinValue..MaxValue (or not a number), a value not in AllowedValues or not matching AllowedPattern.
    `named`: the parameters given by their own options (the others by --parameter). Unknown parameters are left
    to aws.deploy, which lists the known ones."""
    for key, value in parameters.items():
        spec = declared.get(key, {})
        option = OPTIONS[key] if key in named else f"--parameter {key}"
        if spec.get("Type") == "Number":
            limits = {"minimum": spec.get("MinValue"), "maximum": spec.get("MaxValue")}
            try:
                bounded(float, **limits, source=f"template parameter {key}")(value)
            except argparse.ArgumentTypeError as error:
                raise UsageError(f"argument {option}: {error}") from None
        allowed = [str(choice) for choice in spec.get("AllowedValues", [])]
        if allowed and value not in allowed:
            raise UsageError(f"argument {option}: expected one of {', '.join(allowed)}, got {value!r}")
        if "AllowedPattern" in spec and not re.fullmatch(spec["AllowedPattern"], value):
            raise UsageError(
                f"argument {option}: expected a value matching {spec['AllowedPattern']} "
                f"(template parameter {key}), got {value!r}"
            )


def run(args) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from cellvae.operations import aws

    if args.action == "deploy":
        named = {key: getattr(args, option[2:].replace("-", "_")) for key, option in OPTIONS.items()}
        named = {key: value for key, value in named.items() if value is not None}
        parameters = dict(args.parameter) | named
        check_parameters(parameters, aws.load_template()["Parameters"], set(named))
    try:
        session = aws.make_session(args.region)
        if args.action == "deploy":
            docker = aws.find_docker() if args.push else None
            outputs = aws.deploy(session, args.stack_name, parameters)
            if docker:
                aws.push_image(session, docker, args.push, outputs["JobImage"])
            print(
                f"stack {args.stack_name!r} ready in {session.region_name}; job image {outputs['JobImage']}"
                f'{" (pushed)" if args.push else ""}. Next: eval "$(cellvae aws env)"',
                file=sys.stderr,
            )
        elif args.action == "env":
            cfn = session.client("cloudformation")
            for name, value in aws.profile_env(aws.stack_outputs(cfn, args.stack_name)).items():
                print(f"export {name}={shlex.quote(value)}")
        else:
            print(aws.destroy(session, args.stack_name, args.empty_bucket), file=sys.stderr)
    except (aws.AwsError, ClientError, BotoCoreError) as error:
        raise CommandError(f"{args.action}: {error}") from None
    return 0
