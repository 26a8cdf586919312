"""Evaluate trained VAEs on the held-out validation cells beside their baselines, and compare latent dimensions.

Reconstructions decode the posterior mean mu. Metrics (cellvae.evaluation.metrics): the thesis's similarity S, MSE,
PSNR and SSIM over whole images and, inside the segmented cell (the PNG stage zeroes every pixel outside it),
s_cell and mse_cell. Each model stands beside zero / mean / median / PCA-k reconstructions of the same cells
(cellvae.evaluation.baselines, fitted on the model's training cells, k = its latent dimension). The latent section
(cellvae.evaluation.latent): KL per dimension and in total, active units, and the held-out NLL per pixel of the VAE
(importance-weighted bound) beside probabilistic PCA's with k = z.
"""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from keras import ops
from matplotlib.figure import Figure
from scipy import stats

from cellvae.core.files import read_pngs, save_figure, write_csv, write_json
from cellvae.evaluation import latent
from cellvae.evaluation.baselines import Baselines
from cellvae.evaluation.metrics import METRICS, reconstruction_metrics
from cellvae.imaging.dataset import read_dataset_manifest, shard_split, split_paths
from cellvae.model.vae import load_vae

BATCH_SIZE = 128
BASELINE_MAX_CELLS = 20_000  # training cells the baselines are fitted on (a seeded sample beyond that)


def evaluate(vae, images, masked=True):
    """Reconstruct uint8 images from mu batch by batch -> (metrics dict, mu array)."""
    mus = []

    def reconstruct(batch):
        mu, _ = vae.encode(batch)
        mus.append(ops.convert_to_numpy(mu))
        return ops.convert_to_numpy(vae.decode(mu))

    metrics = reconstruction_metrics(images, reconstruct, masked, BATCH_SIZE)
    return {"latent_dim": vae.latent_dim, **metrics}, np.concatenate(mus)


def training_cells(manifest_csv) -> np.ndarray:
    """The train split's uint8 cells from the dataset's shards (at most BASELINE_MAX_CELLS, sampled)."""
    from cellvae.evaluation.baselines import sample_cells

    shards = [np.load(path, mmap_mode="r") for path in shard_split(manifest_csv, "train")]
    counts = np.cumsum([0] + [len(shard) for shard in shards])
    chosen = sample_cells(np.arange(counts[-1]), BASELINE_MAX_CELLS)
    cells = np.empty((len(chosen), *shards[0].shape[1:]), np.uint8)
    for index, cell in enumerate(chosen):
        shard = np.searchsorted(counts, cell, side="right") - 1
        cells[index] = shards[shard][cell - counts[shard]]
    return cells


def baseline_metrics(baselines: Baselines, images, masked=True) -> dict:
    """name -> metrics of each baseline's reconstructions of the images."""
    return {
        name: reconstruction_metrics(images, reconstruct, masked, BATCH_SIZE)
        for name, reconstruct in baselines.reconstructors().items()
    }


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


def plot_latent_histograms(mu, kl, n_dims):
    """Histograms of mu for the n_dims latent dimensions of the highest KL (kl: per dimension, in nats), beside
    the N(0, 1) prior (the posterior means of an informative dimension spread less: Var(mu) = 1 - E[sigma^2])."""
    n_dims = min(n_dims, mu.shape[1])
    order = np.argsort(-np.asarray(kl), kind="stable")[:n_dims]
    columns = min(5, n_dims)
    rows = math.ceil(n_dims / columns)
    figure = Figure(figsize=(3 * columns, 2.4 * rows + 0.8))
    axes = figure.subplots(rows, columns, squeeze=False)
    for ax in axes.flat[n_dims:]:
        ax.axis("off")
    grid = np.linspace(-4, 4, 200)
    for dim, ax in zip(order, axes.flat):
        ax.hist(mu[:, dim], bins=30, density=True, color="tab:blue", alpha=0.7, label="mu")
        ax.plot(grid, stats.norm.pdf(grid), color="black", label="N(0, 1) prior")
        ax.set_title(f"dim {dim}: KL {kl[dim]:.2f} nats, Var(mu) {mu[:, dim].var():.2f}", fontsize=10)
        ax.set_xlabel("mu")
        ax.set_ylabel("density")
    axes.flat[0].legend(fontsize=8)
    figure.suptitle(
        f"Latent means of {len(mu)} validation cells, the {n_dims} dimensions of the highest KL "
        f"(z = {mu.shape[1]}, {latent.active_units(mu)} active: Var(mu) > {latent.ACTIVE_UNIT_VARIANCE})"
    )
    figure.tight_layout()
    return figure


