"""Training on tiny shard manifests: outputs, learning, divergence, resuming (also after SIGKILL),
determinism, the loss options and the train/evaluate commands."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from keras import ops  # noqa: E402
from PIL import Image  # noqa: E402

from cellvae.core.config import variant_settings  # noqa: E402
from cellvae.core.files import read_pngs  # noqa: E402
from cellvae.imaging.dataset import write_shards  # noqa: E402
from cellvae.model.train import (
    HISTORY_COLUMNS,
    StopOnInterrupt,
    accelerator_present,
    deferred_interrupts,
    resolve_switch,  # noqa: E402
    train_vae,
    training_files,
)
from cellvae.model.vae import load_vae  # noqa: E402
from cellvae.testing.workflow import REPO  # noqa: E402

# Keras's own TensorFlow variable conversion when saving; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

BBBC021 = REPO.parent / "shared" / "bbbc021"
SINGLE_CELLS = BBBC021 / "images" / "single_cells"
SETTINGS = {  # the thesis model (the config's defaults are the measured wide one); smaller batches for speed
    **variant_settings("thesis"),
    "batch_size": 16,
    "kl_warmup_epochs": 0,  # the loss is then reconstruction + KL in every epoch (checked below)
    "seed": 1,
    "mixed_precision": False,
    "xla": False,
    "log": lambda message: None,
    "verbose": 0,
}


def blob_images(directory, n_cells, size=32, seed=0):
    """Synthetic 'cells': one coloured disc per PNG on black."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows_, columns_ = np.mgrid[:size, :size]
    paths = []
    for i in range(n_cells):
        centre = rng.uniform(0.35 * size, 0.65 * size, 2)
        radius = rng.uniform(0.15 * size, 0.3 * size)
        disc = (rows_ - centre[0]) ** 2 + (columns_ - centre[1]) ** 2 < radius**2
        image = np.zeros((size, size, 3), np.uint8)
        image[disc] = rng.integers(80, 256, 3)
        paths.append(directory / f"cell{i:04d}.png")
        Image.fromarray(image).save(paths[-1])
    return paths


def write_blob_manifest(directory, n_cells=64, size=32, wells=4, seed=0):
    """A manifest of blob PNGs with their shards; every 4th well is validation."""
    paths = blob_images(directory, n_cells, size, seed)
    rows = [
        {
            "path": str(path),
            "plate": "P1",
            "well": f"B{i % wells:02d}",
            "site": 1,
            "label": 0,
            "compound": "DMSO",
            "concentration": 0.0,
            "split": "validation" if i % wells == 0 else "train",
        }
        for i, path in enumerate(paths)
    ]
    manifest = directory / "manifest.csv"
    write_shards(pd.DataFrame(rows), directory / "shards").to_csv(manifest, index=False)
    return manifest


