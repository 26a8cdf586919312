# The config, checked by cellvae.core.schema_check against config/config.schema.yaml (--config values read as YAML
# first; validate then fills in every default), each model variant's train: settings the same way; any violation is
# one line naming the key.
from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from cellvae.core.config import SCHEMA
from cellvae.core.schema_check import config_problem

min_version("9.0")

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
