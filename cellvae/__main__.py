"""Command line: python -m cellvae <command> [options]; each command's module parses its own options."""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    # command: (module exposing main(argv), one-line help)
    "fetch": ("cellvae.fetch", "fetch one plate's selected images (ranged, verified, resumable)"),
    "train": ("cellvae.cli_train", "train a VAE on single-cell images (PNG, TIFF, .npy) from folders or manifests"),
    "evaluate": (
        "cellvae.cli_evaluate",
        "reconstruction metrics of a model beside its baselines (zero/mean/median/PCA)",
    ),
    "embed": ("cellvae.cli_embed", "posterior means z of images under a model, as a CSV (path, z0 ... z{k-1})"),
    "moa-eval": ("cellvae.moa", "MoA accuracy (NSC/NSCB, 1-NN cosine) of per-well profiles"),
    "cost": ("cellvae.cost", "cost table (hours x price per instance type) from Snakemake benchmark files"),
    "aws": ("cellvae.aws", "AWS stack for profiles/aws-gpu: deploy, env (profile variables), destroy"),
}


def usage() -> str:
    lines = ["usage: python -m cellvae <command> [options]", "", "commands:"]
    lines += [f"  {name:<12} {help_text}" for name, (_, help_text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if argv[0] not in COMMANDS:
        print(f"unknown command {argv[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[argv[0]][0])
    try:
        return module.main(argv[1:]) or 0
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
