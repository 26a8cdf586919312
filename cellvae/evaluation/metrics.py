"""Reconstruction metrics of uint8 cells against reconstructions in [0, 1], over whole images and inside cells.

similarity_s is the thesis's S = 1 - mean|x - x_hat| / 255 (x, x_hat in 0..255); mse is on [0, 1]; psnr in dB
(data range 1); ssim the mean structural similarity (scikit-image, Gaussian window sigma 1.5, per channel).
The `_cell` variants count only pixels inside the cell: crops whose pixels outside the segmented cell are zero
(the pipeline's) carry that mask; windows cut around a cell with its neighbours (no mask) get whole-image
metrics only.
"""

from __future__ import annotations

import math

import numpy as np
from skimage.metrics import structural_similarity

METRICS = ["similarity_s", "mse", "psnr", "ssim", "s_cell", "mse_cell"]


def psnr(mse, data_range=1.0):
    """Peak signal-to-noise ratio in dB of a mean squared error (inf if it is 0)."""
    return math.inf if mse == 0 else 10.0 * math.log10(data_range**2 / mse)


def cell_masks(cells: np.ndarray) -> np.ndarray:
    """N×S×S booleans: the pixels of uint8 cells (N×S×S×3) that are inside the cell (any channel above 0)."""
    return np.asarray(cells).any(axis=-1)


def inputs_are_masked(raw_cells) -> bool:
    """Whether raw crops carry a segmentation mask: each has a pixel on its border that is zero in every
    channel (outside the cell). Microscope windows never do (the camera offset keeps pixels above zero)."""

    def masked(cell):
        outside = ~np.asarray(cell).any(axis=-1)
        return bool(outside[0].any() or outside[-1].any() or outside[:, 0].any() or outside[:, -1].any())

    return all(masked(cell) for cell in raw_cells)


class MetricSums:
    """Running sums of the metrics over batches (each image weighs the same; cell pixels pooled)."""

    def __init__(self, masked: bool):
        self.masked = masked
        self.n = 0
        self.abs_sum = self.squared_sum = self.ssim_sum = 0.0
        self.cell_pixels = self.cell_abs_sum = self.cell_squared_sum = 0.0

    def add(self, cells: np.ndarray, reconstructions: np.ndarray) -> None:
        """One batch: uint8 cells N×S×S×3 and their reconstructions (floats in [0, 1])."""
        x = cells.astype(np.float64) / 255.0
        y = np.clip(np.asarray(reconstructions, dtype=np.float64), 0.0, 1.0)
        difference = x - y
        self.n += len(x)
        per_image = difference[0].size
        self.abs_sum += np.abs(difference).sum() / per_image
        self.squared_sum += np.square(difference).sum() / per_image
        side = min(x.shape[1:3])
        window = min(11, side if side % 2 else side - 1)  # 11: the Gaussian window of sigma 1.5
        self.ssim_sum += sum(
            structural_similarity(
                a,
                b,
                channel_axis=-1,
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
                data_range=1.0,
                win_size=window,
            )
            for a, b in zip(x, y)
        )
        if self.masked:
            inside = cell_masks(cells)
            self.cell_pixels += inside.sum() * x.shape[-1]
            self.cell_abs_sum += np.abs(difference[inside]).sum()
            self.cell_squared_sum += np.square(difference[inside]).sum()

    def result(self) -> dict:
        """The metrics dict (s_cell and mse_cell None where the cells carry no mask)."""
        mse = self.squared_sum / self.n
        cell = self.masked and self.cell_pixels > 0
        return {
            "similarity_s": 1.0 - self.abs_sum / self.n,
            "mse": mse,
            "psnr": psnr(mse),
            "ssim": self.ssim_sum / self.n,
            "s_cell": 1.0 - self.cell_abs_sum / self.cell_pixels if cell else None,
            "mse_cell": self.cell_squared_sum / self.cell_pixels if cell else None,
            "n_cells": self.n,
        }


def reconstruction_metrics(cells: np.ndarray, reconstruct, masked: bool, batch_size: int = 256) -> dict:
    """Metrics of reconstruct(float cells in [0, 1]) -> reconstructions, batch by batch."""
    sums = MetricSums(masked)
    for start in range(0, len(cells), batch_size):
        batch = cells[start : start + batch_size]
        sums.add(batch, reconstruct(batch.astype(np.float32) / 255.0))
    return sums.result()
