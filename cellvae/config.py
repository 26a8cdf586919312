"""The workflow config's defaults for the commands: read from config/config.schema.yaml, their one place.

cellvae is the workflow's own library: installed editable from the checkout (make setup) or imported from the
workflow folder by Snakemake's script: jobs, so the schema is found beside the package, in the repository.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import yaml

SCHEMA = Path(__file__).resolve().parents[1] / "config" / "config.schema.yaml"


@functools.cache
def schema() -> dict:
    """The config schema (config/config.schema.yaml)."""
    if not SCHEMA.is_file():
        raise FileNotFoundError(f"config schema not found: {SCHEMA} (install cellvae editable from its checkout)")
    return yaml.safe_load(SCHEMA.read_text())


def _default(rule: dict):
    """A schema node's default, with the defaults of its properties filled in (as Snakemake's validate does)."""
    value = copy.deepcopy(rule.get("default"))
    if isinstance(value, dict):
        for key, child in rule.get("properties", {}).items():
            if "default" in child:
                value.setdefault(key, _default(child))
    return value


def defaults() -> dict:
    """Every config key at its default (a fresh copy)."""
    return _default({**schema(), "default": {}})


def with_defaults(config: dict, base: dict | None = None) -> dict:
    """config merged over base (default: the defaults): nested sections key by key, as Snakemake merges configs."""
    merged = defaults() if base is None else copy.deepcopy(base)
    for key, value in config.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = with_defaults(value, merged[key])
        else:
            merged[key] = copy.deepcopy(value)
    return merged
