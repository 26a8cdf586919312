"""A `cellvae train` run folder (--out): its fingerprint, its lock, what another run into it would change, and its
files read with one-line errors (no deep-learning import: the checks come before TensorFlow).

preprocessing.json holds the run's record ("run": fingerprint, latent dim, epochs, the options as given and the
digests of the composed cells); baselines.npz and training.json carry the same fingerprint, so `evaluate` and
`embed` can tell that the files beside a model belong together. A run into a folder that holds another run is
refused (unless --overwrite): nothing of a finished or interrupted run is replaced by accident.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from pathlib import Path

import numpy as np

MODEL_KERAS = "model.keras"
# a model's files, by role: a run folder's (train.training_files) and train_vae's outputs (rules/common.smk MODEL_FILES)
TRAINING_FILES = {"model": MODEL_KERAS, "summary": "training.json", "history": "history.csv"}
PREPROCESSING_JSON = "preprocessing.json"
BASELINES_NPZ = "baselines.npz"
CHECKPOINT_JSON = "checkpoint.json"
LOCK = ".lock"
RUN_FILES = (*TRAINING_FILES.values(), CHECKPOINT_JSON, "checkpoints", PREPROCESSING_JSON, BASELINES_NPZ)
SHARDS = ("data/train.npy", "data/validation.npy")
INPUT_OPTIONS = {  # the options that say where a run's cells are (a moved folder of the same cells is the same run)
    "training": ("--images", "--where", "--pattern", "--validation-pattern"),
    "validation": ("--validation-images", "--validation-where", "--validation-pattern", "--images", "--pattern"),
}


class _HashWriter:
    def __init__(self):
        self.digest = hashlib.sha256()

    def write(self, data):
        self.digest.update(data)
        return len(data)


def array_digest(cells: np.ndarray) -> str:
    """The cellvae.core.files.sha256 the cells' .npy shard (cellvae.imaging.shards.write_shard) will have, unwritten."""
    writer = _HashWriter()
    np.save(writer, np.ascontiguousarray(cells, dtype=np.uint8))
    return writer.digest.hexdigest()


def fingerprint(latent_dim, image_size, epochs, settings, shard_digests) -> str:
    """A digest of everything that must match for a checkpoint to be resumed: the settings and the training
    cells' content (their shards' digests, not their paths: a run folder moved elsewhere resumes); the number of
    epochs too where the learning-rate schedule depends on it."""
    keys = {key: settings[key] for key in sorted(settings) if key not in ("mixed_precision", "xla")}
    schedule_length = epochs if settings["lr_schedule"] != "constant" else None
    text = json.dumps([latent_dim, image_size, schedule_length, keys, list(shard_digests)], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@contextlib.contextmanager
def locked(out: Path):
    """Hold OUT/.lock (flock, with this process's pid in it) while the block runs; a RuntimeError naming the
    holder's pid when another process holds it. The kernel drops the lock when its process ends, crash or not."""
    out.mkdir(parents=True, exist_ok=True)
    handle = open(out / LOCK, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            pid = handle.read().strip() or "unknown"
            raise RuntimeError(
                f"{out} is in use by another `cellvae train` (pid {pid}); wait for it to end, or give another --out"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        handle.close()


def read_json(path: Path, fix: str) -> dict:
    """A JSON file of a run folder; a one-line ValueError naming it and saying what to do (fix) when it is
    missing or unreadable."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {fix}")
    try:
        return json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is unreadable (truncated? {error}): {fix}") from None


def _readable_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def differences(out: Path, record: dict) -> list[str]:
    """What differs between the run that out holds and this one (record: fingerprint "id", "epochs", the cells'
    digests and "options": option -> value); [] where out holds no run, the same one, or the same with more
    epochs on a schedule that can continue."""
    present = [name for name in RUN_FILES if (out / name).exists()]
    if not present:
        return []
    old = (_readable_json(out / PREPROCESSING_JSON) or {}).get("run")
    if not isinstance(old, dict):  # no record (or an unreadable one): the checkpoint's fingerprint decides
        state = _readable_json(out / CHECKPOINT_JSON)
        if isinstance(state, dict) and state.get("fingerprint") == record["id"]:
            return []
        return [f"its {', '.join(present)} are not this run's (no readable {PREPROCESSING_JSON} to compare with)"]
    comparable = json.loads(json.dumps(record["options"]))
    before = old.get("options", {})
    changed = {option: f"{option} {before.get(option)!r}, now {value!r}" for option, value in comparable.items()}
    changed = {option: said for option, said in changed.items() if before.get(option) != comparable[option]}
    found = [said for option, said in changed.items() if not any(option in group for group in INPUT_OPTIONS.values())]
    for what, key in (("training", "train_cells"), ("validation", "validation_cells")):
        if old.get(key) != record[key]:  # where the inputs are counts only when what they hold differs
            found += [said for option, said in changed.items() if option in INPUT_OPTIONS[what] and said not in found]
            if not found:
                found.append(f"the {what} images' content")
    if record["epochs"] < old["epochs"]:
        found.append(f"--epochs {old['epochs']}, now {record['epochs']}")
    elif record["id"] != old.get("id") and not found:
        found.append(
            f"--epochs {old['epochs']}, now {record['epochs']} (the cosine learning-rate schedule spans the epochs: "
            "a longer run cannot continue it)"
            if record["epochs"] > old["epochs"]
            else "the settings or images (their fingerprint)"
        )
    return found


def enclosing_run_folder(path) -> Path | None:
    """The run folder (one holding a run's record, checkpoint or model) that path lies in or is, if any."""
    resolved = Path(path).resolve()
    for folder in (resolved, *resolved.parents):
        if any((folder / name).is_file() for name in (PREPROCESSING_JSON, CHECKPOINT_JSON, MODEL_KERAS)):
            return folder
    return None


def clear(out: Path) -> None:
    """Remove a run's files from out (--overwrite), leaving anything else there."""
    for name in (*RUN_FILES, *SHARDS):
        path = out / name
        if path.is_dir():
            for checkpoint in path.glob("epoch-*.keras"):
                checkpoint.unlink()
            with contextlib.suppress(OSError):
                path.rmdir()
        else:
            path.unlink(missing_ok=True)
