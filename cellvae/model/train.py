"""Train one VAE on uint8 cell shards (tf.data), resumable from per-epoch checkpoints.

Outputs, each named by the caller: the model (model.keras, written last, atomically: it exists only after a
finished run), the history (per epoch) and the summary (training.json). Beside the model:
checkpoints/epoch-NNNN.keras + checkpoint.json (after every epoch: weights, optimizer state, epoch, RNG
state). Rerunning with the same settings and data resumes after the last completed epoch.
"""

import contextlib
import json
import math
import signal
import sys
import threading
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from cellvae.core.config import training_settings, vae_settings
from cellvae.core.files import atomic_write, sha256, unfinished_writes, write_csv, write_json
from cellvae.imaging.dataset import shard_split
from cellvae.imaging.shards import cell_dataset, shards_summary
from cellvae.model.run_folder import TRAINING_FILES, fingerprint
from cellvae.model.vae import build_vae

HISTORY_COLUMNS = [
    "epoch",
    "loss",
    "reconstruction_loss",
    "kl_loss",
    "val_loss",
    "val_reconstruction_loss",
    "val_kl_loss",
    "seconds",
    "train_seconds",
    "images_per_second",
]


def accelerator_present() -> bool:
    """Whether the Keras backend sees a GPU."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    if backend == "jax":
        import jax

        return jax.default_backend() == "gpu"
    if backend == "torch":
        import torch

        return torch.cuda.is_available()
    return False


def resolve_switch(value, key) -> bool:
    """A config switch: true, false or "auto" (on when a GPU is present)."""
    if value == "auto":
        return accelerator_present()
    if isinstance(value, bool):
        return value
    raise ValueError(f'config key train.{key} must be true, false or "auto", got {value!r}')


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Raise a RuntimeError naming epoch and batch as soon as the loss is NaN or infinite."""

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        loss = float(logs["loss"])
        if not math.isfinite(loss):
            raise RuntimeError(
                f"training diverged: loss is {loss} at epoch {self.epoch}, batch {batch + 1}; no model was saved"
            )

    def on_epoch_end(self, epoch, logs=None):
        loss = float(logs.get("val_loss", 0.0))
        if not math.isfinite(loss):
            raise RuntimeError(f"training diverged: val_loss is {loss} at epoch {self.epoch}; no model was saved")


