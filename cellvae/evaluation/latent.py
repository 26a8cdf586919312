"""The latent space measured, and the VAE against probabilistic PCA as generative models of held-out cells.

- KL: KL(q(z|x) || N(0, I)) in nats, the mean over the evaluated cells, in total (`kl_nats`) and per latent
  dimension (`kl_per_dim`, sorted descending). A dimension that carries no information has KL ~ 0.
- Active units (Burda et al. 2016): the dimensions whose variance over cells of the posterior mean E[z|x] = mu
  exceeds 0.01. (A KS test of mu against N(0, 1) fails informative dimensions by design: for them
  Var(mu) = 1 - E[sigma^2] < 1; it is not used.)
- `nll_per_pixel`: the VAE's held-out negative log-likelihood by the importance-weighted bound (IWAE, Burda et
  al. 2016) with K samples of q(z|x): -log p(x) <= -log (1/K) sum_k p(x|z_k) p(z_k) / q(z_k|x), an upper bound
  that tightens as K grows (K = 1: the negative ELBO). The decoder is the Gaussian N(x_hat(z), sigma^2 I) of the
  model's own loss (cellvae.model.vae.vae_loss) with ONE sigma^2 per model: the mean squared error of its
  reconstructions from z ~ q(z|x) over its training cells (floored at cellvae.model.vae.MIN_VARIANCE). That is the
  maximum-likelihood sigma^2 of the reconstruction term for the trained network, the dataset-wide value of what
  the sigma-VAE loss (`reconstruction_loss: gaussian`) sets per batch (the batch MSE); for a thesis model
  (`mse`: r_loss_factor * MSE, no sigma of its own) the same fit gives it the Gaussian decoder it implies. It is
  fitted on training cells, never on the evaluated ones.
- `ppca_nll_per_pixel`: the exact held-out negative log-likelihood of probabilistic PCA (Tipping & Bishop 1999)
  with k = z components, fitted on the same training cells (cellvae.evaluation.baselines): x ~ N(m, W W^T + sigma^2 I)
  with
  W from the top-k eigenvectors scaled by sqrt(lambda_i - sigma^2) and sigma^2 the mean of the discarded
  eigenvalues, as scikit-learn's PCA.score_samples computes it (its sigma^2 averages the min(N, D) - k discarded
  eigenvalues of the sample covariance, N-1 normalised).

Both NLLs are in nats per pixel value (D = side x side x 3: each channel of a pixel counts once), of continuous
densities over the pixels in [0, 1] as the model sees them (uint8 / 255), on the same cells: comparable with each
other, not with discrete (bits per 8-bit value) likelihoods.
"""

from __future__ import annotations

import math

import numpy as np
from keras import ops

from cellvae.evaluation.baselines import Baselines, sample_cells
from cellvae.model.vae import MIN_VARIANCE

ACTIVE_UNIT_VARIANCE = 0.01  # Burda et al. 2016's threshold on Var_x(E[z|x]), a definition rather than a setting
BATCH_IMAGES = 512  # images through the encoder / decoder per call (cells x samples for the IWAE bound)
SIGMA_MAX_CELLS = 20_000  # training cells sigma^2 is fitted on (a seeded sample beyond that)
LOG_2PI = math.log(2.0 * math.pi)


def unit_range(cells: np.ndarray) -> np.ndarray:
    """uint8 cells as float32 in [0, 1] (floats unchanged)."""
    return cells.astype(np.float32) / 255.0 if cells.dtype == np.uint8 else np.asarray(cells, np.float32)


def posterior(vae, cells: np.ndarray, batch_size: int = BATCH_IMAGES) -> tuple[np.ndarray, np.ndarray]:
    """(mu, log_var) of q(z|x) for every cell, inference mode, as float64 arrays N x z."""
    mus, log_vars = [], []
    for start in range(0, len(cells), batch_size):
        mu, log_var = vae.encode(unit_range(cells[start : start + batch_size]))
        mus.append(ops.convert_to_numpy(mu))
        log_vars.append(ops.convert_to_numpy(log_var))
    return np.concatenate(mus).astype(np.float64), np.concatenate(log_vars).astype(np.float64)