def weights(path):
    return [np.asarray(w) for w in load_vae(path).get_weights()]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A z=8 model trained 4 epochs on 96 synthetic discs."""
    directory = tmp_path_factory.mktemp("train")
    manifest = write_blob_manifest(directory / "cells", n_cells=128)
    summary = train_vae(manifest, **training_files(directory / "z8"), latent_dim=8, epochs=4, **SETTINGS)
    return directory / "z8", summary


def test_train_vae_writes_model_history_checkpoint_and_summary(trained):
    out_dir, summary = trained
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "checkpoint.json",
        "checkpoints",
        "history.csv",
        "model.keras",
        "training.json",
    ]
    assert [p.name for p in (out_dir / "checkpoints").iterdir()] == ["epoch-0004.keras"]
    assert json.loads((out_dir / "checkpoint.json").read_text())["epoch"] == 4
    history = pd.read_csv(out_dir / "history.csv")
    assert list(history.columns) == HISTORY_COLUMNS
    assert history["epoch"].tolist() == [1, 2, 3, 4]
    assert np.isfinite(history.drop(columns="epoch").to_numpy()).all()
    assert (history["seconds"] > 0).all() and (history["images_per_second"] > 0).all()
    np.testing.assert_allclose(history["loss"], history["reconstruction_loss"] + history["kl_loss"], rtol=1e-4)
    written = json.loads((out_dir / "training.json").read_text())
    assert written["images_per_second"] == pytest.approx(summary["images_per_second"])
    assert summary["n_train"] == 96 and summary["n_validation"] == 32
    assert summary["resumed_after_epoch"] == 0 and summary["mixed_precision"] is False
    assert summary["parameters"] == 176_403  # the thesis architecture at 32 x 32, z = 8
    vae = load_vae(out_dir / "model.keras")
    assert vae.latent_dim == 8 and vae.count_params() == summary["parameters"]
    images = read_pngs([out_dir.parent / "cells" / "cell0000.png"]).astype("float32") / 255
    assert ops.convert_to_numpy(vae.reconstruct(images)).shape == (1, 32, 32, 3)
    assert load_vae(out_dir / "checkpoints" / "epoch-0004.keras").latent_dim == 8


def test_loss_decreases_on_easy_data(trained):
    history = pd.read_csv(trained[0] / "history.csv")
    assert history["loss"].is_monotonic_decreasing
    assert history["loss"].iloc[-1] < 0.8 * history["loss"].iloc[0]
    assert history["val_loss"].iloc[-1] < history["val_loss"].iloc[0]


def test_divergence_raises_and_leaves_no_model_of_its_own(tmp_path):
    """A diverging run writes no model or summary; an earlier run's model stays as it was (it is replaced only by a
    finished one)."""
    manifest = write_blob_manifest(tmp_path / "cells", n_cells=32)
    out_dir = tmp_path / "model"
    out_dir.mkdir()
    (out_dir / "model.keras").write_text("the model of an earlier run")
    settings = {**SETTINGS, "learning_rate": 1e20}
    with pytest.raises(RuntimeError, match=r"loss is (nan|inf) at epoch 1, batch \d+"):
        train_vae(manifest, **training_files(out_dir), latent_dim=4, epochs=3, **settings)
    assert (out_dir / "model.keras").read_text() == "the model of an earlier run"
    assert not (out_dir / "training.json").exists()


def test_manifest_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest not found"):
        train_vae(tmp_path / "absent.csv", **training_files(tmp_path / "out"), latent_dim=2, epochs=1, **SETTINGS)
    manifest = write_blob_manifest(tmp_path / "cells", n_cells=8)
    table = pd.read_csv(manifest)
    for split in ("train", "validation"):
        table[table["split"] != split].to_csv(manifest, index=False)
        with pytest.raises(ValueError, match=f"no '{split}' rows"):
            train_vae(manifest, **training_files(tmp_path / "out"), latent_dim=2, epochs=1, **SETTINGS)
    table.drop(columns="split").to_csv(manifest, index=False)
    with pytest.raises(ValueError, match="lacks columns"):
        train_vae(manifest, **training_files(tmp_path / "out"), latent_dim=2, epochs=1, **SETTINGS)


def run_cli(*args, **kwargs):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        [sys.executable, "-m", "cellvae", *map(str, args)], cwd=REPO, env=env, capture_output=True, text=True, **kwargs
    )


@pytest.mark.skipif(
    not (SINGLE_CELLS / "DMSO").is_dir(), reason=f"shared BBBC021 single-cell crops not found at {SINGLE_CELLS}"
)
@pytest.mark.slow
def test_train_and_evaluate_commands_on_real_bbbc021_crops(tmp_path):
    """uint16 .npy crops (DAPI, Tubulin, Actin) of sites 1-2 train, site 3 is held out."""
    images = SINGLE_CELLS / "DMSO"
    common = ["--images", images, "--size", 16, "--config", "none", "--batch-size", 16]
    trained = run_cli(
        "train",
        *common,
        "--pattern",
        "*_1?.npy",
        "--validation-pattern",
        "*_s3_*_1?.npy",
        "--latent-dim",
        4,
        "--epochs",
        2,
        "--out",
        tmp_path / "z4",
        timeout=300,
    )
    assert trained.returncode == 0, trained.stderr
    summary = json.loads((tmp_path / "z4" / "training.json").read_text())
    n_site3 = len(list(images.glob("*_s3_*_1?.npy")))
    assert summary["n_validation"] == n_site3 and summary["n_train"] == len(list(images.glob("*_1?.npy"))) - n_site3
    preprocessing = json.loads((tmp_path / "z4" / "preprocessing.json").read_text())
    assert preprocessing["size"] == 16 and len(preprocessing["ranges_rgb"]) == 3

    evaluated = run_cli(
        "evaluate",
        "--model",
        tmp_path / "z4" / "model.keras",
        "--images",
        images,
        "--pattern",
        "*_s3_*_1?.npy",
        timeout=300,
    )
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = json.loads(evaluated.stdout)
    assert {"similarity_s", "mse", "psnr", "ssim"} <= set(metrics) and metrics["n_cells"] == n_site3
    assert 0 < metrics["similarity_s"] < 1 and -1 < metrics["ssim"] < 1
    held_out = np.load(tmp_path / "z4" / "data" / "validation.npy")  # the same cells, composed alike
    vae = load_vae(tmp_path / "z4" / "model.keras")
    x = held_out.astype("float32") / 255
    mse = float(np.mean((x - ops.convert_to_numpy(vae.reconstruct(x))) ** 2))
    assert metrics["mse"] == pytest.approx(mse, rel=1e-4)


def test_train_command_reports_a_missing_folder(tmp_path):
    result = run_cli(
        "train",
        "--images",
        tmp_path / "nowhere",
        "--latent-dim",
        2,
        "--epochs",
        1,
        "--out",
        tmp_path / "out",
        "--config",
        "none",
        timeout=120,
    )
    assert result.returncode != 0 and "image folder not found" in result.stderr


@pytest.mark.slow
def test_same_seed_same_data_gives_identical_weights(tmp_path):
    manifest = write_blob_manifest(tmp_path / "cells", n_cells=48, size=16)
    for run in ("a", "b"):
        train_vae(manifest, **training_files(tmp_path / run), latent_dim=4, epochs=1, **SETTINGS)
    for first, second in zip(weights(tmp_path / "a" / "model.keras"), weights(tmp_path / "b" / "model.keras")):
        np.testing.assert_array_equal(first, second)
    train_vae(manifest, **training_files(tmp_path / "c"), latent_dim=4, epochs=1, **{**SETTINGS, "seed": 2})
    assert not np.array_equal(weights(tmp_path / "a" / "model.keras")[0], weights(tmp_path / "c" / "model.keras")[0])


@pytest.mark.slow
def test_resumed_training_equals_uninterrupted_training(tmp_path):
    """Optimizer state, epoch, data order and sampling RNG all come back from the checkpoint."""
    manifest = write_blob_manifest(tmp_path / "cells", n_cells=48, size=16)
    train_vae(manifest, **training_files(tmp_path / "whole"), latent_dim=4, epochs=3, **SETTINGS)
    train_vae(manifest, **training_files(tmp_path / "parts"), latent_dim=4, epochs=2, **SETTINGS)
    messages = []
    summary = train_vae(
        manifest, **training_files(tmp_path / "parts"), latent_dim=4, epochs=3, **{**SETTINGS, "log": messages.append}
    )
    assert summary["resumed_after_epoch"] == 2
    assert any("resuming after epoch 2" in message for message in messages)
    assert pd.read_csv(tmp_path / "parts" / "history.csv")["epoch"].tolist() == [1, 2, 3]
    for whole, parts in zip(weights(tmp_path / "whole" / "model.keras"), weights(tmp_path / "parts" / "model.keras")):
        np.testing.assert_allclose(whole, parts, rtol=1e-5, atol=1e-6)
    messages.clear()
    train_vae(
        manifest, **training_files(tmp_path / "parts"), latent_dim=5, epochs=1, **{**SETTINGS, "log": messages.append}
    )
    assert any("training from scratch" in message for message in messages)


@pytest.mark.slow
def test_an_unreadable_checkpoint_is_named_and_the_finished_model_kept(tmp_path):
    manifest = write_blob_manifest(tmp_path / "cells", n_cells=32, size=16)
    files = training_files(tmp_path / "run")
    train_vae(manifest, **files, latent_dim=4, epochs=1, **SETTINGS)
    checkpoint = tmp_path / "run" / "checkpoints" / "epoch-0001.keras"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])  # truncated
    model = files["model_path"].read_bytes()
    with pytest.raises(ValueError, match=f"checkpoint {checkpoint} is unreadable .*: delete it to train from scratch"):
        train_vae(manifest, **files, latent_dim=4, epochs=2, **SETTINGS)
    assert files["model_path"].read_bytes() == model
    (tmp_path / "run" / "checkpoint.json").write_text('{"epoch": 1, "checkp')
    with pytest.raises(ValueError, match="checkpoint.json is unreadable .*: delete it and .* to train from scratch"):
        train_vae(manifest, **files, latent_dim=4, epochs=2, **SETTINGS)
    checkpoint.unlink()
    (tmp_path / "run" / "checkpoint.json").unlink()
    assert train_vae(manifest, **files, latent_dim=4, epochs=2, **SETTINGS)["resumed_after_epoch"] == 0


@pytest.mark.slow
def test_sigkilled_training_resumes_from_its_last_completed_epoch(tmp_path):
    blob_images(tmp_path / "cells", n_cells=400, size=32)
    out = tmp_path / "model"
    command = [
        sys.executable,
        "-m",
        "cellvae",
        "train",
        "--images",
        tmp_path / "cells",
        "--latent-dim",
        4,
        "--epochs",
        4,
        "--out",
        out,
        "--config",
        "none",
        "--size",
        32,
        "--batch-size",
        4,
        "--mixed-precision",
        "false",
        "--xla",
        "false",
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.Popen(
        list(map(str, command)), cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 240
        while not (out / "history.csv").is_file() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # into the next epoch (100 steps)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    completed = json.loads((out / "checkpoint.json").read_text())["epoch"]
    assert 1 <= completed < 4 and not (out / "model.keras").exists()
    rerun = subprocess.run(list(map(str, command)), cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"resuming after epoch {completed}" in rerun.stdout + rerun.stderr
    assert pd.read_csv(out / "history.csv")["epoch"].tolist() == [1, 2, 3, 4]
    assert json.loads((out / "training.json").read_text())["resumed_after_epoch"] == completed


def test_beta_and_kl_warmup_weight_the_kl_term(tmp_path):
    manifest = write_blob_manifest(tmp_path / "cells", n_cells=32, size=16)
    settings = {**SETTINGS, "kl_weight": 0.5, "kl_warmup_epochs": 2}
    train_vae(manifest, **training_files(tmp_path / "beta"), latent_dim=4, epochs=3, **settings)
    history = pd.read_csv(tmp_path / "beta" / "history.csv")
    beta = np.array([0.25, 0.5, 0.5])
    np.testing.assert_allclose(history["loss"], history["reconstruction_loss"] + beta * history["kl_loss"], rtol=1e-4)
    np.testing.assert_allclose(
        history["val_loss"], history["val_reconstruction_loss"] + beta * history["val_kl_loss"], rtol=1e-4
    )


def test_gradient_clipping_reaches_the_optimizer(tmp_path):
    manifest = write_blob_manifest(tmp_path / "cells", n_cells=32, size=16)
    train_vae(
        manifest, **training_files(tmp_path / "clipped"), latent_dim=4, epochs=1, **{**SETTINGS, "clip_norm": 2.5}
    )
    checkpoint = keras.saving.load_model(tmp_path / "clipped" / "checkpoints" / "epoch-0001.keras")
    assert checkpoint.optimizer.clipnorm == 2.5


@pytest.mark.slow
def test_mixed_precision_and_xla_switches_on_cpu(tmp_path):
    manifest = write_blob_manifest(tmp_path / "cells", n_cells=32, size=16)
    summary = train_vae(
        manifest,
        **training_files(tmp_path / "fast"),
        latent_dim=4,
        epochs=1,
        **{**SETTINGS, "mixed_precision": True, "xla": True},
    )
    assert summary["mixed_precision"] is True and summary["xla"] is True
    assert np.isfinite(pd.read_csv(tmp_path / "fast" / "history.csv")["loss"]).all()
    vae = load_vae(tmp_path / "fast" / "model.keras")
    assert vae.encoder.layers[1].dtype_policy.name == "mixed_float16"
    assert ops.convert_to_numpy(vae.reconstruct(np.zeros((1, 16, 16, 3), "float32"))).dtype == np.float32
    assert keras.mixed_precision.global_policy().name == "float32"  # restored after training
    assert resolve_switch("auto", "xla") == accelerator_present()
    with pytest.raises(ValueError, match="train.xla must be"):
        resolve_switch("yes", "xla")


def test_a_moved_run_folder_resumes_by_content(tmp_path):
    """The checkpoint's fingerprint holds the training cells' content, not their path."""
    manifest = write_blob_manifest(tmp_path / "cells", n_cells=32, size=16)
    train_vae(manifest, **training_files(tmp_path / "here"), latent_dim=4, epochs=1, **SETTINGS)
    moved_cells = tmp_path / "elsewhere" / "cells"
    moved_cells.parent.mkdir()
    (tmp_path / "cells").rename(moved_cells)
    (tmp_path / "here").rename(tmp_path / "elsewhere" / "run")
    table = pd.read_csv(moved_cells / "manifest.csv")
    table["shard"] = [str(moved_cells / Path(shard).relative_to(tmp_path / "cells")) for shard in table["shard"]]
    table.to_csv(moved_cells / "manifest.csv", index=False)
    summary = train_vae(
        moved_cells / "manifest.csv",
        **training_files(tmp_path / "elsewhere" / "run"),
        latent_dim=4,
        epochs=2,
        **SETTINGS,
    )
    assert summary["resumed_after_epoch"] == 1


def test_cosine_schedule_and_augmentation_train(tmp_path):
    manifest = write_blob_manifest(tmp_path / "cells", n_cells=32, size=16)
    settings = {
        **SETTINGS,
        "lr_schedule": "cosine",
        "augment": True,
        "architecture": "wide",
        "reconstruction_loss": "gaussian",
    }
    summary = train_vae(manifest, **training_files(tmp_path / "run"), latent_dim=4, epochs=2, **settings)
    assert (summary["architecture"], summary["reconstruction_loss"], summary["augment"]) == ("wide", "gaussian", True)
    checkpoint = keras.saving.load_model(tmp_path / "run" / "checkpoints" / "epoch-0002.keras")
    assert float(checkpoint.optimizer.learning_rate) == pytest.approx(0.0, abs=1e-9)  # decayed to 0 at the end


def test_train_vae_writes_exactly_the_files_it_is_given(tmp_path):
    manifest = write_blob_manifest(tmp_path / "cells", n_cells=32, size=16)
    model, history, summary = tmp_path / "m" / "vae.keras", tmp_path / "h" / "epochs.csv", tmp_path / "run.json"
    train_vae(manifest, latent_dim=4, epochs=1, model_path=model, history_csv=history, summary_json=summary, **SETTINGS)
    assert model.is_file() and pd.read_csv(history)["epoch"].tolist() == [1] and json.loads(summary.read_text())
    assert sorted(path.name for path in model.parent.iterdir()) == ["checkpoint.json", "checkpoints", "vae.keras"]
    assert sorted(path.name for path in history.parent.iterdir()) == ["epochs.csv"]


def test_ctrl_c_during_fit_waits_for_a_batch_boundary_and_is_never_dropped():
    """SIGINT inside deferred_interrupts only sets a flag (so it cannot land in a finalizer, where Python drops a
    KeyboardInterrupt); the next boundary raises it, and so does leaving the block; the handler is restored."""
    stopper = StopOnInterrupt()
    before = signal.getsignal(signal.SIGINT)

    class Finalized:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGINT)  # Python's own handler would raise here, and drop it

    with pytest.raises(KeyboardInterrupt):
        with deferred_interrupts(stopper):
            Finalized()
            time.sleep(0.05)  # the handler has run by now: the flag is set, nothing raised
            assert stopper.requested
            stopper.on_train_batch_end(0)
    assert signal.getsignal(signal.SIGINT) is before
    late = StopOnInterrupt()
    with pytest.raises(KeyboardInterrupt):
        with deferred_interrupts(late):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
    assert signal.getsignal(signal.SIGINT) is before
