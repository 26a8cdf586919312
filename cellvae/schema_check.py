"""The config's checks for the commands: a config (file and options over it) against config/config.schema.yaml with
jsonschema, the schema and library Snakemake validates the workflow's config with, answered in one line naming the
key (or the option) and its bound. Only the commands import it: the rules' jobs get a config Snakemake checked.
"""

from __future__ import annotations

import jsonschema

from cellvae.config import schema

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
