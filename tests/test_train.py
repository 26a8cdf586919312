"""train_vae on tiny manifests: outputs, learning, divergence handling, input errors."""

import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from keras import ops  # noqa: E402
from PIL import Image  # noqa: E402

from cellvae.model import load_vae  # noqa: E402
from cellvae.train import HISTORY_COLUMNS, load_images, train_vae  # noqa: E402

# Keras's own TensorFlow variable conversion when saving; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

BBBC021 = Path(__file__).resolve().parents[2] / "shared" / "bbbc021"
SINGLE_CELLS = BBBC021 / "images" / "single_cells"
SETTINGS = dict(batch_size=16, learning_rate=5e-4, r_loss_factor=1000.0, batch_norm=True,
                dropout=0.0, seed=1, log=lambda message: None, verbose=0)


def write_blob_manifest(directory, n_cells=64, size=32, wells=4, seed=0):
    """Synthetic 'cells': one coloured disc per image on black; every 4th well is validation."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows_, columns_ = np.mgrid[:size, :size]
    rows = []
    for i in range(n_cells):
        centre = rng.uniform(0.35 * size, 0.65 * size, 2)
        radius = rng.uniform(0.15 * size, 0.3 * size)
        disc = (rows_ - centre[0]) ** 2 + (columns_ - centre[1]) ** 2 < radius**2
        image = np.zeros((size, size, 3), np.uint8)
        image[disc] = rng.integers(80, 256, 3)
        path = directory / f"cell{i}.png"
        Image.fromarray(image).save(path)
        well = f"B{i % wells:02d}"
        rows.append({"path": str(path), "plate": "P1", "well": well, "site": 1, "label": 0,
                     "compound": "DMSO", "split": "validation" if i % wells == 0 else "train"})
    manifest = directory / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A z=8 model trained 4 epochs on 96 synthetic discs."""
    directory = tmp_path_factory.mktemp("train")
    manifest = write_blob_manifest(directory / "cells", n_cells=128)
    summary = train_vae(manifest, directory / "z8", latent_dim=8, epochs=4, **SETTINGS)
    return directory / "z8", summary


def test_train_vae_writes_model_history_checkpoint_and_summary(trained):
    out_dir, summary = trained
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "checkpoint.keras", "history.csv", "model.keras", "training.json"]
    history = pd.read_csv(out_dir / "history.csv")
    assert list(history.columns) == HISTORY_COLUMNS
    assert history["epoch"].tolist() == [1, 2, 3, 4]
    assert np.isfinite(history.drop(columns="epoch").to_numpy()).all()
    assert (history["seconds"] > 0).all() and (history["images_per_second"] > 0).all()
    np.testing.assert_allclose(history["loss"], history["reconstruction_loss"] + history["kl_loss"],
                               rtol=1e-4)
    assert json.loads((out_dir / "training.json").read_text()) == pytest.approx(summary)
    assert summary["n_train"] == 96 and summary["n_validation"] == 32
    assert summary["parameters"] == 176_403  # the thesis architecture at 32 x 32, z = 8
    vae = load_vae(out_dir / "model.keras")
    assert vae.latent_dim == 8 and vae.count_params() == summary["parameters"]
    images = load_images([out_dir.parent / "cells" / "cell0.png"]).astype("float32") / 255
    assert ops.convert_to_numpy(vae.reconstruct(images)).shape == (1, 32, 32, 3)
    assert load_vae(out_dir / "checkpoint.keras").latent_dim == 8


def test_loss_decreases_on_easy_data(trained):
    history = pd.read_csv(trained[0] / "history.csv")
    assert history["loss"].is_monotonic_decreasing
    assert history["loss"].iloc[-1] < 0.8 * history["loss"].iloc[0]
    assert history["val_loss"].iloc[-1] < history["val_loss"].iloc[0]


