"""Cost table from Snakemake benchmark files: job hours × price per instance-hour, per stage and per model.

Each job is billed as if it held one instance of its rule's type for its wall time (the benchmark's `s`),
which is how the cluster and cloud profiles run them (one Slurm job / one AWS Batch job each)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cellvae.core.config import parse_model_id
from cellvae.core.files import write_csv

ALL_MODELS = "all models"
COLUMNS = ["stage", "model", "instance_type", "jobs", "hours", "price_per_hour", "cost"]


class CostError(ValueError):
    """A benchmark file or price setting that cannot be used."""


def job_of(path: str | Path) -> tuple[str, str]:
    """(rule, model) of a benchmark file results/benchmarks/<rule>[/<wildcards>].tsv."""
    parts = Path(path).with_suffix("").parts
    if "benchmarks" not in parts:
        raise CostError(f"{path}: not under a benchmarks/ folder")
    rest = parts[parts.index("benchmarks") + 1 :]
    rule = rest[0]
    model = parse_model_id(rest[-1]) if len(rest) > 1 else None
    if not model:
        return rule, ALL_MODELS
    variant, latent_dim = model
    return rule, f"{variant} z={latent_dim}" if variant else f"z={latent_dim}"


def job_hours(path: str | Path) -> float:
    """Wall hours of one job (summed over repeats when the benchmark has several lines)."""
    try:
        table = pd.read_csv(path, sep="\t")
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise CostError(f"{path}: unreadable benchmark file ({error})") from error
    if "s" not in table.columns or table.empty:
        raise CostError(f"{path}: no 's' column; expected a Snakemake benchmark file")
    seconds = pd.to_numeric(table["s"], errors="coerce")
    wrong = ~(seconds >= 0) | (seconds == float("inf"))  # not a number, empty, negative or infinite
    if wrong.any():
        row = int(wrong.to_numpy().argmax())
        value = table["s"].iloc[row]
        problem = "is empty" if pd.isna(value) else f"is {str(value)!r}, not wall seconds (a finite number >= 0)"
        raise CostError(f"{path}: column 's', row {row + 1} {problem}; expected a Snakemake benchmark file")
    return float(seconds.sum()) / 3600.0


def instance_of(rule: str, settings: dict) -> tuple[str, float]:
    """(instance type, price per hour) that a rule runs on."""
    kind = "gpu" if rule in settings["gpu_rules"] else "cpu"
    instance = settings["instances"][kind]
    return instance["type"], float(instance["price_per_hour"])


def cost_table(benchmarks: list[str | Path], settings: dict, stages: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per (stage, model, instance type) plus a total row; hours and cost rounded for reading.

    `stages` maps rule names to stages, in the order the table lists them (the workflow's order); a rule not in it
    is a stage of its own, after them."""
    stages = stages or {}
    rows = []
    for path in benchmarks:
        rule, model = job_of(path)
        instance, price = instance_of(rule, settings)
        hours = job_hours(path)
        rows.append(
            {
                "stage": stages.get(rule, rule),
                "model": model,
                "instance_type": instance,
                "jobs": 1,
                "hours": hours,
                "price_per_hour": price,
                "cost": hours * price,
            }
        )
    if not rows:
        raise CostError("no benchmark files given")
    jobs = pd.DataFrame(rows)
    order = {stage: index for index, stage in enumerate(dict.fromkeys(stages.values()))}
    table = jobs.groupby(["stage", "model", "instance_type", "price_per_hour"], as_index=False).agg(
        jobs=("jobs", "sum"), hours=("hours", "sum"), cost=("cost", "sum")
    )
    table = table.sort_values(
        ["stage", "model"],
        key=lambda column: column.map(order).fillna(len(order)) if column.name == "stage" else column,
        kind="stable",
    )
    total = {
        "stage": "total",
        "model": "",
        "instance_type": "",
        "jobs": int(table["jobs"].sum()),
        "hours": table["hours"].sum(),
        "price_per_hour": float("nan"),
        "cost": table["cost"].sum(),
    }
    table = pd.concat([table, pd.DataFrame([total])], ignore_index=True)[COLUMNS]
    return table.round({"hours": 4, "cost": 4})


def write_cost_table(
    benchmarks: list[str | Path], settings: dict, stages: dict[str, str], out_csv: str | Path
) -> pd.DataFrame:
    """Write the cost table atomically (temp file + rename) and return it."""
    table = cost_table(benchmarks, settings, stages)
    write_csv(table.assign(currency=settings["currency"]), out_csv)
    return table
