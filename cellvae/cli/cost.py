"""cellvae cost: the cost table of Snakemake benchmark files (job hours x price per hour of its instance type).

Prices, the GPU rules and the currency are the config's cost: defaults (config/config.schema.yaml) unless
given here. Each job is billed as if it held one instance of its rule's type for its wall time.
"""

from __future__ import annotations

import argparse

from cellvae.cli.common import UsageError
from cellvae.core.config import defaults
from cellvae.core.option_types import schema_number
from cellvae.operations.cost import cost_table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("benchmarks", nargs="+", help="Snakemake benchmark .tsv files (benchmarks/<rule>/...)")
    for kind in ("cpu", "gpu"):
        parser.add_argument(
            f"--{kind}",
            nargs=2,
            metavar=("TYPE", "PRICE"),
            help=f"{kind.upper()} instance type and price per hour (default: config cost.instances.{kind})",
        )
    parser.add_argument("--gpu-rules", nargs="+", help="rules billed at the GPU price (default: config cost.gpu_rules)")
    parser.add_argument("--currency", help="currency of the prices (default: config cost.currency)")


def price(kind: str, text: str) -> float:
    """The PRICE of --cpu/--gpu, within the config's bounds (cost.instances.<kind>.price_per_hour)."""
    try:
        return schema_number(f"cost.instances.{kind}.price_per_hour")(text)
    except argparse.ArgumentTypeError as error:
        raise UsageError(f"argument --{kind} PRICE: {error}") from None


def run(args) -> int:
    settings = defaults()["cost"]
    for kind in ("cpu", "gpu"):
        if getattr(args, kind):
            instance_type, per_hour = getattr(args, kind)
            settings["instances"][kind] = {"type": instance_type, "price_per_hour": price(kind, per_hour)}
    settings["gpu_rules"] = args.gpu_rules or settings["gpu_rules"]
    settings["currency"] = args.currency or settings["currency"]
    print(cost_table(args.benchmarks, settings).to_string(index=False))
    return 0
