"""Similarity/MSE/PSNR definitions, per-model analysis and the comparison of models."""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from keras import ops  # noqa: E402
from PIL import Image  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402

from cellvae.core.config import vae_settings  # noqa: E402
from cellvae.evaluation import analysis, latent  # noqa: E402
from cellvae.evaluation.analysis import analyze_model, compare_models  # noqa: E402
from cellvae.evaluation.baselines import Baselines  # noqa: E402
from cellvae.evaluation.metrics import psnr, reconstruction_metrics  # noqa: E402
from cellvae.imaging.dataset import write_shards  # noqa: E402
from cellvae.model.train import train_vae, training_files  # noqa: E402
from cellvae.model.vae import build_vae, load_vae  # noqa: E402

# Keras's own TensorFlow variable conversion when saving; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def test_evaluate_in_batches_equals_whole_array(monkeypatch):
    vae = build_vae(16, 3, **vae_settings())
    images = np.random.default_rng(1).integers(0, 256, (7, 16, 16, 3)).astype(np.uint8)
    monkeypatch.setattr(analysis, "BATCH_SIZE", 3)
    metrics, mu = analysis.evaluate(vae, images)
    x = images.astype("float32") / 255
    x_hat = ops.convert_to_numpy(vae.reconstruct(x))
    assert metrics["n_cells"] == 7 and metrics["latent_dim"] == 3
    whole = reconstruction_metrics(images, lambda _: x_hat, masked=True, batch_size=7)
    for key in ("similarity_s", "mse", "ssim", "s_cell", "mse_cell"):
        assert metrics[key] == pytest.approx(whole[key], rel=1e-5)
    assert metrics["mse"] == pytest.approx(float(np.mean((x - x_hat) ** 2)), rel=1e-5)
    assert metrics["psnr"] == pytest.approx(psnr(metrics["mse"]))
    np.testing.assert_allclose(mu, ops.convert_to_numpy(vae.encode(x)[0]), rtol=1e-5, atol=1e-6)


def write_manifest(directory, n_cells=40, size=16):
    """Random smooth colour images; every 4th image is validation."""
    directory.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n_cells):
        small = rng.integers(0, 256, (4, 4, 3)).astype(np.uint8)
        path = directory / f"cell{i}.png"
        Image.fromarray(small).resize((size, size), Image.BILINEAR).save(path)
        rows.append(
            {
                "path": str(path),
                "plate": "P1",
                "well": f"B{i % 4}",
                "site": 1,
                "label": 0,
                "compound": "DMSO",
                "concentration": 0.0,
                "split": "validation" if i % 4 == 0 else "train",
            }
        )
    write_shards(pd.DataFrame(rows), directory / "shards").to_csv(directory / "manifest.csv", index=False)
    return directory / "manifest.csv"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Two 1-epoch models (z = 2 and 6) of 16 x 16 images and their manifest."""
    directory = tmp_path_factory.mktemp("analysis")
    manifest = write_manifest(directory / "cells")
    model_dirs = []
    for latent_dim in (6, 2):
        model_dirs.append(directory / f"z{latent_dim}")
        train_vae(
            manifest,
            latent_dim=latent_dim,
            epochs=1,
            **training_files(model_dirs[-1]),
            batch_size=8,
            learning_rate=5e-4,
            r_loss_factor=1000.0,
            batch_norm=True,
            dropout=0.0,
            seed=1,
            log=lambda message: None,
            verbose=0,
        )
    return directory, manifest, model_dirs


def analysis_files(folder):
    """analyze_model's output arguments in a folder, named as the workflow names them."""
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "metrics_json": folder / "metrics.json",
        "baselines_npz": folder / "baselines.npz",
        "latent_json": folder / "latent.json",
        "generated_png": folder / "generated.png",
        "latent_histograms_png": folder / "latent_histograms.png",
    }


