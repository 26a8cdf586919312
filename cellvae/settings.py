"""Training settings: their defaults and checks (no deep-learning import, so bad options fail at once)."""

from __future__ import annotations

import re

from cellvae.config import defaults

# A model's id: z<latent dim>, or <variant>-z<latent dim> when the config names variants (key models).
MODEL_ID = re.compile(r"(?:([a-z0-9_]+)-)?z(\d+)")

ARCHITECTURES = {  # name: (encoder filters, decoder filters)
    "thesis": ((32, 64, 64), (64, 64, 32)),
    "wide": ((32, 64, 128), (128, 64, 32)),
}
RECONSTRUCTION_LOSSES = ("mse", "gaussian")
SIGMAS = ("shared", "per_channel")  # the gaussian loss's decoder variance: one, or one per RGB channel
DEFAULTS = defaults()["train"]  # the config's train: section at its defaults (config/config.schema.yaml)
MODEL_KEYS = (
    "batch_norm",
    "dropout",
    "r_loss_factor",
    "kl_weight",
    "batch_norm_momentum",
    "architecture",
    "reconstruction_loss",
    "sigma",
)


def vae_settings(overrides=None) -> dict:
    """The VAE's keyword arguments (MODEL_KEYS) of training settings: DEFAULTS with overrides (training_settings;
    keys other than MODEL_KEYS may be given and are left out)."""
    settings = training_settings(overrides or {})
    return {key: settings[key] for key in MODEL_KEYS}


def model_id(variant: str | None, latent_dim: int) -> str:
    """The id of a model (its folder under results/models): z16, or thesis-z75 for a named variant."""
    return f"{variant}-z{latent_dim}" if variant else f"z{latent_dim}"


def parse_model_id(text: str) -> tuple[str | None, int] | None:
    """(variant or None, latent dim) of a model id; None if text is not one."""
    match = MODEL_ID.fullmatch(text)
    return (match[1], int(match[2])) if match else None


def training_settings(overrides) -> dict:
    """DEFAULTS with overrides; a ValueError for an unknown setting. Their values are checked against
    config/config.schema.yaml where they are given: Snakemake validates the workflow's config, `cellvae train` its
    config file and options (cellvae.schema_check), both before anything is written."""
    unknown = set(overrides) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown training settings {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    return {**DEFAULTS, **overrides}
