"""Train one VAE on the train split of a dataset manifest, validating on its validation split.

Outputs in out_dir: model.keras (written last, atomically: it exists only after a finished
run), checkpoint.keras (every epoch), history.csv (per epoch) and training.json (summary).
"""

import json
import math
import os
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
from PIL import Image

from cellvae.model import build_vae

MANIFEST_COLUMNS = ["path", "plate", "well", "site", "label", "compound", "split"]
HISTORY_COLUMNS = ["epoch", "loss", "reconstruction_loss", "kl_loss", "val_loss",
                   "val_reconstruction_loss", "val_kl_loss", "seconds", "images_per_second"]


def atomic_write(path, write):
    """Call write(temporary_path) next to path, then rename it over path."""
    path = Path(path)
    temporary = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def read_manifest(manifest_csv) -> pd.DataFrame:
    """The manifest table, checked for its columns."""
    if not Path(manifest_csv).is_file():
        raise FileNotFoundError(f"manifest not found: {manifest_csv}")
    manifest = pd.read_csv(manifest_csv)
    missing = [column for column in MANIFEST_COLUMNS if column not in manifest.columns]
    if missing:
        raise ValueError(f"manifest {manifest_csv} lacks columns {missing}")
    return manifest


def split_paths(manifest, split, manifest_csv) -> list:
    """Image paths of one split ('train' or 'validation'); an error if it has none."""
    paths = manifest.loc[manifest["split"] == split, "path"].tolist()
    if not paths:
        raise ValueError(f"manifest {manifest_csv} has no '{split}' rows")
    return paths


def load_images(paths) -> np.ndarray:
    """RGB PNG files -> uint8 array (N, S, S, 3); all images must be square and of one size."""
    paths = list(paths)
    if not paths:
        raise ValueError("no image paths to load")
    images = None
    for index, path in enumerate(paths):
        try:
            with Image.open(path) as image:
                array = np.asarray(image.convert("RGB"))
        except (OSError, ValueError) as error:
            raise ValueError(f"unreadable PNG {path}: {error}") from error
        if images is None:
            images = np.empty((len(paths), array.shape[0], array.shape[0], 3), np.uint8)
        if array.shape != images.shape[1:]:
            raise ValueError(f"image {path} is {array.shape}, expected {images.shape[1:]}")
        images[index] = array
    return images


class ImageBatches(keras.utils.PyDataset):
    """Batches of uint8 images scaled to float32 [0, 1], reshuffled every epoch if asked."""

    def __init__(self, images, batch_size, shuffle=False, seed=0):
        super().__init__()
        self.images = images
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(images)) if shuffle else np.arange(len(images))

    def __len__(self):
        return math.ceil(len(self.images) / self.batch_size)

    def __getitem__(self, index):
        batch = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        return self.images[batch].astype("float32") / 255.0

    def on_epoch_end(self):
        if self.shuffle:
            self.order = self.rng.permutation(len(self.images))


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Raise a RuntimeError naming epoch and batch as soon as the loss is NaN or infinite."""

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        loss = float(logs["loss"])
        if not math.isfinite(loss):
            raise RuntimeError(f"training diverged: loss is {loss} at epoch {self.epoch}, "
                               f"batch {batch + 1}; no model was saved")

    def on_epoch_end(self, epoch, logs=None):
        loss = float(logs.get("val_loss", 0.0))
        if not math.isfinite(loss):
            raise RuntimeError(f"training diverged: val_loss is {loss} at epoch {self.epoch}; "
                               "no model was saved")


class HistoryCSV(keras.callbacks.Callback):
    """Write history.csv after every epoch with its wall time and training throughput.

    seconds is the whole epoch (training and validation); images_per_second counts
    training images over the training part of the epoch only.
    """

    def __init__(self, path, n_train):
        super().__init__()
        self.path = path
        self.n_train = n_train
        self.rows = []
        self.train_seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.train_end = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        row = {column: float(logs.get(column, math.nan)) for column in HISTORY_COLUMNS}
        row["epoch"] = epoch + 1
        row["seconds"] = time.perf_counter() - self.epoch_start
        self.train_seconds.append(self.train_end - self.epoch_start)
        row["images_per_second"] = self.n_train / self.train_seconds[-1]
        self.rows.append(row)
        history = pd.DataFrame(self.rows, columns=HISTORY_COLUMNS)
        atomic_write(self.path, lambda path: history.to_csv(path, index=False))


def train_vae(manifest_csv, out_dir, latent_dim, epochs, batch_size, learning_rate,
              r_loss_factor, batch_norm, dropout, seed, log=print, verbose=None) -> dict:
    """Train a VAE of the given latent dimension; returns the training.json summary.

    verbose is passed to fit; by default a live progress bar on a terminal and one line
    per epoch otherwise (log files).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("model.keras", "training.json"):
        (out_dir / stale).unlink(missing_ok=True)

    manifest = read_manifest(manifest_csv)
    train_images = load_images(split_paths(manifest, "train", manifest_csv))
    validation_images = load_images(split_paths(manifest, "validation", manifest_csv))
    image_size = train_images.shape[1]
    if validation_images.shape[1:] != train_images.shape[1:]:
        raise ValueError(f"validation images are {validation_images.shape[1:]}, "
                         f"train images {train_images.shape[1:]}")
    log(f"z={latent_dim}: {len(train_images)} train, {len(validation_images)} validation "
        f"images of {image_size}x{image_size}")

    keras.utils.set_random_seed(seed)
    vae = build_vae(image_size, latent_dim, batch_norm, dropout, r_loss_factor)
    vae.compile(optimizer=keras.optimizers.Adam(learning_rate), jit_compile=False)
    log(f"z={latent_dim}: {vae.count_params():,} parameters")

    history_csv = HistoryCSV(out_dir / "history.csv", len(train_images))
    callbacks = [
        StopOnNonFiniteLoss(),
        keras.callbacks.ModelCheckpoint(str(out_dir / "checkpoint.keras")),
        history_csv,
    ]
    start = time.perf_counter()
    vae.fit(
        ImageBatches(train_images, batch_size, shuffle=True, seed=seed),
        validation_data=ImageBatches(validation_images, batch_size),
        epochs=epochs,
        callbacks=callbacks,
        verbose=(1 if sys.stdout.isatty() else 2) if verbose is None else verbose,
    )
    seconds = time.perf_counter() - start

    summary = {
        "latent_dim": latent_dim,
        "epochs": epochs,
        "n_train": len(train_images),
        "n_validation": len(validation_images),
        "seconds": seconds,
        "images_per_second": len(train_images) * epochs / sum(history_csv.train_seconds),
        "parameters": vae.count_params(),
        "image_size": image_size,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "r_loss_factor": r_loss_factor,
        "batch_norm": batch_norm,
        "dropout": dropout,
        "seed": seed,
    }
    atomic_write(out_dir / "training.json",
                 lambda path: path.write_text(json.dumps(summary, indent=2) + "\n"))
    atomic_write(out_dir / "model.keras", vae.save)
    log(f"z={latent_dim}: trained {epochs} epochs in {seconds:.0f} s "
        f"({summary['images_per_second']:.0f} images/s) -> {out_dir / 'model.keras'}")
    return summary
