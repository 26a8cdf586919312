"""Evaluate trained VAEs on the held-out validation cells and compare latent dimensions.

Reconstructions decode the posterior mean mu. Metrics, as in the thesis:
similarity S = 1 - mean|x - x_hat| / 255 with x, x_hat in 0..255; also the MSE on [0, 1],
the PSNR (dB, data range 1) of that MSE and the SSIM (Gaussian window, sigma 1.5, per channel).
"""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from keras import ops
from matplotlib.figure import Figure
from scipy import ndimage, stats

from cellvae.model import load_vae
from cellvae.train import atomic_write, load_images, read_manifest, split_paths

BATCH_SIZE = 128


def similarity_s(images, reconstructions):
    """Thesis similarity 1 - mean|x - x_hat| / 255 of arrays in 0..255."""
    difference = np.asarray(images, dtype=np.float64) - np.asarray(reconstructions, dtype=np.float64)
    return 1.0 - float(np.mean(np.abs(difference))) / 255.0


def mean_squared_error(images, reconstructions):
    """Mean squared error of arrays in [0, 1]."""
    difference = np.asarray(images, dtype=np.float64) - np.asarray(reconstructions, dtype=np.float64)
    return float(np.mean(np.square(difference)))


def psnr(mse, data_range=1.0):
    """Peak signal-to-noise ratio in dB of a mean squared error (inf if it is 0)."""
    return math.inf if mse == 0 else 10.0 * math.log10(data_range**2 / mse)


def ssim(images, reconstructions, data_range=1.0):
    """Mean structural similarity (Wang et al. 2004) of N×H×W×C arrays: Gaussian window (sigma 1.5,
    11×11), per channel, borders of 5 px excluded, as skimage's structural_similarity(gaussian_weights=True)."""
    x = np.asarray(images, dtype=np.float64)
    y = np.asarray(reconstructions, dtype=np.float64)

    def local_mean(a):
        return ndimage.gaussian_filter(a, sigma=(0, 1.5, 1.5, 0), truncate=3.5)

    mu_x, mu_y = local_mean(x), local_mean(y)
    var_x = local_mean(x * x) - mu_x ** 2
    var_y = local_mean(y * y) - mu_y ** 2
    covariance = local_mean(x * y) - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * covariance + c2)
                / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2)))
    return float(ssim_map[:, 5:-5, 5:-5, :].mean())


def evaluate(vae, images):
    """Reconstruct uint8 images from mu batch by batch -> (metrics dict, mu array)."""
    similarity_sum = squared_error_sum = ssim_sum = 0.0
    mus = []
    for start in range(0, len(images), BATCH_SIZE):
        batch = images[start:start + BATCH_SIZE].astype("float32") / 255.0
        mu, _ = vae.encode(batch)
        reconstructions = ops.convert_to_numpy(vae.decode(mu))
        similarity_sum += similarity_s(batch * 255.0, reconstructions * 255.0) * len(batch)
        squared_error_sum += mean_squared_error(batch, reconstructions) * len(batch)
        ssim_sum += ssim(batch, reconstructions) * len(batch)
        mus.append(ops.convert_to_numpy(mu))
    mse = squared_error_sum / len(images)
    metrics = {
        "latent_dim": vae.latent_dim,
        "similarity_s": similarity_sum / len(images),
        "mse": mse,
        "psnr": psnr(mse),
        "ssim": ssim_sum / len(images),
        "n_cells": len(images),
    }
    return metrics, np.concatenate(mus)


def latent_ks_table(mu):
    """Per latent dimension: mean, std and the KS test of mu against N(0, 1)."""
    rows = []
    for dim in range(mu.shape[1]):
        test = stats.kstest(mu[:, dim], "norm")
        rows.append({"dim": dim, "mean": mu[:, dim].mean(), "std": mu[:, dim].std(),
                     "ks_statistic": test.statistic, "ks_pvalue": test.pvalue})
    return pd.DataFrame(rows)


def save_figure(figure, path):
    """Write a matplotlib figure as PNG atomically."""
    atomic_write(path, lambda temporary: figure.savefig(temporary, format="png", dpi=120))


