# The config: --config values read as YAML, checked against config/config.schema.yaml (which fills in every
# default), each model variant's train: settings checked the same way; any violation is one line naming the key.
import yaml

from jsonschema import Draft202012Validator
from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from cellvae.config import SCHEMA, schema
from cellvae.schema_check import describe, key_name

min_version("9.0")

# said as what the key must be (cellvae.schema_check.describe); others (pattern, uniqueItems) as jsonschema says
VALUE_CHECKS = ("type", "enum", "const", "oneOf", "anyOf", "minimum", "exclusiveMinimum", "maximum")
VALUE_CHECKS += ("exclusiveMaximum", "multipleOf", "minItems")


def config_error(error, path=None):
    """One line for a schema violation at path (default: where jsonschema found it): the key, what it must be and
    what it is or, for an unknown key, the allowed ones."""
    path = list(error.absolute_path) if path is None else path
    key = key_name(path)
    if error.validator == "additionalProperties":
        allowed = list(error.schema.get("properties", {}))
        unknown = [name for name in error.instance if name not in allowed]
        where = f"under {key}" if key else "at the top level"
        keys = ", ".join(key_name([*path, name]) for name in unknown)
        return (
            f"config key {keys} is not allowed; allowed keys {where}: {', '.join(allowed)} "
            "(config/config.schema.yaml)"
        )
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [name for name in error.validator_value if name not in error.instance]
        keys = ", ".join(key_name([*path, name]) for name in missing)
        return f"config key {keys} is missing (required; see config/config.schema.yaml)"
    if error.validator in VALUE_CHECKS:
        value = repr(error.instance) if len(repr(error.instance)) <= 80 else repr(error.instance)[:80] + "..."
        return f"config key {key or '(top level)'} must be {describe(error.schema)}, got {value} (config/config.schema.yaml)"
    message = error.message if len(error.message) <= 200 else error.message[:200] + "..."
    return f"config key {key or '(top level)'}: {message} (config/config.schema.yaml)"


def given_at(given, path):
    """Whether the command line's --config gave the value at path."""
    for part in path:
        try:
            given = given[part]
        except (KeyError, IndexError, TypeError):
            return False
    return True


def typed_command_line_values(settings, given):
    """--config values read as YAML where the schema wants other than a string: Snakemake reads nested values
    (png={size: 20}) and list items (latent_dims=[16]) as strings. Only values the command line gave."""
    validator = Draft202012Validator(schema())
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


def config_problem(settings, given, where=None):
    """Type the command line's values, then the first violation in one line, said at where(path); None if valid."""
    typed_command_line_values(settings, given)
    error = next(iter(Draft202012Validator(schema()).iter_errors(settings)), None)
    if error is not None:
        path = list(error.absolute_path)
        return config_error(error, where(path) if where else path)


COMMAND_LINE = workflow.config_settings.overwrite_config or {}
if problem := config_problem(config, COMMAND_LINE):
    raise WorkflowError(problem)
validate(config, schema=str(SCHEMA), set_default=True)  # valid now: this fills in the defaults

VARIANTS = lookup(dpath="models", within=config)  # name -> train: overrides; none: one model per latent dim
for _name, _overrides in VARIANTS.items():
    _unknown = sorted(set(_overrides) - set(config["train"]))
    if _unknown:
        raise WorkflowError(
            f"config key models.{_name}: {', '.join(_unknown)} not a train: setting; "
            f"allowed: {', '.join(config['train'])}"
        )
    # a variant's settings are train: settings: checked as the train: key (--config values typed as there)
    _given = COMMAND_LINE.get("models", {}).get(_name, {}) if isinstance(COMMAND_LINE.get("models"), dict) else {}
    _variant = {**config, "train": {**config["train"], **_overrides}}
    if problem := config_problem(
        _variant,
        {"train": _given},
        lambda path, name=_name: ["models", name, *path[1:]] if path[:1] == ["train"] else path,
    ):
        raise WorkflowError(problem)
    VARIANTS[_name] = {key: _variant["train"][key] for key in _overrides}
