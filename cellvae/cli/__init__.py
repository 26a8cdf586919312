"""cellvae <command>: the project's tools on one command line (also `python -m cellvae`).

Each command is a module cellvae/cli/<command>.py with add_arguments(parser) and run(args); its docstring's first
paragraph is the command's --help description (`python -m pydoc cellvae.cli.<command>`: the rest), and every option
with a default shows it. What commands share is in cellvae/cli/common.py, and no command imports another. Only the
command given is imported, and it imports TensorFlow or boto3 inside run(), so that usage errors (exit 2) are
answered at once. A command that fails says why in one line, `cellvae <command>: ...`, and exits 1.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from cellvae.cli.common import CommandError, UsageError
from cellvae.core.native_logs import VERBOSE_VARIABLE, quiet_native_logs, verbose_from_environment

COMMANDS = {  # command: (module with add_arguments and run, one-line help)
    "train": ("cellvae.cli.train", "train a VAE on single-cell images (PNG, TIFF, .npy) from folders or manifests"),
    "evaluate": (
        "cellvae.cli.evaluate",
        "reconstruction metrics of a model beside its baselines (zero/mean/median/PCA)",
    ),
    "embed": ("cellvae.cli.embed", "posterior means z of images under a model, as a CSV (path, z0 ... z{k-1})"),
    "moa-eval": ("cellvae.cli.moa", "MoA accuracy (NSC/NSCB, 1-NN cosine) of per-well profiles"),
    "fetch": ("cellvae.cli.fetch", "fetch one plate's selected images (ranged, verified, resumable)"),
    "cost": ("cellvae.cli.cost", "cost table (hours x price per instance type) from Snakemake benchmark files"),
    "aws": ("cellvae.cli.aws", "AWS stack for profiles/aws-gpu: deploy, env (profile variables), destroy"),
}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions as written; each option's default after its help, where it has one and the help does not say it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.option_strings and action.default not in (None, False, argparse.SUPPRESS) and "default" not in text:
            text += " (default: %(default)s)"
        return text


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
        command = commands.add_parser(name, help=help_text, formatter_class=HelpFormatter)
        if name == chosen:
            module = importlib.import_module(module_name)
            command.description = module.__doc__.split("\n\n")[0]  # the first paragraph; the rest: pydoc
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