def analyze_model(
    model_path,
    manifest_csv,
    *,
    metrics_json,
    baselines_npz,
    latent_json,
    generated_png,
    latent_histograms_png,
    n_generated: int,
    n_latent_histograms: int,
    iwae_samples: int,
    seed=0,
) -> dict:
    """One model's metrics (its own and its baselines') in metrics_json, the fitted baselines in baselines_npz,
    its latent section (cellvae.evaluation.latent.latent_section, IWAE with iwae_samples draws) in latent_json, and the
    generated_png and latent_histograms_png figures."""
    vae = load_vae(model_path)
    manifest = read_dataset_manifest(manifest_csv)
    images = read_pngs(split_paths(manifest, "validation", manifest_csv))

    metrics, mu = evaluate(vae, images)
    train_cells = training_cells(manifest_csv)
    baselines = Baselines.fit(train_cells, vae.latent_dim, seed=seed)
    baselines.save(baselines_npz)
    metrics["baselines"] = baseline_metrics(baselines, images)
    metrics["baselines"]["pca"]["k"] = baselines.k
    write_json(metrics, metrics_json)
    section = latent.latent_section(vae, images, train_cells, baselines, iwae_samples, seed)
    write_json(section, latent_json)

    z = np.random.default_rng(seed).standard_normal((n_generated, vae.latent_dim))
    generated = ops.convert_to_numpy(vae.decode(z.astype("float32")))
    save_figure(
        image_grid(
            generated, min(10, n_generated), f"{n_generated} cells decoded from z ~ N(0, I), z = {vae.latent_dim}"
        ),
        generated_png,
    )
    kl = latent.kl_per_dimension(*latent.posterior(vae, images))
    save_figure(plot_latent_histograms(mu, kl, n_latent_histograms), latent_histograms_png)
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
    figure.suptitle("Validation cells, each model's reconstructions from mu and PCA-k's (k = its latent dimension)")
    figure.tight_layout()
    return figure


def plot_loss_curves(histories):
    """One panel per model: its training and validation loss per epoch on a linear axis (the Gaussian decoder's
    loss is a negative log-likelihood in nats, negative once the reconstructions are good; lower is better)."""
    figure = Figure(figsize=(max(5.0, 4.2 * len(histories)), 3.8))
    axes = figure.subplots(1, len(histories), squeeze=False)[0]
    for ax, (label, history) in zip(axes, histories.items()):
        ax.plot(history["epoch"], history["loss"], marker=".", label="training")
        if history["val_loss"].notna().any():
            ax.plot(history["epoch"], history["val_loss"], marker=".", label="validation")
        ax.set_title(label)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0].set_ylabel("loss per cell: reconstruction + β·KL")
    figure.tight_layout()
    return figure


def plot_training_speed(table):
    """Per model: total training time and training throughput (bars labelled with their values)."""
    figure = Figure(figsize=(10, 3.6))
    axes = figure.subplots(1, 2)
    labels = table["model"].tolist()
    for ax, column, title in zip(
        axes,
        ["train_seconds", "images_per_second"],
        ["Training time (s, all epochs)", "Throughput (training images/s)"],
    ):
        bars = ax.bar(labels, table[column], color="tab:blue")
        ax.bar_label(bars, fmt="%.0f")
        ax.set_title(title)
        ax.margins(y=0.15)
    figure.tight_layout()
    return figure


def plot_model_vs_baselines(table):
    """Held-out MSE of each VAE beside PCA with as many components, and the zero / mean / median images."""
    figure = Figure(figsize=(8, 4))
    ax = figure.subplots()
    models = table[table["method"] == "vae"]
    pca = table[table["method"].str.startswith("pca-")].set_index("latent_dim")
    positions = np.arange(len(models))
    ax.bar(positions - 0.2, models["mse"], 0.4, label="VAE (decoded mu)", color="tab:blue")
    ax.bar(
        positions + 0.2,
        [pca.loc[dim, "mse"] for dim in models["latent_dim"]],
        0.4,
        label="PCA-k (k = latent dim)",
        color="tab:orange",
    )
    for name, style in [("mean", ":"), ("median", "--")]:
        row = table[table["method"] == name]
        if len(row):
            ax.axhline(row["mse"].iloc[0], color="gray", linestyle=style, label=f"{name} training image")
    ax.set_xticks(positions, models["model"])
    ax.set_ylabel("MSE on held-out cells (lower is better)")
    ax.set_title("Each model against baselines on the same held-out cells")
    ax.legend(fontsize=8)
    figure.tight_layout()
    return figure