def comparison_files(model_dirs, analysis_dirs, folder):
    """compare_models's per-model input and output arguments, named as the workflow names them."""
    return {
        "models": [directory / "model.keras" for directory in model_dirs],
        "histories": [directory / "history.csv" for directory in model_dirs],
        "summaries": [directory / "training.json" for directory in model_dirs],
        "metrics": [directory / "metrics.json" for directory in analysis_dirs],
        "baselines": [directory / "baselines.npz" for directory in analysis_dirs],
        "metrics_csv": folder / "metrics.csv",
        "reconstructions_png": folder / "reconstructions.png",
        "loss_curves_png": folder / "loss_curves.png",
        "training_speed_png": folder / "training_speed.png",
        "model_vs_baselines_png": folder / "model_vs_baselines.png",
    }


def png_size(path):
    with Image.open(path) as image:
        return image.size


def test_analyze_model_writes_metrics_figures_and_latent_section(models, tmp_path):
    _, manifest, model_dirs = models
    metrics = analyze_model(
        model_dirs[0] / "model.keras",
        manifest,
        **analysis_files(tmp_path),
        n_generated=7,
        n_latent_histograms=4,
        iwae_samples=8,
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "baselines.npz",
        "generated.png",
        "latent.json",
        "latent_histograms.png",
        "metrics.json",
    ]
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["baselines"] == metrics["baselines"]
    assert set(metrics) == {
        "latent_dim",
        "similarity_s",
        "mse",
        "psnr",
        "ssim",
        "s_cell",
        "mse_cell",
        "n_cells",
        "baselines",
    }
    assert metrics["latent_dim"] == 6 and metrics["n_cells"] == 10
    assert set(metrics["baselines"]) == {"zero", "mean", "median", "pca"} and metrics["baselines"]["pca"]["k"] == 6
    # the baselines are fitted on the 30 training cells, evaluated on the same 10 validation cells
    manifest_table = pd.read_csv(manifest)
    train = np.stack(
        [np.asarray(Image.open(p)) for p in manifest_table.loc[manifest_table["split"] == "train", "path"]]
    )
    validation = np.stack(
        [np.asarray(Image.open(p)) for p in manifest_table.loc[manifest_table["split"] == "validation", "path"]]
    )
    mean_image = train.mean(axis=0) / 255
    assert metrics["baselines"]["mean"]["mse"] == pytest.approx(np.mean((validation / 255 - mean_image) ** 2), rel=1e-5)
    pca = Baselines.load(tmp_path / "baselines.npz")
    assert pca.k == 6 and metrics["baselines"]["zero"]["mse"] == pytest.approx(np.mean((validation / 255) ** 2))
    assert 0 < metrics["similarity_s"] < 1 and metrics["psnr"] == pytest.approx(psnr(metrics["mse"]))

    section = json.loads((tmp_path / "latent.json").read_text())
    assert len(section["kl_per_dim"]) == 6 and section["kl_per_dim"] == sorted(section["kl_per_dim"], reverse=True)
    assert section["kl_nats"] == pytest.approx(sum(section["kl_per_dim"])) and 0 <= section["active_units"] <= 6
    vae = load_vae(model_dirs[0] / "model.keras")
    mu, log_var = latent.posterior(vae, validation)
    assert section["kl_nats"] == pytest.approx(latent.kl_per_dimension(mu, log_var).sum(), rel=1e-6)
    assert section["active_units"] == latent.active_units(mu) and section["n_cells"] == 10
    # PPCA-6 of the same 30 training cells, on the same 10 validation cells, per pixel value
    ppca = PCA(n_components=6, random_state=0).fit(train.reshape(30, -1) / 255)
    expected = -ppca.score_samples(validation.reshape(10, -1) / 255).mean() / (16 * 16 * 3)
    assert section["ppca_nll_per_pixel"] == pytest.approx(expected, rel=1e-3)
    assert np.isfinite(section["nll_per_pixel"]) and section["iwae_samples"] == 8 and "notes" not in section
    width, height = png_size(tmp_path / "generated.png")
    assert width > height > 0  # 7 samples on one row
    assert png_size(tmp_path / "latent_histograms.png")[0] > 0


