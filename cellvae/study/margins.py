"""Honest margins of a reconstruction comparison: a fair PCA, the error inside the cell, intervals over fields.

- centre_cell / centre_cell_masks: the centre cell of each raw window
(cellvae.profiling.cell_features.segment_centre_cell),
  composed onto the model's canvas exactly as the window (cellvae.imaging.images.compose_arrays), for a centre-cell MSE
  (mse_cell); masked_crop: the window masked to that cell and cut to its bounding box (the product's crops).
- cell_errors / pca_errors: per-cell squared errors (whole window and inside the centre cell) of a reconstruction,
  clipped to [0, 1] like cellvae.evaluation.metrics; for PCA with its first k components, for a grid of k from one fit.
- pca_equivalent_k: the k at which PCA-k's held-out MSE equals a model's (interpolated on the grid).
- field_bootstrap: a paired bootstrap over fields (plate + well + site) of the ratio of two methods' summed errors
  on the same cells: cells of one field share its illumination, density and focus, so fields, not cells, are
  the independent units.
- versus_pca / pca_measures: a model's seeds against PCA-k on the same cells (paired_comparison), the PCA-equivalent
  k and the trivial baseline (the mean image, PCA-0) beside it.
- latent_comparison: a model's latent space on held-out cells (KL, active units) and its IWAE NLL against
  probabilistic PCA-k's on the same cells, with a field-bootstrap interval of the difference; latent_table.
"""

from __future__ import annotations

import numpy as np

from cellvae.imaging.images import compose_arrays
from cellvae.profiling.cell_features import segment_centre_cell

MASK_RANGES = np.array([[0.0, 1.0]] * 3)  # a 0/1 mask composed like a window: 0 -> 0, 1 -> 255


def centre_cell(raw_rgb: np.ndarray) -> np.ndarray:
    """The centre cell's mask of a raw window in RGB order (Tubulin, Actin, DAPI), by
    cellvae.profiling.cell_features.segment_centre_cell (which takes DAPI, Tubulin, Actin)."""
    return segment_centre_cell(np.asarray(raw_rgb)[..., [2, 0, 1]])[1]