class StopOnInterrupt(keras.callbacks.Callback):
    """Ctrl-C (SIGINT) during fit, under `deferred_interrupts`: KeyboardInterrupt at the next batch or epoch
    boundary, after the epoch's checkpoint. Raised by Python's own handler it can land inside a finalizer or a
    library's cleanup, where Python prints it and drops it, and training went on (exit 0 after Ctrl-C, seen once
    under load). A second Ctrl-C interrupts at once."""

    def __init__(self):
        super().__init__()
        self.requested = False

    def request(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def check(self, *args, **kwargs):
        if self.requested:
            raise KeyboardInterrupt

    on_train_batch_end = on_test_batch_end = on_epoch_end = check


@contextlib.contextmanager
def deferred_interrupts(stopper: StopOnInterrupt):
    """SIGINT handled by stopper while inside (in the main thread only; elsewhere signals can't be handled)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, stopper.request)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    stopper.check()  # a Ctrl-C after the last boundary still stops the run before its model is saved


def seed_variables(vae) -> list:
    """The model's random-generator state variables (sampling, dropout), in layer order."""
    return [variable for variable in vae.variables if "seed_generator" in variable.path]


class EpochCheckpoint(keras.callbacks.Callback):
    """After each epoch: checkpoints/epoch-N.keras (weights + optimizer), then checkpoint.json naming it
    (epoch, RNG states, settings fingerprint, history so far), then history.csv with the epoch's wall
    time and throughput (the history lives in the checkpoint too: Snakemake deletes a rerun job's outputs).

    seconds is the whole epoch (training and validation); images_per_second counts training images
    over the training part of the epoch only.
    """

    def __init__(self, checkpoint_dir, history_csv, fingerprint, n_train, rows):
        super().__init__()
        self.checkpoint_dir = Path(checkpoint_dir)
        self.history_csv = history_csv
        self.fingerprint = fingerprint
        self.n_train = n_train
        self.rows = rows

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.train_end = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        row = {column: float(logs.get(column, math.nan)) for column in HISTORY_COLUMNS}
        row["epoch"] = epoch + 1
        row["seconds"] = time.perf_counter() - self.epoch_start
        row["train_seconds"] = self.train_end - self.epoch_start
        row["images_per_second"] = self.n_train / row["train_seconds"]
        self.rows.append(row)
        directory = self.checkpoint_dir / "checkpoints"
        directory.mkdir(exist_ok=True)
        checkpoint = directory / f"epoch-{epoch + 1:04d}.keras"
        atomic_write(checkpoint, self.model.save)
        state = {
            "epoch": epoch + 1,
            "checkpoint": checkpoint.name,
            "fingerprint": self.fingerprint,
            "seed_states": [keras.ops.convert_to_numpy(v).tolist() for v in seed_variables(self.model)],
            "history": self.rows,
        }
        write_json(state, self.checkpoint_dir / "checkpoint.json")
        for old in directory.glob("epoch-*.keras"):
            if old != checkpoint:
                old.unlink()
        history = pd.DataFrame(self.rows, columns=HISTORY_COLUMNS)
        write_csv(history, self.history_csv)


def resume_point(checkpoint_dir, digest, epochs, log) -> tuple[int, Path | None, list, list]:
    """(completed epochs, checkpoint file, RNG states, history rows) of a resumable earlier run
    (same settings and data, at most `epochs` epochs)."""
    state_path = Path(checkpoint_dir) / "checkpoint.json"
    if not state_path.is_file():
        return 0, None, [], []
    try:
        state = json.loads(state_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(
            f"{state_path} is unreadable (truncated? {error}): delete it and {state_path.parent / 'checkpoints'} "
            "to train from scratch"
        ) from None
    checkpoint = Path(checkpoint_dir) / "checkpoints" / state["checkpoint"]
    if state["fingerprint"] != digest or not checkpoint.is_file() or state["epoch"] > epochs:
        log(
            f"{state_path}: settings or data changed since that run, or it trained more than {epochs} "
            "epochs; training from scratch"
        )
        return 0, None, [], []
    return state["epoch"], checkpoint, state["seed_states"], state["history"]


def training_files(out_dir) -> dict:
    """The output keyword arguments of train_on_shards / train_vae for a run folder (the CLI's --out):
    model.keras, history.csv and training.json in it (run_folder.TRAINING_FILES)."""
    out_dir = Path(out_dir)
    return {
        "model_path": out_dir / TRAINING_FILES["model"],
        "history_csv": out_dir / TRAINING_FILES["history"],
        "summary_json": out_dir / TRAINING_FILES["summary"],
    }


def train_on_shards(
    train_shards,
    validation_shards,
    latent_dim,
    epochs,
    *,
    model_path,
    history_csv,
    summary_json,
    log=print,
    verbose=None,
    **overrides,
) -> dict:
    """Train (or resume) a VAE on .npy cell shards into model_path, history_csv and summary_json; returns the
    summary. Checkpoints to resume from are kept beside model_path.

    overrides: any of cellvae.core.config.TRAIN_DEFAULTS. verbose is passed to fit; by default a live progress bar on a
    terminal and one line per epoch otherwise (log files).
    """
    settings = training_settings(overrides)
    model_path = Path(model_path)
    checkpoint_dir = model_path.parent
    for path in (model_path, history_csv, summary_json):
        Path(path).parent.mkdir(parents=True, exist_ok=True)

    n_train, n_validation, image_size = shard_sizes(train_shards, validation_shards)
    switches = {key: resolve_switch(settings[key], key) for key in ("mixed_precision", "xla")}
    log(
        f"z={latent_dim}: {n_train} train, {n_validation} validation cells of {image_size}x{image_size}; "
        f"backend {keras.backend.backend()}, mixed precision {switches['mixed_precision']}, XLA {switches['xla']}"
    )

    digest = fingerprint(latent_dim, image_size, epochs, settings, [sha256(path) for path in train_shards])
    remove_partial_writes(checkpoint_dir)
    finished = finished_run(model_path, summary_json, digest, epochs)
    if finished:
        log(f"z={latent_dim}: already trained ({epochs} epochs): {model_path}")
        return finished
    first_epoch, checkpoint, states, rows = resume_point(checkpoint_dir, digest, epochs, log)
    keras.utils.set_random_seed(settings["seed"])  # also seeds tf.data shuffles: same on resume
    steps_per_epoch = math.ceil(n_train / settings["batch_size"])
    vae = compiled_vae(image_size, latent_dim, epochs, steps_per_epoch, settings, **switches)
    if checkpoint:
        restore(vae, checkpoint, states)
        log(f"z={latent_dim}: resuming after epoch {first_epoch} from {checkpoint}")
    log(f"z={latent_dim}: {vae.count_params():,} parameters")
    log(f"z={latent_dim}: {loss_explained(settings, image_size)}")
    if not n_validation:
        log(
            f"z={latent_dim}: warning: no validation cells (--validation-images or --validation-pattern): only the "
            "training loss is reported, with no held-out check"
        )

    train_data, validation_data = training_data(train_shards, validation_shards, settings, first_epoch, epochs)
    stopper = StopOnInterrupt()  # last: an interrupted epoch is checkpointed first
    callbacks = [StopOnNonFiniteLoss(), EpochCheckpoint(checkpoint_dir, history_csv, digest, n_train, rows), stopper]
    start = time.perf_counter()
    with deferred_interrupts(stopper):
        if first_epoch < epochs:
            vae.fit(
                train_data,
                validation_data=validation_data,
                epochs=epochs,
                initial_epoch=first_epoch,
                steps_per_epoch=steps_per_epoch,
                callbacks=callbacks,
                shuffle=False,
                validation_steps=math.ceil(n_validation / settings["batch_size"]) if n_validation else None,
                verbose=(1 if sys.stdout.isatty() else 2) if verbose is None else verbose,
            )
    seconds = time.perf_counter() - start
    run = {
        "latent_dim": latent_dim,
        "epochs": epochs,
        "resumed_after_epoch": first_epoch,
        "n_train": n_train,
        "n_validation": n_validation,
        "image_size": image_size,
        **switches,
        "fingerprint": digest,
        **settings,
    }
    summary = save_run(vae, rows, run, model_path, history_csv, summary_json)
    log(
        f"z={latent_dim}: {epochs - first_epoch} epochs in {seconds:.0f} s "
        f"({summary['images_per_second']:.0f} images/s) -> {model_path}"
    )
    return summary


def loss_explained(settings: dict, image_size: int) -> str:
    """One line on what the loss that fit prints means."""
    values = image_size * image_size * 3
    beta = settings["kl_weight"]
    if settings["reconstruction_loss"] == "mse":
        return f"loss per cell = {settings['r_loss_factor']:g} x MSE + {beta:g} x KL (the thesis loss); lower is better"
    return (
        f"loss per cell = Gaussian negative log-likelihood over its {values:,} pixel values + {beta:g} x KL, in nats "
        f"(divide by {values:,} for nats per pixel value); it turns negative once reconstructions are good; lower "
        "is better"
    )


def save_run(vae, rows: list, run: dict, model_path, history_csv, summary_json) -> dict:
    """Write the history (rows: resumed ones + this run's), the model (atomically over an earlier one) and, last,
    the summary (run, the history's measures, the backend); returns the summary."""
    history = pd.DataFrame(rows, columns=HISTORY_COLUMNS)
    write_csv(history, history_csv)
    summary = {**run, **run_measures(history, run["n_train"], vae), "backend": keras.backend.backend()}
    atomic_write(model_path, vae.save)  # replaces an earlier run's model only now, whole
    write_json(summary, summary_json)  # last: a summary whose fingerprint is this run's marks the run finished
    return summary


def finished_run(model_path, summary_json, digest, epochs) -> dict | None:
    """The summary of the run of fingerprint digest and epochs when model_path holds its model (its summary is
    written last)."""
    try:
        summary = json.loads(Path(summary_json).read_text())
    except (OSError, ValueError):
        return None
    finished = isinstance(summary, dict) and (summary.get("fingerprint"), summary.get("epochs")) == (digest, epochs)
    finished = finished and Path(model_path).is_file()
    return summary if finished else None


def remove_partial_writes(checkpoint_dir) -> None:
    """Remove the models and checkpoints whose writes a killed run left unfinished."""
    for folder in (Path(checkpoint_dir), Path(checkpoint_dir) / "checkpoints"):
        for partial in unfinished_writes(folder, ".keras"):
            partial.unlink(missing_ok=True)


def shard_sizes(train_shards, validation_shards) -> tuple[int, int, int]:
    """(training cells, validation cells, image side) of the shards; an error when the two sides differ."""
    n_train, image_size, _ = shards_summary(train_shards)
    n_validation, validation_size, _ = shards_summary(validation_shards) if validation_shards else (0, image_size, [])
    if validation_size != image_size:
        raise ValueError(f"validation cells are {validation_size} px, train cells {image_size} px")
    return n_train, n_validation, image_size


def run_measures(history: pd.DataFrame, n_train: int, vae) -> dict:
    """The summary's measures of a run: wall seconds over all its epochs (resumed ones too), training images per
    second of training time, parameters."""
    return {
        "seconds": float(history["seconds"].sum()),
        "images_per_second": n_train * len(history) / float(history["train_seconds"].sum()),
        "parameters": vae.count_params(),
    }


def compiled_vae(image_size, latent_dim, epochs, steps_per_epoch, settings, *, mixed_precision, xla):
    """A new VAE of the settings (mixed_float16 layers with mixed_precision), compiled with Adam (a cosine decay
    over the epochs' steps where lr_schedule is cosine; XLA with xla) and its KL warm-up set."""
    previous_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed_precision else "float32")
    try:
        vae = build_vae(image_size, latent_dim, **vae_settings(settings))
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
    learning_rate = settings["learning_rate"]
    if settings["lr_schedule"] == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, epochs * steps_per_epoch)
    vae.compile(optimizer=keras.optimizers.Adam(learning_rate, clipnorm=settings["clip_norm"]), jit_compile=xla)
    vae.set_kl_warmup(settings["kl_warmup_epochs"], steps_per_epoch)
    return vae