def kl_per_dimension(mu: np.ndarray, log_var: np.ndarray) -> np.ndarray:
    """Mean over cells of KL(N(mu, exp(log_var)) || N(0, 1)) per latent dimension, in nats (length z)."""
    mu, log_var = np.asarray(mu, np.float64), np.asarray(log_var, np.float64)
    return np.mean(0.5 * (np.square(mu) + np.exp(log_var) - 1.0 - log_var), axis=0)


def active_units(mu: np.ndarray, threshold: float = ACTIVE_UNIT_VARIANCE) -> int:
    """The number of latent dimensions whose variance over cells of mu exceeds threshold."""
    return int(np.sum(np.var(np.asarray(mu, np.float64), axis=0) > threshold))


def decoder_variance(vae, train_cells: np.ndarray, seed: int = 0, max_cells: int = SIGMA_MAX_CELLS) -> float:
    """sigma^2 of the Gaussian decoder: the mean squared error, over (a seeded sample of at most max_cells of) the
    training cells, of their reconstructions from one z ~ q(z|x) each; at least MIN_VARIANCE."""
    cells = sample_cells(train_cells, max_cells, seed)
    rng = np.random.default_rng(seed)
    total = 0.0
    for start in range(0, len(cells), BATCH_IMAGES):
        x = unit_range(cells[start : start + BATCH_IMAGES])
        mu, log_var = (ops.convert_to_numpy(t) for t in vae.encode(x))
        z = mu + np.exp(0.5 * log_var) * rng.standard_normal(mu.shape).astype(np.float32)
        x_hat = ops.convert_to_numpy(vae.decode(z.astype(np.float32)))
        total += float(np.sum(np.square(x.astype(np.float64) - x_hat)))
    return max(total / cells.size, MIN_VARIANCE)


