"""Training settings: their defaults and checks (no deep-learning import, so bad options fail at once)."""

from __future__ import annotations

import re

from cellvae.config import defaults, validate

# A model's id: z<latent dim>, or <variant>-z<latent dim> when the config names variants (key models).
MODEL_ID = re.compile(r"(?:([a-z0-9_]+)-)?z(\d+)")

ARCHITECTURES = {  # name: (encoder filters, decoder filters)
    "thesis": ((32, 64, 64), (64, 64, 32)),
    "wide": ((32, 64, 128), (128, 64, 32)),
}
RECONSTRUCTION_LOSSES = ("mse", "gaussian")
DEFAULTS = defaults()["train"]  # the config's train: section at its defaults (config/config.schema.yaml)
BN_MOMENTUM = DEFAULTS["batch_norm_momentum"]  # Keras' 0.99 leaves short runs' statistics near their start
MODEL_KEYS = (
    "batch_norm",
    "dropout",
    "r_loss_factor",
    "kl_weight",
    "batch_norm_momentum",
    "architecture",
    "reconstruction_loss",
)


def model_id(variant: str | None, latent_dim: int) -> str:
    """The id of a model (its folder under results/models): z16, or thesis-z75 for a named variant."""
    return f"{variant}-z{latent_dim}" if variant else f"z{latent_dim}"


def parse_model_id(text: str) -> tuple[str | None, int] | None:
    """(variant or None, latent dim) of a model id; None if text is not one."""
    match = MODEL_ID.fullmatch(text)
    return (match[1], int(match[2])) if match else None


def training_settings(latent_dim, epochs, overrides, names=None) -> dict:
    """DEFAULTS with overrides, checked against config/config.schema.yaml (train:, epochs, latent_dims); a one-line
    ValueError for an unknown or invalid setting, naming it as train.<key> (or as names maps it, e.g. to an
    option)."""
    unknown = set(overrides) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown training settings {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    settings = {**DEFAULTS, **overrides}
    names = {"latent_dims[0]": "latent_dim", **(names or {})}
    validate({"latent_dims": [latent_dim], "epochs": epochs, "train": settings}, names)
    return settings
