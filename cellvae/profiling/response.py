"""Cellular response profiles from a trained VAE: every profiled cell encoded to its posterior mean mu,
aggregated into wells and treatments, scored for MoA (cellvae.profiling.moa) and for separation from DMSO
(cellvae.profiling.separation); plus latent traversals, interpolations and a 2-D embedding.

Keras is imported only by the functions that run a model, so the summary across models starts fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from cellvae.core.files import atomic_write, read_pngs, save_figure, write_csv
from cellvae.data.metadata import CONTROL
from cellvae.evaluation.baselines import Baselines
from cellvae.imaging.orientations import orientation_mean
from cellvae.profiling import moa
from cellvae.profiling.field_format import to_field_format
from cellvae.profiling.response_baselines import pixel_baselines, score_baselines, untrained_copy
from cellvae.profiling.separation import separation_table

CELL_COLUMNS = ["path", "plate", "well", "site", "label", "compound", "concentration", "moa", "batch", "split"]


def profiled_cells(png_manifests: list, selected_csv, dataset_manifest=None) -> pd.DataFrame:
    """PNG cells of the fields selected for profiling, with their treatment, MoA, batch (week) and, from the
    dataset manifest, split: train (the model saw the cell), validation (held out), none (not in the dataset)
    or unknown (no dataset manifest given)."""
    cells = pd.concat([pd.read_csv(path) for path in png_manifests], ignore_index=True)
    fields = pd.read_csv(selected_csv)
    if "response" not in fields:
        raise ValueError(f"{selected_csv} has no response column: rerun select_images with response.enabled")
    fields = fields[fields["response"]].rename(columns={"week": "batch"})
    cells = cells.merge(
        fields[["plate", "well", "site", "compound", "concentration", "moa", "batch"]],
        on=["plate", "well", "site"],
        how="inner",
        validate="many_to_one",
    )
    if cells.empty or not (cells["compound"] == CONTROL).any() or (cells["compound"] == CONTROL).all():
        raise ValueError(
            f"no cells of both {CONTROL} and a treatment among the profiled fields of "
            f"{selected_csv}: check the segmentation logs and profile.* config keys"
        )
    if dataset_manifest:
        split = pd.read_csv(dataset_manifest, usecols=["path", "split"])
        cells = cells.merge(split, on="path", how="left", validate="one_to_one").fillna({"split": "none"})
    else:
        cells["split"] = "unknown"
    return cells[CELL_COLUMNS].sort_values(["plate", "well", "site", "label"]).reset_index(drop=True)


def encode_images(vae, images: np.ndarray, batch_size: int = 256, orientations: int = 1) -> np.ndarray:
    """Posterior means of uint8 images (N, S, S, 3); orientations 8: each the mean over the image's 8
    flips/rotations (cellvae.imaging.orientations)."""
    from keras import ops

    def posterior_means(batch: np.ndarray) -> np.ndarray:
        return np.concatenate(
            [
                ops.convert_to_numpy(vae.encode(batch[start : start + batch_size].astype("float32") / 255.0)[0])
                for start in range(0, len(batch), batch_size)
            ]
        )

    return np.concatenate(
        [
            orientation_mean(posterior_means, images[start : start + batch_size], orientations)
            for start in range(0, len(images), batch_size)
        ]
    ).astype(np.float64)


def encode_paths(vae, paths: list, batch_size: int = 256, orientations: int = 1) -> np.ndarray:
    """Posterior means of PNG cells, loaded and encoded chunk by chunk (bounded memory)."""
    return np.concatenate(
        [
            encode_images(vae, read_pngs(paths[start : start + batch_size]), batch_size, orientations)
            for start in range(0, len(paths), batch_size)
        ]
    )


def well_profiles(cells: pd.DataFrame, mu: np.ndarray) -> pd.DataFrame:
    """Mean latent vector per (plate, well) with its metadata and cell count; features z0, z1, …"""
    features = pd.DataFrame(mu, columns=[f"z{i}" for i in range(mu.shape[1])])
    keys = ["plate", "well", "compound", "concentration", "moa", "batch"]
    table = pd.concat([cells[keys].fillna({"moa": CONTROL}), features], axis=1)
    grouped = table.groupby(keys, sort=True)
    return grouped.mean().join(grouped.size().rename("n_cells")).reset_index()


def pca_2d(mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First two principal components of mu and their fractions of the variance."""
    centred = mu - mu.mean(axis=0)
    _, singular, axes = np.linalg.svd(centred, full_matrices=False)
    return centred @ axes[:2].T, singular[:2] ** 2 / np.sum(singular**2)