def restore(vae, checkpoint, seed_states) -> None:
    """Weights, optimizer state and random-generator states of a compiled VAE from an epoch checkpoint."""
    vae.optimizer.build(vae.trainable_variables)
    try:
        vae.load_weights(checkpoint)
    except Exception as error:  # a truncated zip, a missing layer: Keras raises many kinds
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(
            f"checkpoint {checkpoint} is unreadable ({first_line}): delete it to train from scratch "
            f"(the run folder keeps only the last epoch's checkpoint)"
        ) from None
    for variable, state in zip(seed_variables(vae), seed_states, strict=True):
        variable.assign(np.asarray(state, dtype=variable.dtype))


def training_data(train_shards, validation_shards, settings, first_epoch, epochs) -> tuple:
    """(training batches: epochs first_epoch..epochs-1, shuffled and augmented as set; validation batches or
    None) of the shards (cellvae.imaging.shards.cell_dataset)."""
    data = {key: settings[key] for key in ("shuffle_buffer", "parallel_reads")}
    data["cache_bytes"] = settings["cache_mb"] << 20
    batch_size, seed = settings["batch_size"], settings["seed"]
    train_data = cell_dataset(
        train_shards, batch_size, shuffle=True, seed=seed, first_epoch=first_epoch, epochs=epochs,
        augment=settings["augment"], **data,
    )  # fmt: skip
    validation_data = cell_dataset(validation_shards, batch_size, **data) if validation_shards else None
    return train_data, validation_data


def train_vae(
    manifest_csv, latent_dim, epochs, *, model_path, history_csv, summary_json, log=print, verbose=None, **settings
) -> dict:
    """Train a VAE on the train shards of a dataset manifest, validating on its validation shards, into
    model_path, history_csv and summary_json."""
    return train_on_shards(
        shard_split(manifest_csv, "train"),
        shard_split(manifest_csv, "validation"),
        latent_dim,
        epochs,
        model_path=model_path,
        history_csv=history_csv,
        summary_json=summary_json,
        log=log,
        verbose=verbose,
        **settings,
    )
