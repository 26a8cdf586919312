"""Reconstructions that involve no learnt encoder, to stand beside every model's figures.

zero (an all-black image), mean and median (the training cells' pixel-wise mean and median image), and
pca (scikit-learn PCA with k components fitted on the training cells: the best linear k-dimensional code;
IncrementalPCA in batches when the cells would not fit the memory budget). A model that does not beat PCA-k
with k = its latent dimension has learnt nothing a linear projection would not. The PCA's eigenvalues
(explained_variance_) and noise variance (noise_variance_) are kept too: with the components they are
probabilistic PCA (Tipping & Bishop 1999), the generative baseline of cellvae.evaluation.latent.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from cellvae.core.files import atomic_write


def sample_cells(cells: np.ndarray, max_cells: int, seed: int = 0) -> np.ndarray:
    """At most max_cells of the cells (a seeded sample, in order)."""
    if len(cells) <= max_cells:
        return np.asarray(cells)
    chosen = np.sort(np.random.default_rng(seed).choice(len(cells), max_cells, replace=False))
    return np.asarray(cells[chosen])


def fit_pca(cells: np.ndarray, k: int, memory_bytes: int, seed: int = 0):
    """PCA (or IncrementalPCA when N×D float32 exceeds memory_bytes) of uint8 cells scaled to [0, 1];
    k is capped at min(N, D)."""
    from sklearn.decomposition import PCA, IncrementalPCA  # here: `cellvae <command>` answers usage errors at once

    n, dimension = len(cells), int(np.prod(cells.shape[1:]))
    k = min(k, n, dimension)
    if n * dimension * 4 <= memory_bytes:
        flat = cells.reshape(n, -1).astype(np.float32) / 255.0
        return PCA(n_components=k, random_state=seed).fit(flat)
    batch = max(k, memory_bytes // (dimension * 4 * 4))
    pca = IncrementalPCA(n_components=k, batch_size=batch)
    for start in range(0, n, batch):
        chunk = cells[start : start + batch]
        if len(chunk) >= k:
            pca.partial_fit(chunk.reshape(len(chunk), -1).astype(np.float32) / 255.0)
    return pca


class Baselines:
    """The fitted baselines of one training set: mean and median images and a PCA of k components."""

    def __init__(
        self,
        mean_image,
        median_image,
        pca_mean,
        pca_components,
        latent_dim=None,
        run_id=None,
        pca_explained_variance=None,
        pca_noise_variance=None,
    ):
        self.mean_image = np.asarray(mean_image, np.float32)
        self.median_image = np.asarray(median_image, np.float32)
        self.pca_mean = np.asarray(pca_mean, np.float32)
        self.pca_components = np.asarray(pca_components, np.float32)
        # the PCA's k eigenvalues and the mean of the discarded ones (sklearn's); None in files of older versions
        self.pca_explained_variance = None if pca_explained_variance is None else np.asarray(pca_explained_variance)
        self.pca_noise_variance = None if pca_noise_variance is None else float(pca_noise_variance)
        self.latent_dim = latent_dim  # the model's they stand beside (k may be less: capped by the cells)
        self.run_id = run_id  # the fingerprint of the `cellvae train` run that fitted them

    @property
    def k(self) -> int:
        return len(self.pca_components)

    @classmethod
    def fit(
        cls,
        train_cells: np.ndarray,
        k: int,
        max_cells: int = 20_000,
        memory_bytes: int = 4 << 30,
        seed: int = 0,
        run_id: str | None = None,
    ) -> "Baselines":
        """Fit on (at most max_cells of) the uint8 training cells N×S×S×3, beside a model of latent dimension k
        (of the run run_id, when given)."""
        cells = sample_cells(train_cells, max_cells, seed)
        pca = fit_pca(cells, k, memory_bytes, seed)
        mean, median = cells.mean(axis=0) / 255.0, np.median(cells, axis=0) / 255.0
        return cls(
            mean,
            median,
            pca.mean_,
            pca.components_,
            latent_dim=k,
            run_id=run_id,
            pca_explained_variance=np.asarray(pca.explained_variance_, np.float64),
            pca_noise_variance=float(pca.noise_variance_),
        )

    def save(self, path) -> None:
        """Write the fitted baselines as one .npz, atomically."""
        arrays = dict(
            mean_image=self.mean_image,
            median_image=self.median_image,
            pca_mean=self.pca_mean,
            pca_components=self.pca_components,
            **({} if self.latent_dim is None else {"latent_dim": np.int64(self.latent_dim)}),
            **({} if self.run_id is None else {"run_id": np.str_(self.run_id)}),
            **(
                {}
                if self.pca_explained_variance is None
                else {
                    "pca_explained_variance": self.pca_explained_variance,
                    "pca_noise_variance": np.float64(self.pca_noise_variance),
                }
            ),
        )
        atomic_write(Path(path), lambda temporary: np.savez(temporary, **arrays))

    @classmethod
    def load(cls, path) -> "Baselines":
        """The baselines saved in path; a one-line ValueError naming it when it is unreadable or incomplete."""
        try:
            with np.load(path) as arrays:
                images = {name: arrays[name] for name in ("mean_image", "median_image", "pca_mean", "pca_components")}
                latent_dim = int(arrays["latent_dim"]) if "latent_dim" in arrays else None
                run_id = str(arrays["run_id"]) if "run_id" in arrays else None
                ppca = {  # absent from files written before they were kept: PCA works, probabilistic PCA does not
                    name: arrays[name] for name in ("pca_explained_variance", "pca_noise_variance") if name in arrays
                }
        except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile) as error:
            raise ValueError(f"baselines {path} are unreadable (truncated? {error})") from None
        return cls(**images, latent_dim=latent_dim, run_id=run_id, **ppca)

    def reconstructors(self) -> dict:
        """name -> function(float cells N×S×S×3 in [0, 1]) -> reconstructions, for each baseline."""
        shape = self.mean_image.shape

        def pca(images):
            flat = images.reshape(len(images), -1) - self.pca_mean
            codes = flat @ self.pca_components.T
            return (codes @ self.pca_components + self.pca_mean).reshape((len(images), *shape))

        return {
            "zero": lambda images: np.zeros_like(images),
            "mean": lambda images: np.broadcast_to(self.mean_image, images.shape),
            "median": lambda images: np.broadcast_to(self.median_image, images.shape),
            "pca": pca,
        }

    def pca_codes(self, cells: np.ndarray) -> np.ndarray:
        """The PCA-k coordinates of uint8 cells (N×k), a linear baseline for features."""
        flat = cells.reshape(len(cells), -1).astype(np.float32) / 255.0 - self.pca_mean
        return flat @ self.pca_components.T
