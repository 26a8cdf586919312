"""cellvae <command>: the project's tools on one command line (also `python -m cellvae`).

Each command is a module cellvae/cli_<command>.py with add_arguments(parser) and run(args); only the command
given is imported, and it imports TensorFlow or boto3 inside run(), so that usage errors (exit 2) are answered
at once. A command that fails says why in one line, `cellvae <command>: ...`, and exits 1.
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys

from cellvae.native_logs import VERBOSE_VARIABLE, quiet_native_logs, verbose_from_environment

COMMANDS = {  # command: (module with add_arguments and run, one-line help)
    "train": ("cellvae.cli_train", "train a VAE on single-cell images (PNG, TIFF, .npy) from folders or manifests"),
    "evaluate": (
        "cellvae.cli_evaluate",
        "reconstruction metrics of a model beside its baselines (zero/mean/median/PCA)",
    ),
    "embed": ("cellvae.cli_embed", "posterior means z of images under a model, as a CSV (path, z0 ... z{k-1})"),
    "moa-eval": ("cellvae.cli_moa", "MoA accuracy (NSC/NSCB, 1-NN cosine) of per-well profiles"),
    "fetch": ("cellvae.cli_fetch", "fetch one plate's selected images (ranged, verified, resumable)"),
    "cost": ("cellvae.cli_cost", "cost table (hours x price per instance type) from Snakemake benchmark files"),
    "aws": ("cellvae.cli_aws", "AWS stack for profiles/aws-gpu: deploy, env (profile variables), destroy"),
}


class UsageError(ValueError):
    """An option value that the command cannot use (answered like argparse's own errors: exit 2)."""


def bounded(kind: type, *, minimum=None, maximum=None, above=None, source: str = ""):
    """An argparse type: a finite `kind` (int or float) within the bounds (`above`: exclusive minimum); any other
    value is refused with the bound it breaks, e.g. "argument --retries: expected an integer >= 0, got '-1'"."""
    low = f">= {minimum}" if minimum is not None else f"> {above}" if above is not None else ""
    if minimum is not None and maximum is not None:
        wanted = f"from {minimum} to {maximum}"
    else:
        wanted = " and ".join(bound for bound in (low, f"<= {maximum}" if maximum is not None else "") if bound)
    wanted = " ".join(part for part in ("an integer" if kind is int else "a finite number", wanted) if part)
    wanted += f" ({source})" if source else ""

    def parse(text):
        try:
            value = kind(text)
        except (TypeError, ValueError, OverflowError):
            value = None
        if (
            value is None
            or (kind is float and not math.isfinite(value))
            or (minimum is not None and value < minimum)
            or (above is not None and value <= above)
            or (maximum is not None and value > maximum)
        ):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
        return value

    parse.__name__ = parse.wanted = wanted
    return parse


positive_int = bounded(int, minimum=1)
non_negative_int = bounded(int, minimum=0)
positive_float = bounded(float, above=0)
non_negative_float = bounded(float, minimum=0)


def schema_number(key: str):
    """The bounded argparse type of a numeric config key, e.g. "fetch.retries": the type, minimum, maximum and
    exclusiveMinimum of config/config.schema.yaml (the one place the bounds are written)."""
    from cellvae.config import schema

    def resolved(node: dict) -> dict:  # a "#/definitions/<name>" reference, with the node's own keys over it
        return schema()["definitions"][node["$ref"].rsplit("/", 1)[1]] | node if "$ref" in node else node

    node = schema()
    for part in key.split("."):
        node = resolved(resolved(node)["properties"][part])
    kind = {"integer": int, "number": float}[node["type"]]
    limits = {"minimum": node.get("minimum"), "maximum": node.get("maximum"), "above": node.get("exclusiveMinimum")}
    return bounded(kind, **limits, source=f"config {key}")


class CommandError(Exception):
    """A failure of a command, said in one line (exit 1)."""


def parser(chosen: str | None) -> argparse.ArgumentParser:
    """The `cellvae` parser: every command listed, the chosen one's module imported and its options added."""
    top = argparse.ArgumentParser(prog="cellvae", description=__doc__.splitlines()[0])
    top.add_argument(
        "--verbose",
        action="store_true",
        default=verbose_from_environment(),
        help=f"also show TensorFlow's native start-up messages (or set {VERBOSE_VARIABLE}=1)",
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="<command>")
    for name, (module_name, help_text) in COMMANDS.items():
        command = commands.add_parser(name, help=help_text, formatter_class=argparse.RawDescriptionHelpFormatter)
        if name == chosen:
            module = importlib.import_module(module_name)
            command.description = module.__doc__
            module.add_arguments(command)
            command.set_defaults(run=module.run, command_parser=command)
    return top


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit code (0 done, 1 failed, 2 usage error)."""
    argv = sys.argv[1:] if argv is None else [str(arg) for arg in argv]
    args = parser(next((arg for arg in argv if not arg.startswith("-")), None)).parse_args(argv)
    try:
        with quiet_native_logs(enabled=not args.verbose):
            return args.run(args) or 0
    except UsageError as error:
        args.command_parser.error(str(error))
    except (CommandError, OSError, ValueError, RuntimeError) as error:
        print(f"cellvae {args.command}: {error}", file=sys.stderr)
        return 1