def image_grid(images, columns, title):
    """A figure showing images (N, S, S, 3) in [0, 1] on a grid."""
    rows = math.ceil(len(images) / columns)
    figure = Figure(figsize=(1.6 * columns, 1.6 * rows + 0.6))
    axes = figure.subplots(rows, columns, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image in zip(axes.flat, images):
        ax.imshow(np.clip(image, 0.0, 1.0))
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def plot_latent_histograms(mu, ks_table, n_dims):
    """Histograms of mu for the first n_dims latent dimensions against the N(0, 1) density."""
    n_dims = min(n_dims, mu.shape[1])
    columns = min(5, n_dims)
    rows = math.ceil(n_dims / columns)
    figure = Figure(figsize=(3 * columns, 2.4 * rows + 0.8))
    axes = figure.subplots(rows, columns, squeeze=False)
    for ax in axes.flat[n_dims:]:
        ax.axis("off")
    grid = np.linspace(-4, 4, 200)
    for dim, ax in zip(range(n_dims), axes.flat):
        ax.hist(mu[:, dim], bins=30, density=True, color="tab:blue", alpha=0.7, label="mu")
        ax.plot(grid, stats.norm.pdf(grid), color="black", label="N(0, 1)")
        ax.set_title(f"dim {dim}: KS = {ks_table.loc[dim, 'ks_statistic']:.3f}", fontsize=10)
        ax.set_xlabel("mu")
        ax.set_ylabel("density")
    axes.flat[0].legend(fontsize=8)
    figure.suptitle(f"Latent means of {len(mu)} validation cells vs N(0, 1) "
                    f"(z = {mu.shape[1]}, Kolmogorov-Smirnov statistic per panel)")
    figure.tight_layout()
    return figure


def analyze_model(model_path, manifest_csv, out_dir, n_generated=20, n_latent_histograms=20,
                  seed=0) -> dict:
    """metrics.json, latent_ks.csv, generated.png and latent_histograms.png of one model."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    vae = load_vae(model_path)
    manifest = read_manifest(manifest_csv)
    images = load_images(split_paths(manifest, "validation", manifest_csv))

    metrics, mu = evaluate(vae, images)
    atomic_write(out_dir / "metrics.json",
                 lambda path: path.write_text(json.dumps(metrics, indent=2) + "\n"))
    ks_table = latent_ks_table(mu)
    atomic_write(out_dir / "latent_ks.csv", lambda path: ks_table.to_csv(path, index=False))

    z = np.random.default_rng(seed).standard_normal((n_generated, vae.latent_dim))
    generated = ops.convert_to_numpy(vae.decode(z.astype("float32")))
    save_figure(image_grid(generated, min(10, n_generated),
                           f"{n_generated} cells decoded from z ~ N(0, I), z = {vae.latent_dim}"),
                out_dir / "generated.png")
    save_figure(plot_latent_histograms(mu, ks_table, n_latent_histograms),
                out_dir / "latent_histograms.png")
    return metrics


def plot_reconstructions(originals, reconstructions_by_model):
    """First row: originals; then one labelled row of reconstructions per model."""
    rows = 1 + len(reconstructions_by_model)
    columns = len(originals)
    figure = Figure(figsize=(1.6 * columns + 0.6, 1.6 * rows + 0.6))
    axes = figure.subplots(rows, columns, squeeze=False)
    labelled = [("original", originals)] + list(reconstructions_by_model.items())
    for row, (label, images) in zip(axes, labelled):
        for ax, image in zip(row, images):
            ax.imshow(np.clip(image, 0.0, 1.0))
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(label, fontsize=11)
    figure.suptitle("Validation cells and their reconstructions from mu")
    figure.tight_layout()
    return figure


def plot_loss_curves(histories):
    """Training and validation loss per epoch of every model (log scale)."""
    figure = Figure(figsize=(11, 4))
    axes = figure.subplots(1, 2, sharey=True)
    for label, history in histories.items():
        axes[0].plot(history["epoch"], history["loss"], marker=".", label=label)
        axes[1].plot(history["epoch"], history["val_loss"], marker=".", label=label)
    for ax, title in zip(axes, ["Training loss", "Validation loss"]):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0].set_ylabel("r_loss_factor * MSE + KL")
    figure.tight_layout()
    return figure


def plot_training_speed(table):
    """Per model: total training time and training throughput (bars labelled with their values)."""
    figure = Figure(figsize=(10, 3.6))
    axes = figure.subplots(1, 2)
    labels = [f"z={dim}" for dim in table["latent_dim"]]
    for ax, column, title in zip(axes, ["train_seconds", "images_per_second"],
                                 ["Training time (s, all epochs)", "Throughput (training images/s)"]):
        bars = ax.bar(labels, table[column], color="tab:blue")
        ax.bar_label(bars, fmt="%.0f")
        ax.set_title(title)
        ax.margins(y=0.15)
    figure.tight_layout()
    return figure


def compare_models(model_dirs: list, analysis_dirs: list, manifest_csv, out_dir,
                   n_reconstructions=8, seed=0) -> pd.DataFrame:
    """metrics.csv, reconstructions.png, loss_curves.png and training_speed.png across models.

    Each model_dir holds model.keras, training.json and history.csv (train_vae); each
    analysis_dir the metrics.json of analyze_model for the same model.
    """
    if len(model_dirs) != len(analysis_dirs):
        raise ValueError(f"{len(model_dirs)} model dirs but {len(analysis_dirs)} analysis dirs")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(manifest_csv)
    paths = split_paths(manifest, "validation", manifest_csv)
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(paths), size=min(n_reconstructions, len(paths)), replace=False))
    originals = load_images([paths[i] for i in chosen]).astype("float32") / 255.0

    rows, reconstructions, histories = [], {}, {}
    for model_dir, analysis_dir in zip(map(Path, model_dirs), map(Path, analysis_dirs)):
        metrics = json.loads((analysis_dir / "metrics.json").read_text())
        training = json.loads((model_dir / "training.json").read_text())
        history = pd.read_csv(model_dir / "history.csv")
        label = f"z={metrics['latent_dim']}"
        final = history.iloc[-1]
        rows.append({
            **metrics,
            "parameters": training["parameters"],
            "epochs": training["epochs"],
            "train_seconds": training["seconds"],
            "images_per_second": training["images_per_second"],
            **{f"final_{column}": final[column] for column in
               ["loss", "reconstruction_loss", "kl_loss",
                "val_loss", "val_reconstruction_loss", "val_kl_loss"]},
        })
        vae = load_vae(model_dir / "model.keras")
        reconstructions[label] = ops.convert_to_numpy(vae.reconstruct(originals))
        histories[label] = history

    table = pd.DataFrame(rows).sort_values("latent_dim")
    atomic_write(out_dir / "metrics.csv", lambda path: table.to_csv(path, index=False))
    save_figure(plot_reconstructions(originals, reconstructions), out_dir / "reconstructions.png")
    save_figure(plot_loss_curves(histories), out_dir / "loss_curves.png")
    save_figure(plot_training_speed(table), out_dir / "training_speed.png")
    return table
