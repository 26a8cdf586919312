"""The baselines a model's response profiles stand beside, on the same cells and scored the same way
(cellvae.profiling.moa): PCA-k of the pixels (k = the model's z, fitted on its training cells: the analysis stage's
baselines.npz), a 16 px thumbnail, classic measurements of the centre cell (cellvae.profiling.cell_features) and an
untrained encoder of the model's architecture (untrained_copy; cellvae.profiling.response encodes with it).

Cells are the pipeline's PNGs (RGB = Tubulin, Actin, DAPI), read chunk by chunk (bounded memory).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cellvae.core.files import read_pngs
from cellvae.evaluation.baselines import Baselines
from cellvae.imaging.orientations import orientation_mean
from cellvae.profiling import cell_features, moa

THUMBNAIL_SIDE = 16
ACQUISITION_ORDER = [2, 0, 1]  # PNG RGB (Tubulin, Actin, DAPI) → DAPI, Tubulin, Actin, as cell_features expects


def untrained_copy(vae, seed: int):
    """A freshly initialised VAE of vae's architecture and settings (seeded)."""
    import keras

    from cellvae.model.vae import VAE

    keras.utils.set_random_seed(seed)
    fresh = VAE.from_config(vae.get_config())
    fresh.build((None, vae.image_size, vae.image_size, 3))
    return fresh


def thumbnails(images: np.ndarray) -> np.ndarray:
    """Each image's THUMBNAIL_SIDE px thumbnail, flattened (cellvae.profiling.cell_features.thumbnail): images ×
    features."""
    return np.array([cell_features.thumbnail(image, THUMBNAIL_SIDE) for image in images])


def pixel_baselines(baselines: Baselines, paths: list, batch_size: int, orientations: int = 1) -> dict:
    """{baseline name: cells × features} of the pixel baselines (PCA-k, thumbnail, classic) for the PNG cells; PCA-k
    and the thumbnail averaged over each cell's 8 flips/rotations with orientations 8, as the model's posterior
    means are (the classic measurements do not depend on the cell's orientation)."""
    components = baselines.pca_components.reshape(baselines.k, -1)

    def pca_scores(images: np.ndarray) -> np.ndarray:
        return (images.reshape(len(images), -1).astype(np.float32) / 255.0 - baselines.pca_mean.ravel()) @ components.T

    names = (f"pixel PCA-{baselines.k}", f"thumbnail {THUMBNAIL_SIDE}px", "classic (centre cell)")
    chunks = {name: [] for name in names}
    for start in range(0, len(paths), batch_size):
        images = read_pngs(paths[start : start + batch_size])
        measured = [cell_features.classic_measurements(cell[..., ACQUISITION_ORDER]) for cell in images]
        for name, values in zip(
            names,
            (
                orientation_mean(pca_scores, images, orientations),
                orientation_mean(thumbnails, images, orientations),
                pd.DataFrame(measured).to_numpy(np.float64),
            ),
        ):
            chunks[name].append(np.asarray(values, np.float64))
    return {name: np.concatenate(parts) for name, parts in chunks.items()}


def score_baselines(cells: pd.DataFrame, features: dict, settings: dict) -> dict:
    """{baseline name: {nsc, nscb, map}} by the evaluation the model's profiles get (moa.evaluate_rows)."""
    scores = {}
    for name, values in features.items():
        columns = [f"f{i}" for i in range(values.shape[1])]
        table = pd.concat([cells.reset_index(drop=True), pd.DataFrame(values, columns=columns)], axis=1)
        result = moa.evaluate_rows(table, columns, settings, cells=True)
        scores[name] = {key: result[key] for key in ("nsc", "nscb", "map")}
    return scores