def test_compare_models_writes_table_reconstructions_and_loss_curves(models, tmp_path):
    directory, manifest, model_dirs = models
    analysis_dirs = [directory / "analysis" / d.name for d in model_dirs]
    for model_dir, analysis_dir in zip(model_dirs, analysis_dirs):
        analyze_model(
            model_dir / "model.keras",
            manifest,
            **analysis_files(analysis_dir),
            n_generated=2,
            n_latent_histograms=2,
            iwae_samples=2,
        )
    table = compare_models(
        [directory.name for directory in model_dirs],
        manifest_csv=manifest,
        **comparison_files(model_dirs, analysis_dirs, tmp_path),
        n_reconstructions=5,
    )

    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "loss_curves.png",
        "metrics.csv",
        "model_vs_baselines.png",
        "reconstructions.png",
        "training_speed.png",
    ]
    written = pd.read_csv(tmp_path / "metrics.csv")
    assert list(written.columns) == [
        "method",
        "model",
        "latent_dim",
        "similarity_s",
        "mse",
        "psnr",
        "ssim",
        "s_cell",
        "mse_cell",
        "n_cells",
        "parameters",
        "epochs",
        "train_seconds",
        "images_per_second",
        "final_loss",
        "final_reconstruction_loss",
        "final_kl_loss",
        "final_val_loss",
        "final_val_reconstruction_loss",
        "final_val_kl_loss",
    ]
    assert written["method"].tolist() == ["zero", "mean", "median", "vae", "pca-2", "vae", "pca-6"]
    assert written["latent_dim"].tolist() == [0, 0, 0, 2, 2, 6, 6]
    vae_rows = written[written["method"] == "vae"].reset_index(drop=True)
    assert vae_rows["model"].tolist() == ["z2", "z6"]
    assert vae_rows["epochs"].tolist() == [1, 1]
    training = json.loads((model_dirs[0] / "training.json").read_text())
    assert vae_rows.loc[1, "parameters"] == training["parameters"]
    metrics = json.loads((analysis_dirs[0] / "metrics.json").read_text())
    assert vae_rows.loc[1, "similarity_s"] == pytest.approx(metrics["similarity_s"])
    assert written.loc[6, "mse"] == pytest.approx(metrics["baselines"]["pca"]["mse"])
    history = pd.read_csv(model_dirs[0] / "history.csv")
    assert vae_rows.loc[1, "final_val_loss"] == pytest.approx(history["val_loss"].iloc[-1])
    pd.testing.assert_frame_equal(table.reset_index(drop=True), written, check_dtype=False)

    width, height = png_size(tmp_path / "reconstructions.png")
    assert width >= height  # 5 columns, 5 rows (originals + 2 models + their PCA-k)
    assert png_size(tmp_path / "loss_curves.png")[0] > 0
    assert png_size(tmp_path / "training_speed.png")[0] > 0


def test_compare_models_needs_every_file_of_each_model(models, tmp_path):
    _, manifest, model_dirs = models
    with pytest.raises(ValueError, match="2 models but 2, 2, 2, 1, 1 models, histories, summaries, metrics"):
        compare_models(
            [directory.name for directory in model_dirs],
            manifest_csv=manifest,
            **comparison_files(model_dirs, [tmp_path], tmp_path),
            n_reconstructions=2,
        )


def test_loss_curves_show_every_epoch_of_a_negative_loss_on_a_linear_axis():
    """The Gaussian loss turns negative: every epoch is drawn (a log axis would drop them), each model in its own
    panel, validation only where there was any."""
    from cellvae.evaluation.analysis import plot_loss_curves

    epochs = np.arange(1, 21)
    histories = {
        "z16": pd.DataFrame({"epoch": epochs, "loss": 1000.0 - 800.0 * epochs, "val_loss": 900.0 - 700.0 * epochs}),
        "thesis-z16": pd.DataFrame({"epoch": epochs, "loss": 50.0 / epochs, "val_loss": np.nan}),
    }
    figure = plot_loss_curves(histories)
    axes = figure.axes
    assert [ax.get_title() for ax in axes] == ["z16", "thesis-z16"]
    assert all(ax.get_yscale() == "linear" for ax in axes)
    assert [len(ax.lines) for ax in axes] == [2, 1]
    for line in axes[0].lines:
        assert len(line.get_xdata()) == 20 and np.isfinite(line.get_ydata()).all()
    low, high = axes[0].get_ylim()
    assert low <= histories["z16"]["loss"].min() and high >= histories["z16"]["loss"].max()
    assert "β·KL" in axes[0].get_ylabel()