def sort_key(value):
    """Sort baselines (latent_dim 0: zero, mean, median) first, then by latent dimension, VAE before PCA."""
    order = {"zero": 0, "mean": 1, "median": 2, "vae": 3}
    return order.get(value, 4) if isinstance(value, str) else value


FINAL_COLUMNS = ["loss", "reconstruction_loss", "kl_loss", "val_loss", "val_reconstruction_loss", "val_kl_loss"]


def validation_sample(manifest_csv, n: int, seed: int) -> np.ndarray:
    """A seeded sample of at most n of the dataset's validation cells, as float32 images in [0, 1]."""
    paths = split_paths(read_dataset_manifest(manifest_csv), "validation", manifest_csv)
    chosen = sorted(np.random.default_rng(seed).choice(len(paths), size=min(n, len(paths)), replace=False))
    return read_pngs([paths[i] for i in chosen]).astype("float32") / 255.0


def baseline_table_rows(baseline_metrics: dict) -> dict:
    """method -> metrics_csv row of each baseline of a model's metrics.json (pca as pca-<k>)."""
    rows = {}
    for name, values in baseline_metrics.items():
        key = f"pca-{values['k']}" if name == "pca" else name
        rows[key] = {
            "method": key,
            "model": None,
            "latent_dim": values["k"] if name == "pca" else 0,
            **{column: values[column] for column in [*METRICS, "n_cells"]},
        }
    return rows


def model_row(label: str, model_metrics: dict, training: dict, history: pd.DataFrame) -> dict:
    """A model's metrics_csv row: its metrics, training summary and last epoch's losses (final_<loss>)."""
    final = history.iloc[-1]
    return {
        "method": "vae",
        "model": label,
        **model_metrics,
        "parameters": training["parameters"],
        "epochs": training["epochs"],
        "train_seconds": training["seconds"],
        "images_per_second": training["images_per_second"],
        **{f"final_{column}": final[column] for column in FINAL_COLUMNS},
    }


def compare_models(
    labels: list,
    *,
    models: list,
    histories: list,
    summaries: list,
    metrics: list,
    baselines: list,
    manifest_csv,
    metrics_csv,
    reconstructions_png,
    loss_curves_png,
    training_speed_png,
    model_vs_baselines_png,
    n_reconstructions: int,
    seed=0,
) -> pd.DataFrame:
    """metrics_csv (one row per model and per baseline, column method) and the reconstructions, loss-curve,
    training-speed and model-vs-baselines figures across models.

    Per model, in the order of labels (z16, or thesis-z75 with variants): its model.keras, history.csv and
    training.json (train_vae), and its metrics.json and baselines.npz (analyze_model).
    """
    per_model = [models, histories, summaries, metrics, baselines]
    if any(len(files) != len(labels) for files in per_model):
        raise ValueError(
            f"{len(labels)} models but {', '.join(str(len(files)) for files in per_model)} "
            "models, histories, summaries, metrics and baselines files"
        )
    originals = validation_sample(manifest_csv, n_reconstructions, seed)
    rows, baseline_rows, reconstructions, loss_histories = [], {}, {}, {}
    for label, model_path, history_csv, summary_json, metrics_json, baselines_npz in zip(labels, *per_model):
        model_metrics = json.loads(Path(metrics_json).read_text())
        baseline_rows.update(baseline_table_rows(model_metrics.pop("baselines")))
        history = pd.read_csv(history_csv)
        rows.append(model_row(label, model_metrics, json.loads(Path(summary_json).read_text()), history))
        vae = load_vae(model_path)
        reconstructions[f"VAE {label}"] = ops.convert_to_numpy(vae.reconstruct(originals))
        pca = Baselines.load(baselines_npz)
        if f"PCA-{pca.k}" not in reconstructions:
            reconstructions[f"PCA-{pca.k}"] = pca.reconstructors()["pca"](originals)
        loss_histories[label] = history

    table = pd.concat([pd.DataFrame(rows), pd.DataFrame(baseline_rows.values())], ignore_index=True)
    table = table.sort_values(["latent_dim", "method"], key=lambda column: column.map(sort_key)).reset_index(drop=True)
    write_csv(table, metrics_csv)
    save_figure(plot_reconstructions(originals, reconstructions), reconstructions_png)
    save_figure(plot_loss_curves(loss_histories), loss_curves_png)
    save_figure(plot_training_speed(table[table["method"] == "vae"]), training_speed_png)
    save_figure(plot_model_vs_baselines(table), model_vs_baselines_png)
    return table
