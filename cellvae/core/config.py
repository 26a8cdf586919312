"""The workflow config's defaults for the commands: read from config/config.schema.yaml, their one place; and
the training settings built on them (model ids, the model's choices, training_settings, vae_settings), checked
without a deep-learning import, so bad options fail at once.

cellvae is the workflow's own library: installed editable from the checkout (make setup) or imported from the
workflow folder by Snakemake's script: jobs, so the schema is found beside the package, in the repository.
"""

from __future__ import annotations

import copy
import functools
import re
from pathlib import Path

import yaml

SCHEMA = Path(__file__).resolve().parents[2] / "config" / "config.schema.yaml"


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


# A model's id: z<latent dim>, or <variant>-z<latent dim> when the config names variants (key models).
MODEL_ID = re.compile(r"(?:([a-z0-9_]+)-)?z(\d+)")

ARCHITECTURES = {  # name: (encoder filters, decoder filters)
    "thesis": ((32, 64, 64), (64, 64, 32)),
    "wide": ((32, 64, 128), (128, 64, 32)),
    "deep": ((32, 64, 128, 128), (128, 128, 64, 32)),  # a fourth stride-2 stage: dense layers 4x smaller than wide's
}
RECONSTRUCTION_LOSSES = ("mse", "gaussian")
LIKELIHOOD_SUPPORTS = ("window", "cell")  # the gaussian loss over the whole window, or the cell mask's pixels only
SIGMAS = ("shared", "per_channel")  # the gaussian loss's decoder variance: one, or one per RGB channel
TRAIN_DEFAULTS = defaults()["train"]  # the config's train: section at its defaults
MODEL_KEYS = (
    "batch_norm",
    "dropout",
    "r_loss_factor",
    "kl_weight",
    "batch_norm_momentum",
    "architecture",
    "reconstruction_loss",
    "sigma",
    "likelihood_support",
    "invariance_weight",
    "invariance_temperature",
    "invariance_jitter",
)


def vae_settings(overrides=None) -> dict:
    """The VAE's keyword arguments (MODEL_KEYS) of training settings: TRAIN_DEFAULTS with overrides (training_settings;
    keys other than MODEL_KEYS may be given and are left out)."""
    settings = training_settings(overrides or {})
    return {key: settings[key] for key in MODEL_KEYS}


def variant_settings(name: str, overlay: str = "config/bbbc021.yaml") -> dict:
    """The train: settings that model variant `name` of a config overlay sets (its models: key, read from the
    repository as the schema is); config/bbbc021.yaml's models.thesis is the one definition of the thesis model."""
    return dict(yaml.safe_load((SCHEMA.parents[1] / overlay).read_text())["models"][name] or {})


def model_id(variant: str | None, latent_dim: int) -> str:
    """The id of a model (its folder under results/models): z16, or thesis-z75 for a named variant."""
    return f"{variant}-z{latent_dim}" if variant else f"z{latent_dim}"


def parse_model_id(text: str) -> tuple[str | None, int] | None:
    """(variant or None, latent dim) of a model id; None if text is not one."""
    match = MODEL_ID.fullmatch(text)
    return (match[1], int(match[2])) if match else None


def training_settings(overrides) -> dict:
    """TRAIN_DEFAULTS with overrides; a ValueError for an unknown setting. Their values are checked against
    config/config.schema.yaml where they are given: Snakemake validates the workflow's config, `cellvae train` its
    config file and options (cellvae.core.schema_check), both before anything is written."""
    unknown = set(overrides) - set(TRAIN_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown training settings {sorted(unknown)}; known: {sorted(TRAIN_DEFAULTS)}")
    return {**TRAIN_DEFAULTS, **overrides}
