"""The config schema's rules (config/config.schema.yaml), read here only: `rule_at` (a key's rule, its
"#/definitions/..." reference resolved), `describe` (a rule in words) and `config_error` (a violation in one line
naming the key). The commands check a config with `validate`; the workflow (rules/config.smk) with `config_problem`,
after typing its --config values.
"""

from __future__ import annotations

import yaml

from cellvae.core.config import schema

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
VALUE_CHECKS = (*BOUND_WORDS, "type", "enum", "const", "oneOf", "anyOf", "minItems")  # said as describe says the rule


def resolved(rule: dict) -> dict:
    """A rule with its "#/definitions/<name>" reference filled in (the rule's own keys over the definition's)."""
    if "$ref" not in rule:
        return rule
    own = {key: value for key, value in rule.items() if key != "$ref"}
    return schema()["definitions"][rule["$ref"].rsplit("/", 1)[-1]] | own


def rule_at(path) -> dict:
    """The resolved rule of a config key: "fetch.retries" or ["latent_dims", 0] (an integer: a list's items)."""
    rule = schema()
    for part in path.split(".") if isinstance(path, str) else path:
        rule = resolved(rule)
        rule = rule["items"] if isinstance(part, int) else rule["properties"][part]
    return resolved(rule)


def describe(rule: dict) -> str:
    """What a rule accepts, in words: 'an integer >= 1', 'one of ['thesis', 'wide']', 'null or a number > 0'."""
    rule = resolved(rule)
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


def first_error(config: dict):
    """The first way config breaks the schema (a jsonschema ValidationError), or None."""
    import jsonschema  # only where a config is checked: the fetch jobs' environment has no jsonschema

    return next(iter(jsonschema.Draft202012Validator(schema()).iter_errors(config)), None)


def config_error(error, path=None, said="config key {}".format) -> str:
    """One line for a schema violation at path (default: where jsonschema found it): the key as said(key) says it,
    what it must be and what it is, the keys allowed where one is unknown, or the keys missing."""
    path = list(error.absolute_path) if path is None else path
    key = key_name(path)
    if error.validator == "additionalProperties":
        allowed = list(error.schema.get("properties", {}))
        keys = ", ".join(key_name([*path, name]) for name in error.instance if name not in allowed)
        where = f"under {key}" if key else "at the top level"
        return f"{said(keys)} is not allowed; allowed keys {where}: {', '.join(allowed)} (config/config.schema.yaml)"
    if error.validator == "required" and isinstance(error.instance, dict):
        keys = ", ".join(key_name([*path, name]) for name in error.validator_value if name not in error.instance)
        return f"{said(keys)} is missing (required; see config/config.schema.yaml)"
    if error.validator in VALUE_CHECKS:
        value = repr(error.instance) if len(repr(error.instance)) <= 80 else repr(error.instance)[:80] + "..."
        return f"{said(key or '(top level)')} must be {describe(error.schema)}, got {value} (config/config.schema.yaml)"
    message = error.message if len(error.message) <= 200 else error.message[:200] + "..."
    return f"{said(key or '(top level)')}: {message} (config/config.schema.yaml)"


def validate(config: dict, names: dict | None = None, source=None) -> None:
    """A one-line ValueError (config_error) for the first way config breaks the schema. names maps dotted keys to
    what the user wrote instead (a command's option, e.g. train.kl_weight: --kl-weight); other keys are said as in
    source (a config file), when given."""
    names = names or {}
    error = first_error(config)
    if error is None:
        return
    message = config_error(error, said=lambda key: names.get(key, key))
    in_source = key_name(error.absolute_path) not in names
    raise ValueError(f"{source}: {message}" if source and in_source else message)


def given_at(given, path) -> bool:
    """Whether the command line's --config gave the value at path."""
    for part in path:
        try:
            given = given[part]
        except (KeyError, IndexError, TypeError):
            return False
    return True


def typed_command_line_values(settings: dict, given: dict) -> None:
    """--config values read as YAML where the schema wants other than a string: Snakemake reads nested values
    (png={size: 20}) and list items (latent_dims=[16]) as strings. Only values the command line gave."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    while True:
        typed = []
        for error in validator.iter_errors(settings):
            path = list(error.absolute_path)
            if error.validator not in ("type", "oneOf", "anyOf") or not isinstance(error.instance, str):
                continue
            if not path or not given_at(given, path):
                continue
            try:
                value = yaml.safe_load(error.instance)
            except yaml.YAMLError:
                continue
            if not isinstance(value, str):
                typed.append((path, value))
        if not typed:
            return
        for path, value in typed:
            node = settings
            for part in path[:-1]:
                node = node[part]
            node[path[-1]] = value


def config_problem(settings: dict, given: dict, where=None) -> str | None:
    """The workflow's check: the command line's values typed, then the first violation in one line (config_error),
    said at where(path) (default: its own path); None if settings are valid."""
    typed_command_line_values(settings, given)
    error = first_error(settings)
    if error is not None:
        path = list(error.absolute_path)
        return config_error(error, where(path) if where else path)