def test_divergence_raises_and_leaves_no_model(tmp_path):
    manifest = write_blob_manifest(tmp_path / "cells", n_cells=32)
    out_dir = tmp_path / "model"
    out_dir.mkdir()
    (out_dir / "model.keras").write_text("stale model from an earlier run")
    settings = {**SETTINGS, "learning_rate": 1e20}
    with pytest.raises(RuntimeError, match=r"loss is (nan|inf) at epoch 1, batch \d+"):
        train_vae(manifest, out_dir, latent_dim=4, epochs=3, **settings)
    assert not (out_dir / "model.keras").exists()
    assert not (out_dir / "training.json").exists()


def test_load_images_reads_rgb_uint8(tmp_path):
    manifest = pd.read_csv(write_blob_manifest(tmp_path, n_cells=3, size=16))
    images = load_images(manifest["path"])
    assert images.shape == (3, 16, 16, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images[1], np.asarray(Image.open(manifest["path"][1])))


def test_load_images_names_unreadable_and_mismatched_files(tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(good)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(ValueError, match="unreadable PNG .*broken.png"):
        load_images([good, broken])
    with pytest.raises(ValueError, match="unreadable PNG .*missing.png"):
        load_images([tmp_path / "missing.png"])
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(small)
    with pytest.raises(ValueError, match="small.png"):
        load_images([good, small])


def test_manifest_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest not found"):
        train_vae(tmp_path / "absent.csv", tmp_path / "out", latent_dim=2, epochs=1, **SETTINGS)
    manifest = write_blob_manifest(tmp_path / "cells", n_cells=8)
    table = pd.read_csv(manifest)
    for split in ("train", "validation"):
        table[table["split"] != split].to_csv(manifest, index=False)
        with pytest.raises(ValueError, match=f"no '{split}' rows"):
            train_vae(manifest, tmp_path / "out", latent_dim=2, epochs=1, **SETTINGS)
    table.drop(columns="split").to_csv(manifest, index=False)
    with pytest.raises(ValueError, match="lacks columns"):
        train_vae(manifest, tmp_path / "out", latent_dim=2, epochs=1, **SETTINGS)


def real_cells_manifest(directory, n_cells=64, size=32):
    """Real BBBC021 DMSO crops as size x size uint8 PNGs; the shared subset is one well, so
    its third imaged site is the validation split."""
    crops = pd.read_csv(SINGLE_CELLS / "single_cells_manifest.csv")
    crops = crops[crops["compound"] == "DMSO"].groupby("site").head(n_cells // 3)
    rows = []
    for i, crop in enumerate(crops.itertuples()):
        pixels = np.load(BBBC021 / crop.file).astype(np.float64)
        pixels /= np.maximum(np.percentile(pixels, 99.8, axis=(0, 1)), 1.0)
        rgb = (np.clip(pixels, 0, 1) * 255).astype(np.uint8)
        path = directory / f"cell{i}.png"
        Image.fromarray(rgb).resize((size, size), Image.BILINEAR).save(path)
        rows.append({"path": str(path), "plate": crop.plate, "well": crop.well, "site": crop.site,
                     "label": 0, "compound": "DMSO",
                     "split": "validation" if crop.site == 3 else "train"})
    manifest = directory / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest


@pytest.mark.skipif(not (SINGLE_CELLS / "single_cells_manifest.csv").is_file(),
                    reason=f"shared BBBC021 single-cell crops not found at {SINGLE_CELLS}")
def test_trains_on_real_bbbc021_cells(tmp_path):
    manifest = real_cells_manifest(tmp_path)
    splits = pd.read_csv(manifest)["split"].value_counts()
    assert splits["train"] > 0 and splits["validation"] > 0
    summary = train_vae(manifest, tmp_path / "z16", latent_dim=16, epochs=3, **SETTINGS)
    history = pd.read_csv(tmp_path / "z16" / "history.csv")
    assert np.isfinite(history[["loss", "val_loss"]].to_numpy()).all()
    assert history["loss"].iloc[-1] < history["loss"].iloc[0]
    assert summary["n_train"] == splits["train"]
    assert (tmp_path / "z16" / "model.keras").is_file()
