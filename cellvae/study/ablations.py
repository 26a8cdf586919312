"""Named training settings to compare: the thesis model and ablations of the default, each over the schema's
train: defaults (config/config.schema.yaml); a named model is trained once per settings and reused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from cellvae.core.config import defaults, variant_settings
from cellvae.model.train import train_on_shards, training_files

THESIS = variant_settings("thesis")  # config/bbbc021.yaml's models.thesis
MODELS = {  # name: settings over the config's train: section at its defaults (the default model)
    "thesis": THESIS,
    "default": {},
    # ablations: the default with one ingredient taken away
    "thesis-sigma": {**THESIS, "reconstruction_loss": "gaussian"},  # the thesis with the sigma-VAE loss only
    "no-augment": {"augment": False},
    "thesis-architecture": {"architecture": "thesis"},
    "constant-lr": {"lr_schedule": "constant", "learning_rate": 5e-4},
    "per-channel-sigma": {"sigma": "per_channel"},  # issue 18 goal 4: one sigma per RGB channel
}
SWITCHES = ("mixed_precision", "xla")  # how a model trains, not what it is: not part of its folder's name


def model_settings(name: str) -> dict:
    """Training settings of a named model (MODELS) over the config's train: defaults."""
    return {**defaults()["train"], **MODELS[name]}


def train_model(name: str, latent_dim: int, seed: int, epochs: int, shard, out: Path, log) -> Path:
    """Train a named model on one shard into out/models/<name>-z<latent_dim>-seed<seed>-<digest of its settings
    and epochs>, or reuse that folder where it holds a finished model; returns the folder."""
    settings = {key: value for key, value in model_settings(name).items() if key not in SWITCHES}
    settings["seed"] = seed
    digest = hashlib.sha256(json.dumps([settings, epochs], sort_keys=True).encode()).hexdigest()[:8]
    folder = Path(out) / "models" / f"{name}-z{latent_dim}-seed{seed}-{digest}"
    if not (folder / "model.keras").is_file():
        train_on_shards([shard], [], latent_dim, epochs, **training_files(folder), log=log, verbose=0, **settings)
    return folder