def iwae_log_weights(vae, cells: np.ndarray, variance: float, samples: int, seed: int = 0) -> np.ndarray:
    """log p(x|z_k) + log p(z_k) - log q(z_k|x) for K = samples draws z_k ~ q(z|x) per cell (N x K, float64),
    with p(x|z) = N(x_hat(z), variance I) over the D pixel values in [0, 1]."""
    rng = np.random.default_rng(seed)
    per_batch = max(1, BATCH_IMAGES // samples)
    weights = []
    for start in range(0, len(cells), per_batch):
        x = unit_range(cells[start : start + per_batch])
        mu, log_var = (ops.convert_to_numpy(t).astype(np.float64) for t in vae.encode(x))
        epsilon = rng.standard_normal((len(x), samples, mu.shape[1]))
        z = mu[:, None] + np.exp(0.5 * log_var)[:, None] * epsilon  # n x K x z
        x_hat = ops.convert_to_numpy(vae.decode(z.reshape(-1, mu.shape[1]).astype(np.float32)))
        x_hat = x_hat.reshape(len(x), samples, -1).astype(np.float64)
        flat = x.reshape(len(x), 1, -1).astype(np.float64)
        pixels = flat.shape[-1]
        squared_error = np.sum(np.square(flat - x_hat), axis=-1)
        log_likelihood = -0.5 * (squared_error / variance + pixels * (LOG_2PI + math.log(variance)))
        log_prior = -0.5 * np.sum(np.square(z) + LOG_2PI, axis=-1)
        log_posterior = -0.5 * np.sum(np.square(epsilon) + LOG_2PI + log_var[:, None], axis=-1)
        weights.append(log_likelihood + log_prior - log_posterior)
    return np.concatenate(weights)


def iwae_nll(log_weights: np.ndarray) -> np.ndarray:
    """Per cell, the importance-weighted bound on -log p(x): -log mean_k exp(log_weights[:, k])."""
    peak = log_weights.max(axis=1, keepdims=True)
    return -(peak[:, 0] + np.log(np.mean(np.exp(log_weights - peak), axis=1)))


def ppca_log_likelihood(flat, mean, components, eigenvalues, noise_variance) -> np.ndarray:
    """log N(x | mean, W W^T + noise_variance I) per row of flat (N x D), W = components^T diag(sqrt(eigenvalues -
    noise_variance)) (components: k orthonormal rows): scikit-learn's PCA.score_samples, by the matrix
    determinant lemma and Woodbury identity (no D x D matrix)."""
    flat = np.asarray(flat, np.float64) - np.asarray(mean, np.float64)
    components = np.asarray(components, np.float64)
    eigenvalues = np.maximum(np.asarray(eigenvalues, np.float64), noise_variance)
    codes = flat @ components.T
    shrink = (eigenvalues - noise_variance) / eigenvalues
    mahalanobis = (np.sum(np.square(flat), axis=1) - np.sum(shrink * np.square(codes), axis=1)) / noise_variance
    dimension = flat.shape[1]
    log_det = np.sum(np.log(eigenvalues)) + (dimension - len(eigenvalues)) * math.log(noise_variance)
    return -0.5 * (dimension * LOG_2PI + log_det + mahalanobis)


def ppca_nll_per_cell(baselines: Baselines, cells: np.ndarray, batch_size: int = BATCH_IMAGES) -> np.ndarray:
    """Probabilistic PCA's -log p(x) of each cell; a one-line ValueError where the baselines lack the eigenvalues
    (a file of an older version) or the PCA kept every direction (no noise variance)."""
    if baselines.pca_explained_variance is None:
        raise ValueError("the baselines predate probabilistic PCA (no eigenvalues stored): refit them")
    if not baselines.pca_noise_variance > 0:
        raise ValueError(f"PCA-{baselines.k} kept every direction of its training cells: no noise variance")
    parts = []
    for start in range(0, len(cells), batch_size):
        flat = unit_range(cells[start : start + batch_size]).reshape(-1, baselines.pca_mean.size)
        parts.append(
            -ppca_log_likelihood(
                flat,
                baselines.pca_mean,
                baselines.pca_components,
                baselines.pca_explained_variance,
                baselines.pca_noise_variance,
            )
        )
    return np.concatenate(parts)


def ppca_nll_per_pixel(baselines: Baselines, cells: np.ndarray, batch_size: int = BATCH_IMAGES) -> float:
    """Mean over cells of probabilistic PCA's -log p(x), per pixel value (ppca_nll_per_cell)."""
    return float(ppca_nll_per_cell(baselines, cells, batch_size).mean() / baselines.pca_mean.size)


def vae_nll_per_cell(vae, cells: np.ndarray, train_cells: np.ndarray, samples: int, seed: int = 0):
    """(the IWAE bound on each cell's -log p(x), K = samples; the decoder's sigma^2, fitted on train_cells)."""
    variance = decoder_variance(vae, train_cells, seed)
    return iwae_nll(iwae_log_weights(vae, cells, variance, samples, seed)), variance


def latent_section(vae, cells, train_cells, baselines: Baselines | None, samples: int, seed: int = 0) -> dict:
    """The latent section of a model's evaluation on cells (uint8 or [0, 1] floats): kl_nats, kl_per_dim,
    active_units, nll_per_pixel (IWAE, K = samples, sigma^2 fitted on train_cells) and ppca_nll_per_pixel (the
    baselines' probabilistic PCA); an unavailable figure is null, with a `notes` entry saying why."""
    mu, log_var = posterior(vae, cells)
    kl = kl_per_dimension(mu, log_var)
    section = {
        "kl_nats": float(kl.sum()),
        "kl_per_dim": sorted(kl.tolist(), reverse=True),
        "active_units": active_units(mu),
        "nll_per_pixel": None,
        "ppca_nll_per_pixel": None,
        "iwae_samples": samples,
        "decoder_variance": None,
        "n_cells": len(cells),
    }
    notes = []
    if train_cells is None or not len(train_cells):
        notes.append("nll_per_pixel: no training cells to fit the decoder's sigma^2 on")
    else:
        nll, variance = vae_nll_per_cell(vae, cells, train_cells, samples, seed)
        pixels = math.prod(cells.shape[1:])
        section.update(decoder_variance=variance, nll_per_pixel=float(nll.mean() / pixels))
    if baselines is None:
        notes.append("ppca_nll_per_pixel: no baselines")
    else:
        try:
            section["ppca_nll_per_pixel"] = ppca_nll_per_pixel(baselines, cells)
        except ValueError as error:
            notes.append(f"ppca_nll_per_pixel: {error}")
    return {**section, **({"notes": notes} if notes else {})}
