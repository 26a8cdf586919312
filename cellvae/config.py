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


TYPE_WORDS = {
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
    "string": "a string",
    "array": "a list",
    "object": "a mapping",
}
BOUND_WORDS = {
    "minimum": ">=",
    "exclusiveMinimum": ">",
    "maximum": "<=",
    "exclusiveMaximum": "<",
    "multipleOf": "a multiple of",
}


def describe(rule: dict) -> str:
    """What a schema node accepts, in words: 'an integer >= 1', 'one of 'thesis', 'wide'', 'null or a number > 0'."""
    if "$ref" in rule:
        rule = {**schema()["definitions"][rule["$ref"].rsplit("/", 1)[-1]], **rule}
    branches = rule.get("oneOf") or rule.get("anyOf")
    if branches:
        return " or ".join(describe(branch) for branch in branches)
    if "enum" in rule:
        return " or ".join(map(repr, rule["enum"])) if len(rule["enum"]) == 1 else f"one of {rule['enum']}"
    bounds = [f"{word} {rule[key]}" for key, word in BOUND_WORDS.items() if key in rule]
    if "minItems" in rule:
        bounds.append(f"of at least {rule['minItems']} item{'s' if rule['minItems'] > 1 else ''}")
    return " ".join([TYPE_WORDS.get(rule.get("type"), "a value"), ", ".join(bounds)]).strip()


def key_name(path) -> str:
    """A config key's dotted name: train.kl_weight, latent_dims[0]."""
    name = ""
    for part in path:
        name += f"[{part}]" if isinstance(part, int) else f"{'.' if name else ''}{part}"
    return name


def validate(config: dict, names: dict | None = None, source=None) -> None:
    """A one-line ValueError for the first way config breaks config/config.schema.yaml (jsonschema, the schema
    Snakemake validates the workflow's config with), naming the key and its bound. names maps dotted keys to
    what the user wrote instead (a command's option, e.g. train.kl_weight: --kl-weight); other keys are said as
    in source (a config file), when given."""
    import jsonschema  # installed with Snakemake; only the commands that take settings need it

    names = names or {}
    error = next(iter(jsonschema.Draft202012Validator(schema()).iter_errors(config)), None)
    if error is None:
        return
    path = list(error.absolute_path)
    if error.validator == "additionalProperties":
        known = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(known))
        keys = ", ".join(key_name([*path, key]) for key in unknown)
        message = f"unknown key {keys} (known: {', '.join(known)})"
    else:
        key = key_name(path)
        if error.validator in (*BOUND_WORDS, "type", "enum", "oneOf", "anyOf"):
            message = f"{names.get(key, key)} must be {describe(error.schema)}, got {error.instance!r}"
        else:
            message = f"{names.get(key, key)}: {error.message}"
        if key in names:
            raise ValueError(message)
    raise ValueError(f"{source}: {message}" if source else message)
