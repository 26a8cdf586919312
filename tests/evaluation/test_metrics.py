"""Reconstruction metrics (cellvae.evaluation.metrics): S, MSE, PSNR, SSIM, and the cell-mask variants."""

import math

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from cellvae.evaluation.metrics import cell_masks, inputs_are_masked, psnr, reconstruction_metrics


def test_perfect_and_constant_error_reconstructions():
    cells = np.random.default_rng(0).integers(51, 256, (4, 8, 8, 3)).astype(np.uint8)
    perfect = reconstruction_metrics(cells, lambda x: x, masked=False)
    assert perfect["similarity_s"] == pytest.approx(1.0) and perfect["mse"] == pytest.approx(0.0, abs=1e-12)
    assert perfect["ssim"] == pytest.approx(1.0) and perfect["s_cell"] is None
    shifted = reconstruction_metrics(cells, lambda x: x - 51 / 255, masked=False)
    assert shifted["similarity_s"] == pytest.approx(0.8) and shifted["mse"] == pytest.approx(0.04)
    assert shifted["n_cells"] == 4


def test_psnr_known_values():
    assert psnr(0.01) == pytest.approx(20.0) and psnr(1e-4) == pytest.approx(40.0) and psnr(0.0) == math.inf


def test_ssim_is_scikit_images_per_image_mean():
    rng = np.random.default_rng(2)
    cells = rng.integers(0, 256, (3, 16, 16, 3)).astype(np.uint8)
    noisy = np.clip(cells / 255 + rng.normal(0, 0.1, cells.shape), 0, 1)
    expected = np.mean(
        [
            structural_similarity(
                a / 255,
                b,
                channel_axis=-1,
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
                data_range=1.0,
            )
            for a, b in zip(cells, noisy)
        ]
    )
    assert reconstruction_metrics(cells, lambda x: noisy, masked=False)["ssim"] == pytest.approx(expected)


def test_cell_metrics_count_only_pixels_inside_the_mask():
    """A hand-made cell: a 4×4 square of value 200 on black; the reconstruction is off by 0.1 inside and by
    0.5 outside. Whole-image metrics see both, cell metrics only the inside."""
    cells = np.zeros((1, 8, 8, 3), np.uint8)
    cells[0, 2:6, 2:6] = 200
    inside = cell_masks(cells)[0]
    assert inside.sum() == 16
    reconstruction = np.broadcast_to(np.where(inside[None, ..., None], 200 / 255 - 0.1, 0.5), cells.shape)
    metrics = reconstruction_metrics(cells, lambda x: reconstruction, masked=True)
    assert metrics["mse_cell"] == pytest.approx(0.01) and metrics["s_cell"] == pytest.approx(0.9)
    assert metrics["mse"] == pytest.approx((16 * 0.01 + 48 * 0.25) / 64)


def test_masked_inputs_are_told_from_windows():
    window = np.full((10, 10, 3), 300, np.uint16)
    crop = window.copy()
    crop[0, 0] = 0  # outside the segmented cell
    assert inputs_are_masked([crop, crop]) and not inputs_are_masked([crop, window])