def masked_crop(raw_rgb: np.ndarray, cell: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the window with the pixels outside cell set to 0, cut to the cell's bounding box; the mask cut alike):
    the product's masked crop of a cell."""
    rows, cols = np.flatnonzero(cell.any(axis=1)), np.flatnonzero(cell.any(axis=0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    return np.where(cell[..., None], raw_rgb, 0).astype(raw_rgb.dtype)[box], cell[box]


def centre_cell_masks(segmented, size: int, scale: float | None = None) -> np.ndarray:
    """N×size×size booleans: the centre-cell masks (centre_cell) of raw windows, resized and padded as
    compose_arrays composes the windows (scale: its common factor, None: each fills the canvas)."""
    stacks = [np.repeat(np.asarray(cell)[..., None].astype(np.float64), 3, axis=-1) for cell in segmented]
    composed, _ = compose_arrays(stacks, size, None, scale=scale, ranges=MASK_RANGES)
    return composed[..., 0] >= 128


def cell_errors(cells: np.ndarray, reconstructions: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(per-cell mean squared error over the window, per-cell sum of squared errors inside the mask) of uint8
    cells N×S×S×3 against reconstructions in [0, 1] (clipped, as cellvae.evaluation.metrics)."""
    x = np.asarray(cells, np.float64) / 255.0
    difference = np.square(x - np.clip(np.asarray(reconstructions, np.float64), 0.0, 1.0))
    return difference.mean(axis=(1, 2, 3)), (difference * np.asarray(masks)[..., None]).sum(axis=(1, 2, 3))


def model_errors(cells, reconstruct, masks, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """cell_errors of reconstruct(float32 cells in [0, 1]), batch by batch."""
    parts = [
        cell_errors(
            cells[start : start + batch_size],
            np.asarray(reconstruct(cells[start : start + batch_size].astype(np.float32) / 255.0)),
            masks[start : start + batch_size],
        )
        for start in range(0, len(cells), batch_size)
    ]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def pca_errors(pca_mean, components, cells, masks, ks, batch_size: int = 256) -> dict:
    """k -> cell_errors of PCA with its first k components (components: K×D rows, orthonormal, first the
    largest), for every k in ks (at most K; 0: the mean image)."""
    mean = np.asarray(pca_mean, np.float64).ravel()
    components = np.asarray(components, np.float64)
    if max(ks) > len(components):
        raise ValueError(f"PCA-k for k up to {max(ks)} asked of a PCA of {len(components)} components")
    window = {k: [] for k in ks}
    inside = {k: [] for k in ks}
    for start in range(0, len(cells), batch_size):
        batch = cells[start : start + batch_size]
        centred = batch.reshape(len(batch), -1).astype(np.float64) / 255.0 - mean
        codes = centred @ components.T
        for k in ks:
            reconstructions = (mean + codes[:, :k] @ components[:k]).reshape(batch.shape)
            errors = cell_errors(batch, reconstructions, masks[start : start + batch_size])
            window[k].append(errors[0])
            inside[k].append(errors[1])
    return {k: (np.concatenate(window[k]), np.concatenate(inside[k])) for k in ks}


def pca_equivalent_k(ks, mses, target: float) -> float:
    """The k at which PCA-k's MSE (mses, one per k of ks) equals target, interpolated linearly in log MSE between
    the grid's neighbours; inf when target is below the largest k's MSE, the smallest k (0: PCA-0, the mean image,
    when the grid holds it) when above its."""
    ks, mses = np.asarray(ks, np.float64), np.asarray(mses, np.float64)
    order = np.argsort(ks)
    ks, logs = ks[order], np.log(np.minimum.accumulate(mses[order]))  # MSE falls with k; ties kept monotone
    log_target = np.log(target)
    if log_target < logs[-1]:
        return float("inf")
    if log_target >= logs[0]:
        return float(ks[0])
    above = int(np.flatnonzero(logs > log_target)[-1])  # the last k whose MSE is above target
    if logs[above + 1] == logs[above]:
        return float(ks[above + 1])
    fraction = (logs[above] - log_target) / (logs[above] - logs[above + 1])
    return float(ks[above] + fraction * (ks[above + 1] - ks[above]))


def field_bootstrap(fields, numerator, denominator, n_boot: int = 2000, seed: int = 0, level: float = 0.95):
    """(ratio, low, high): sum(numerator) / sum(denominator) over the cells, and its percentile interval at level
    from n_boot resamplings of the fields with replacement (a resampled field brings all its cells, for both
    methods: paired). numerator, denominator: per-cell errors of two methods on the same cells."""
    labels, index = np.unique(np.asarray(fields), return_inverse=True)
    top = np.bincount(index, weights=np.asarray(numerator, np.float64), minlength=len(labels))
    bottom = np.bincount(index, weights=np.asarray(denominator, np.float64), minlength=len(labels))
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(labels), size=(n_boot, len(labels)))
    counts = np.zeros((n_boot, len(labels)))
    np.add.at(counts, (np.arange(n_boot)[:, None], draws), 1.0)
    ratios = (counts @ top) / (counts @ bottom)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(ratios, [tail, 100 - tail])
    return float(top.sum() / bottom.sum()), float(low), float(high)


def replace_section(path, heading: str, text: str) -> None:
    """Put text (starting with heading, a markdown "## " line) in place of the file's section of that heading
    (up to the next "## " heading), or append it."""
    lines = path.read_text().splitlines() if path.is_file() else []
    start = next((i for i, line in enumerate(lines) if line.strip() == heading), None)
    if start is None:
        kept_before, kept_after = lines, []
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        kept_before, kept_after = lines[:start], lines[end:]
    body = text.rstrip("\n").splitlines()
    spacer = [""] if kept_before and kept_before[-1].strip() else []
    after = ([""] + kept_after) if kept_after else []
    path.write_text("\n".join(kept_before + spacer + body + after) + "\n")


def paired_comparison(fields, pixels, vae_window, pca_window, vae_cell, pca_cell, n_boot: int = 2000) -> dict:
    """A model against PCA on the same cells: mse (per cell, then the mean) and mse_cell (the centre cells'
    pixels pooled, as cellvae.evaluation.metrics; pixels: per cell, the values inside its mask), the VAE/PCA ratios of
    both
    and their paired field-bootstrap intervals (field_bootstrap)."""
    ratio = field_bootstrap(fields, vae_window, pca_window, n_boot)
    ratio_cell = field_bootstrap(fields, vae_cell, pca_cell, n_boot)  # the same masks: the pooled MSEs' ratio
    return {
        "n_cells": len(fields),
        "n_fields": len(set(fields)),
        "vae_mse": float(np.mean(vae_window)),
        "pca_mse": float(np.mean(pca_window)),
        "ratio": ratio[0],
        "ratio_low": ratio[1],
        "ratio_high": ratio[2],
        "vae_mse_cell": float(np.sum(vae_cell) / np.sum(pixels)),
        "pca_mse_cell": float(np.sum(pca_cell) / np.sum(pixels)),
        "ratio_cell": ratio_cell[0],
        "ratio_cell_low": ratio_cell[1],
        "ratio_cell_high": ratio_cell[2],
    }


def markdown_table(rows, flagged=()) -> list[str]:
    """Lines of a markdown table of paired_comparison rows (with model, latent_dim, plate and, per fold,
    k_equivalent and k_equivalent_cell); plates in flagged get a star."""
    lines = [
        "| model | held-out plate | cells | fields | VAE mse | PCA mse | ratio [95%] | VAE mse_cell | PCA mse_cell "
        "| ratio_cell [95%] | k equiv. (mse / mse_cell) |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|---|---|",
    ]
    for row in rows.to_dict("records"):
        k = row.get("k_equivalent", np.nan), row.get("k_equivalent_cell", np.nan)
        above = f"> {row.get('k_max', 'all')}"  # the VAE beats PCA with every component fitted
        equivalent = " / ".join("-" if np.isnan(v) else above if np.isinf(v) else f"{v:.0f}" for v in k)
        star = "\\*" if row["plate"] in flagged else ""
        lines.append(
            f"| {row['model']}-z{row['latent_dim']} | {row['plate']}{star} "
            f"| {row['n_cells']} | {row['n_fields']} | {row['vae_mse']:.5f} | {row['pca_mse']:.5f} "
            f"| {row['ratio']:.3f} [{row['ratio_low']:.3f}, {row['ratio_high']:.3f}] "
            f"| {row['vae_mse_cell']:.5f} | {row['pca_mse_cell']:.5f} "
            f"| {row['ratio_cell']:.3f} [{row['ratio_cell_low']:.3f}, {row['ratio_cell_high']:.3f}] | {equivalent} |"
        )
    return lines


def latent_comparison(vae, train_cells, test_cells, fields, samples: int, n_boot: int = 2000) -> dict:
    """cellvae.evaluation.latent on held-out cells: kl_nats (mean over cells, summed over dimensions), active_units,
    and the
    negative log-likelihood per pixel value of the VAE (IWAE bound, K = samples, sigma^2 fitted on train_cells) and
    of probabilistic PCA with k = z fitted on the same train_cells; nll_gap = VAE - PPCA (negative: the VAE is the
    better density of these cells) with its paired bootstrap interval over fields."""
    from cellvae.evaluation.baselines import Baselines
    from cellvae.evaluation.latent import active_units, kl_per_dimension, posterior, ppca_nll_per_cell, vae_nll_per_cell

    mu, log_var = posterior(vae, test_cells)
    pixels = float(np.prod(test_cells.shape[1:]))
    vae_nll = vae_nll_per_cell(vae, test_cells, train_cells, samples)[0] / pixels
    ppca_nll = ppca_nll_per_cell(Baselines.fit(train_cells, vae.latent_dim), test_cells) / pixels
    gap = field_bootstrap(fields, vae_nll - ppca_nll, np.ones(len(vae_nll)), n_boot)  # mean over cells
    return {
        "kl_nats": float(kl_per_dimension(mu, log_var).sum()),
        "active_units": active_units(mu),
        "nll_per_pixel": float(vae_nll.mean()),
        "ppca_nll_per_pixel": float(ppca_nll.mean()),
        "nll_gap": gap[0],
        "nll_gap_low": gap[1],
        "nll_gap_high": gap[2],
    }


def latent_table(rows, samples: int) -> list[str]:
    """Lines of a markdown table of the latent_comparison figures of paired_comparison rows (per fold), with the
    paragraph that says what they are."""
    lines = [
        "The latent space of each fold's first-seed model on its held-out cells (cellvae.evaluation.latent): KL to the "
        "prior in "
        "nats (summed over dimensions, mean over cells), active units (Var over cells of E[z|x] > 0.01), and the "
        f"negative log-likelihood per pixel value of the VAE (importance-weighted bound, K = {samples}) and of "
        "probabilistic PCA-k (k = z) fitted on the same training cells; gap = VAE - PPCA with a 95% paired bootstrap "
        "interval over fields (negative: the VAE is the better density of these cells).",
        "",
        "| model | held-out plate | KL (nats) | active units | NLL/pixel VAE | NLL/pixel PPCA | gap [95%] |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for row in rows.to_dict("records"):
        if row["plate"] == "all":
            continue
        lines.append(
            f"| {row['model']}-z{row['latent_dim']} | {row['plate']} | {row['kl_nats']:.0f} "
            f"| {row['active_units']:.0f} | {row['nll_per_pixel']:.3f} | {row['ppca_nll_per_pixel']:.3f} "
            f"| {row['nll_gap']:.3f} [{row['nll_gap_low']:.3f}, {row['nll_gap_high']:.3f}] |"
        )
    return lines


def versus_pca(
    vaes: list, pca: tuple, cells: np.ndarray, masks: np.ndarray, fields, pixels, n_boot
) -> tuple[dict, tuple]:
    """(paired_comparison of the seeds' mean error per cell against PCA's errors (window, cell) on the same cells
    and the seeds' sd of the whole-window ratio, the measured arrays it compared)."""
    errors = [model_errors(cells, lambda x, vae=vae: np.asarray(vae.reconstruct(x)), masks) for vae in vaes]
    vae_window, vae_cell = (np.mean([e[i] for e in errors], axis=0) for i in (0, 1))
    measured = (fields, pixels, vae_window, pca[0], vae_cell, pca[1])
    ratios = [e[0].sum() / pca[0].sum() for e in errors]
    spread = float(np.std(ratios, ddof=1)) if len(ratios) > 1 else 0.0
    return {**paired_comparison(*measured, n_boot), "ratio_seed_sd": spread}, measured


def pca_measures(curve: dict, measured: tuple) -> dict:
    """Beside a paired comparison (its measured arrays): the largest k, the PCA-equivalent k over the window and
    inside the cell, and the trivial baseline: the mean training image's (PCA-0's) mse and mse_cell."""
    pixels, vae_window, vae_cell = measured[1], measured[2], measured[4]
    return {
        "k_max": max(curve),
        "mean_image_mse": float(curve[0][0].mean()),
        "mean_image_mse_cell": float(curve[0][1].sum() / pixels.sum()),
        "k_equivalent": pca_equivalent_k(list(curve), [curve[k][0].mean() for k in curve], vae_window.mean()),
        "k_equivalent_cell": pca_equivalent_k(list(curve), [curve[k][1].sum() for k in curve], vae_cell.sum()),
    }
