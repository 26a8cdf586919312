"""Training settings: their defaults and checks (no deep-learning import, so bad options fail at once)."""

from __future__ import annotations

import re

from cellvae.config import defaults, schema

# A model's id: z<latent dim>, or <variant>-z<latent dim> when the config names variants (key models).
MODEL_ID = re.compile(r"(?:([a-z0-9_]+)-)?z(\d+)")

ARCHITECTURES = {  # name: (encoder filters, decoder filters)
    "thesis": ((32, 64, 64), (64, 64, 32)),
    "wide": ((32, 64, 128), (128, 64, 32)),
}
RECONSTRUCTION_LOSSES = ("mse", "gaussian")
DEFAULTS = defaults()["train"]  # the config's train: section at its defaults (config/config.schema.yaml)
NUMBERS = {  # the train: settings that take a number (clip_norm: or null)
    key
    for key, rule in schema()["properties"]["train"]["properties"].items()
    if "number" in [rule.get("type"), *(branch.get("type") for branch in rule.get("oneOf", []))]
}
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
LR_SCHEDULES = ("constant", "cosine")


def model_id(variant: str | None, latent_dim: int) -> str:
    """The id of a model (its folder under results/models): z16, or thesis-z75 for a named variant."""
    return f"{variant}-z{latent_dim}" if variant else f"z{latent_dim}"


def parse_model_id(text: str) -> tuple[str | None, int] | None:
    """(variant or None, latent dim) of a model id; None if text is not one."""
    match = MODEL_ID.fullmatch(text)
    return (match[1], int(match[2])) if match else None


def check_settings(latent_dim, epochs, settings) -> None:
    """ValueError naming the option of the first invalid training setting (before anything is written)."""
    checks = [
        (isinstance(latent_dim, int) and latent_dim >= 1, "latent_dim", latent_dim, "a positive integer"),
        (isinstance(epochs, int) and epochs >= 1, "epochs", epochs, "a positive integer"),
        (settings["batch_size"] >= 1, "train.batch_size", settings["batch_size"], "a positive integer"),
        (settings["learning_rate"] > 0, "train.learning_rate", settings["learning_rate"], "positive"),
        (
            settings["seed"] >= 1,
            "train.seed",
            settings["seed"],
            "a positive integer (TensorFlow's seed 0 breaks tensor-valued shuffle seeds)",
        ),
        (
            settings["lr_schedule"] in LR_SCHEDULES,
            "train.lr_schedule",
            settings["lr_schedule"],
            f"one of {LR_SCHEDULES}",
        ),
        (
            settings["architecture"] in ARCHITECTURES,
            "train.architecture",
            settings["architecture"],
            f"one of {sorted(ARCHITECTURES)}",
        ),
        (
            settings["reconstruction_loss"] in RECONSTRUCTION_LOSSES,
            "train.reconstruction_loss",
            settings["reconstruction_loss"],
            f"one of {RECONSTRUCTION_LOSSES}",
        ),
    ]
    for ok, key, value, expected in checks:
        if not ok:
            raise ValueError(f"{key} must be {expected}, got {value!r}")


def training_settings(latent_dim, epochs, overrides) -> dict:
    """DEFAULTS with overrides, checked; ValueError for an unknown or invalid setting."""
    unknown = set(overrides) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown training settings {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    settings = {**DEFAULTS, **overrides}
    check_settings(latent_dim, epochs, settings)
    return settings