def plot_embedding(cells: pd.DataFrame, mu: np.ndarray, max_points: int, seed: int):
    """PCA of the latent means, one colour per compound (DMSO grey, drawn first)."""
    points, explained = pca_2d(mu)
    keep = np.random.default_rng(seed).permutation(len(mu))[:max_points]
    figure = Figure(figsize=(7, 6))
    ax = figure.subplots()
    compounds = [CONTROL] + sorted(set(cells["compound"]) - {CONTROL})
    for index, compound in enumerate(compounds):
        chosen = keep[(cells["compound"].to_numpy()[keep] == compound)]
        ax.scatter(
            *points[chosen].T, s=6, alpha=0.5, label=compound, color="0.6" if compound == CONTROL else f"C{index % 10}"
        )
    ax.set_xlabel(f"PC1 ({explained[0]:.0%} of variance)")
    ax.set_ylabel(f"PC2 ({explained[1]:.0%} of variance)")
    ax.set_title(f"Latent means of {len(keep)} profiled cells (z = {mu.shape[1]})")
    ax.legend(fontsize=7, markerscale=2, ncol=1 + len(compounds) // 20)
    figure.tight_layout()
    return figure


def _grid(rows: list, row_labels: list, column_labels: list, title: str):
    figure = Figure(figsize=(1.3 * len(rows[0]) + 1.2, 1.3 * len(rows) + 0.8))
    axes = figure.subplots(len(rows), len(rows[0]), squeeze=False)
    for r, (images, label) in enumerate(zip(rows, row_labels)):
        for c, image in enumerate(images):
            axes[r, c].imshow(np.clip(image, 0, 1))
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
            if r == len(rows) - 1:
                axes[r, c].set_xlabel(column_labels[c], fontsize=8)
        axes[r, 0].set_ylabel(label, fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def plot_traversals(vae, cells, mu, n_dims: int, steps: int, extent: float):
    """Decode a typical DMSO cell with one latent dimension at a time moved by -extent…+extent of its spread,
    for the n_dims dimensions that vary most over the profiled cells."""
    from keras import ops

    control = np.flatnonzero(cells["compound"] == CONTROL)
    start = control[np.argmin(np.linalg.norm(mu[control] - mu[control].mean(axis=0), axis=1))]
    spread = mu.std(axis=0)
    dims = np.argsort(spread)[::-1][:n_dims]
    offsets = np.linspace(-extent, extent, steps)
    rows = []
    for dim in dims:
        z = np.repeat(mu[start][None], steps, axis=0)
        z[:, dim] += offsets * spread[dim]
        rows.append(ops.convert_to_numpy(vae.decode(z.astype("float32"))))
    return _grid(
        rows,
        [f"z{dim}" for dim in dims],
        [f"{offset:+.1f} sd" for offset in offsets],
        f"Latent traversals around a typical {CONTROL} cell (z = {mu.shape[1]})",
    )


def plot_interpolations(vae, cells, mu, steps: int, n_rows: int):
    """Decode straight lines in latent space from a typical DMSO cell to a typical cell of each treatment
    (the cells nearest their groups' mean latent vectors), originals at both ends."""
    from keras import ops

    def typical(mask):
        index = np.flatnonzero(mask)
        return index[np.argmin(np.linalg.norm(mu[index] - mu[index].mean(axis=0), axis=1))]

    start = typical(cells["compound"] == CONTROL)
    treated = cells[cells["compound"] != CONTROL].groupby(["compound", "concentration"]).size()
    ends = [
        (name, typical((cells["compound"] == name[0]) & (cells["concentration"] == name[1])))
        for name in treated.sort_values(ascending=False).index[:n_rows]
    ]
    weights = np.linspace(0, 1, steps)[:, None]
    rows = []
    for _, end in ends:
        z = (1 - weights) * mu[start] + weights * mu[end]
        decoded = ops.convert_to_numpy(vae.decode(z.astype("float32")))
        originals = read_pngs([cells["path"][start], cells["path"][end]]).astype("float32") / 255.0
        rows.append([originals[0], *decoded, originals[1]])
    labels = ["original"] + [f"{w:.2f}" for w in weights[:, 0]] + ["original"]
    return _grid(
        rows,
        [f"→ {c} @ {x:g}" for (c, x), _ in ends],
        labels,
        f"Interpolations from a typical {CONTROL} cell (z = {mu.shape[1]})",
    )


def plot_confusion(result: dict):
    """MoA confusion matrix of the NSC nearest neighbours, or the reason NSC is undefined."""
    figure = Figure(figsize=(8, 7))
    ax = figure.subplots()
    if result["nsc"]["value"] is None:
        ax.axis("off")
        ax.text(0.5, 0.5, f"NSC undefined:\n{result['nsc_undefined']}", ha="center", va="center", wrap=True)
        return figure
    pairs = [(m["moa"], m["nsc_match_moa"]) for m in result["matches"] if m["nsc_match_moa"] is not None]
    labels = sorted({moa_name for pair in pairs for moa_name in pair})
    counts = np.zeros((len(labels), len(labels)), int)
    for true, predicted in pairs:
        counts[labels.index(true), labels.index(predicted)] += 1
    ax.imshow(counts, cmap="Blues")
    for (r, c), count in np.ndenumerate(counts):
        if count:
            ax.text(c, r, count, ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("MoA of the nearest other compound")
    ax.set_ylabel("true MoA")
    low, high = result["nsc"]["ci"]
    ax.set_title(f"NSC {result['nsc']['value']:.1%} [{low:.0%}, {high:.0%}] over {result['n_treatments']} treatments")
    figure.tight_layout()
    return figure


def response_profiles(
    model_path,
    png_manifests: list,
    selected_csv,
    settings: dict,
    *,
    cells_csv,
    wells_csv,
    moa_json,
    separation_csv,
    baselines_npz,
    confusion_png,
    embedding_png,
    traversals_png,
    interpolations_png,
    dataset_manifest=None,
    log=print,
) -> dict:
    """One trained model's profiled cells with their latent means (cells_csv, gzip by its name), well profiles
    (wells_csv; both in the field's format: Metadata_* columns, z0 … unprefixed, cellvae.profiling.field_format),
    MoA scores (moa_json; under "baselines" those of PCA-k from baselines_npz, a thumbnail, classic
    features and an untrained encoder on the same cells: cellvae.profiling.response_baselines), separation from DMSO
    (separation_csv) and four figures.

    settings: normalize, aggregate, min_controls, bootstrap, batch_size, orientations, cv_folds, max_cells_per_class,
    embedding_points, traversal_dims, traversal_steps, traversal_extent, interpolation_steps, interpolation_rows, seed.
    """
    from cellvae.model.vae import load_vae

    vae = load_vae(model_path)
    cells = profiled_cells(png_manifests, selected_csv, dataset_manifest)
    log(f"z={vae.latent_dim}: encoding {len(cells)} cells of {cells['compound'].nunique()} compounds")
    mu = encode_paths(vae, cells["path"].tolist(), settings["batch_size"], settings["orientations"])
    latent = [f"z{i}" for i in range(mu.shape[1])]
    write_csv(to_field_format(pd.concat([cells, pd.DataFrame(mu, columns=latent)], axis=1)), cells_csv)
    write_csv(to_field_format(well_profiles(cells, mu)), wells_csv)  # Metadata_Plate, …, z0, …: the field's format

    result = moa.evaluate_rows(pd.concat([cells, pd.DataFrame(mu, columns=latent)], axis=1), latent, settings, True)
    result["latent_dim"] = vae.latent_dim
    paths, batch_size, orientations = cells["path"].tolist(), settings["batch_size"], settings["orientations"]
    baseline_features = pixel_baselines(Baselines.load(baselines_npz), paths, batch_size, orientations)
    untrained = untrained_copy(vae, settings["seed"] + 1)
    baseline_features["untrained encoder"] = encode_paths(untrained, paths, batch_size, orientations)
    result["baselines"] = score_baselines(cells, baseline_features, settings)
    atomic_write(moa_json, lambda path: path.write_text(json.dumps(result, indent=2) + "\n"))
    log(
        f"z={vae.latent_dim}: "
        + ", ".join(f"{key.upper()} {result[key]['value']} {result[key]['ci']}" for key in ("nsc", "nscb", "map"))
        + f" over {result['n_treatments']} treatments"
        + (f" ({result['nsc_undefined']})" if result["nsc"]["value"] is None else "")
    )
    separation = separation_table(cells, mu, settings["cv_folds"], settings["max_cells_per_class"], settings["seed"])
    write_csv(separation.assign(latent_dim=vae.latent_dim), separation_csv)
    log(separation.to_string(index=False))

    save_figure(plot_confusion(result), confusion_png)
    save_figure(plot_embedding(cells, mu, settings["embedding_points"], settings["seed"]), embedding_png)
    save_figure(
        plot_traversals(
            vae, cells, mu, settings["traversal_dims"], settings["traversal_steps"], settings["traversal_extent"]
        ),
        traversals_png,
    )
    save_figure(
        plot_interpolations(vae, cells, mu, settings["interpolation_steps"], settings["interpolation_rows"]),
        interpolations_png,
    )
    return result


def _scores(result: dict) -> dict:
    """nsc, nsc_low, nsc_high, nscb, … map_high: the values and 95% intervals of one moa.json entry."""
    return {
        f"{key}{suffix}": value
        for key in ("nsc", "nscb", "map")
        for suffix, value in zip(("", "_low", "_high"), (result[key]["value"], *result[key]["ci"]))
    }


def compare_responses(models: list, *, moa_jsons: list, separation_csvs: list, table_csv) -> pd.DataFrame:
    """Per model (z16, or thesis-z75 with variants; each with its moa.json and separation.csv of
    response_profiles) one row of its mu (method "VAE mu": NSC, NSCB, mAP with intervals, empty where undefined,
    and the separation from DMSO: mean and least accuracy, mean Mahalanobis distance and mean within-well DMSO
    null of cellvae.profiling.separation), then one row per baseline scored on the same cells."""
    if not len(models) == len(moa_jsons) == len(separation_csvs):
        raise ValueError(
            f"{len(models)} models but {len(moa_jsons)} moa.json and {len(separation_csvs)} separation.csv files"
        )
    rows = []
    for model, moa_json, separation_csv in zip(models, moa_jsons, separation_csvs):
        result = json.loads(Path(moa_json).read_text())
        separation = pd.read_csv(separation_csv)
        if "mahalanobis_to_dmso" not in separation:
            raise ValueError(f"{separation_csv} has no mahalanobis_to_dmso column (an older run): rerun its profiles")
        common = {"model": model, "latent_dim": result["latent_dim"]}
        counts = {"n_treatments": result["n_treatments"], "n_moas": result["n_moas"]}
        rows.append(
            {
                **common,
                "method": "VAE mu",
                **_scores(result),
                **counts,
                "mean_accuracy_vs_dmso": separation["accuracy"].mean(),
                "min_accuracy_vs_dmso": separation["accuracy"].min(),
                "mean_mahalanobis_to_dmso": separation["mahalanobis_to_dmso"].mean(),
                "mean_dmso_null": separation["dmso_null"].mean(),
                "nsc_note": result.get("nsc_undefined", ""),
            }
        )
        rows += [
            {**common, "method": name, **_scores(scores), **counts} for name, scores in result["baselines"].items()
        ]
    table = pd.DataFrame(rows).sort_values(["latent_dim", "model"], kind="stable")
    write_csv(table, table_csv)
    return table
