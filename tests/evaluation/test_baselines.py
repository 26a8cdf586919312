"""Baselines (cellvae.evaluation.baselines): PCA exact on low-rank data, mean and median images, zero, save/load."""

import numpy as np
import pytest

from cellvae.evaluation.baselines import Baselines, fit_pca, sample_cells


def low_rank_cells(n=60, size=8, rank=5, seed=0):
    """uint8 cells that lie exactly on a rank-`rank` affine subspace (before rounding: built from integers)."""
    rng = np.random.default_rng(seed)
    basis = rng.integers(0, 8, (rank, size * size * 3))
    codes = rng.integers(0, 6, (n, rank))
    flat = 10 + codes @ basis
    assert flat.max() < 256
    return flat.reshape(n, size, size, 3).astype(np.uint8)


def test_pca_at_full_rank_reconstructs_exactly_and_below_it_does_not():
    cells = low_rank_cells()
    x = cells.astype(np.float32) / 255
    exact = Baselines.fit(cells, k=5).reconstructors()["pca"](x)
    np.testing.assert_allclose(exact, x, atol=1e-5)
    assert np.mean((Baselines.fit(cells, k=2).reconstructors()["pca"](x) - x) ** 2) > 1e-3 * np.var(x) + 1e-6


def test_incremental_pca_is_used_beyond_the_memory_budget_and_agrees():
    cells = low_rank_cells(n=200)
    whole, batched = fit_pca(cells, 5, 1 << 30), fit_pca(cells, 5, 20_000)
    assert type(whole).__name__ == "PCA" and type(batched).__name__ == "IncrementalPCA"
    x = cells.reshape(200, -1).astype(np.float32) / 255
    for pca in (whole, batched):
        np.testing.assert_allclose(pca.inverse_transform(pca.transform(x)), x, atol=1e-4)


def test_mean_median_and_zero_images():
    cells = np.zeros((5, 4, 4, 3), np.uint8)
    for i, value in enumerate([0, 10, 20, 30, 250]):
        cells[i] = value
    baselines = Baselines.fit(cells, k=2)
    x = np.random.default_rng(1).random((3, 4, 4, 3)).astype(np.float32)
    reconstruct = baselines.reconstructors()
    np.testing.assert_allclose(reconstruct["mean"](x), np.full_like(x, 62 / 255), rtol=1e-6)
    np.testing.assert_allclose(reconstruct["median"](x), np.full_like(x, 20 / 255), rtol=1e-6)
    assert not reconstruct["zero"](x).any()


def test_save_load_round_trip_and_pca_codes(tmp_path):
    cells = low_rank_cells()
    baselines = Baselines.fit(cells, k=4)
    baselines.save(tmp_path / "baselines.npz")
    loaded = Baselines.load(tmp_path / "baselines.npz")
    assert loaded.k == 4 and sorted(p.name for p in tmp_path.iterdir()) == ["baselines.npz"]
    np.testing.assert_array_equal(loaded.pca_codes(cells), baselines.pca_codes(cells))
    assert baselines.pca_codes(cells).shape == (60, 4)


def test_k_is_capped_by_the_number_of_cells_and_sampling_is_seeded():
    cells = low_rank_cells(n=6)
    assert Baselines.fit(cells, k=50).k == 6
    np.testing.assert_array_equal(sample_cells(np.arange(100), 10, seed=3), sample_cells(np.arange(100), 10, seed=3))
    assert len(sample_cells(np.arange(100), 10)) == 10 and len(sample_cells(np.arange(5), 10)) == 5
    with pytest.raises(ValueError):
        Baselines.fit(cells[:0], k=2)
