"""Honest margins (issue 18): the augmented PCA's variants, the centre-cell mask on the canvas, the PCA-equivalent
k, the paired bootstrap over fields, and the leave-one-plate-out benchmark on a few real cells."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cellvae.evaluation.baselines import fit_pca
from cellvae.imaging.images import compose_arrays
from cellvae.study.margins import (
    cell_errors,
    centre_cell,
    centre_cell_masks,
    field_bootstrap,
    markdown_table,
    masked_crop,
    model_errors,
    paired_comparison,
    pca_equivalent_k,
    pca_errors,
    replace_section,
)

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT.parent / "shared" / "bbbc021" / "images" / "single_cells_by_plate" / "manifest.csv"


def test_bootstrap_of_two_fields_by_hand_and_of_identical_methods():
    # field a: numerator 1 (two cells), denominator 2; field b: numerator 3, denominator 2. Resampling two fields:
    # aa (1/4) -> 0.5, ab or ba (1/2) -> 1.0, bb (1/4) -> 1.5; the 95% interval is [0.5, 1.5], the ratio 1.0
    fields = ["a", "a", "b"]
    ratio, low, high = field_bootstrap(fields, [0.5, 0.5, 3.0], [1.0, 1.0, 2.0], n_boot=4000, seed=1)
    assert (ratio, low, high) == (1.0, 0.5, 1.5)
    errors = np.random.default_rng(2).random(50)
    same = field_bootstrap(np.arange(50) % 7, errors, errors)
    assert same == (1.0, 1.0, 1.0)


def test_paired_bootstrap_interval_covers_the_true_ratio_despite_field_spread():
    rng = np.random.default_rng(3)
    fields = np.repeat(np.arange(30), 40)
    field_level = np.exp(rng.normal(0, 0.4, 30))[fields]  # fields differ far more than the methods
    pca = field_level * rng.gamma(5.0, 0.2, len(fields))
    vae = 0.9 * pca * rng.normal(1.0, 0.05, len(fields))
    ratio, low, high = field_bootstrap(fields, vae, pca, n_boot=2000)
    assert low < 0.9 < high and high < 1.0 and high - low < 0.02
    # unpaired, the field spread would swamp the difference: the means alone vary by far more
    assert np.ptp([pca[fields == f].mean() for f in range(30)]) > 10 * (high - low)


def synthetic_cells(n, seed, variances):
    """uint8 4×4×3 cells: a mean image plus len(variances) orthogonal patterns of those variances, plus noise."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(np.random.default_rng(99).normal(size=(48, len(variances))))[0].T
    codes = rng.normal(size=(n, len(variances))) * np.sqrt(variances)
    flat = 0.5 + codes @ basis + rng.normal(0, 0.002, (n, 48))
    return np.clip(np.round(flat * 255), 0, 255).astype(np.uint8).reshape(n, 4, 4, 3)


def test_pca_equivalent_k_of_a_model_that_is_pca_7_is_7():
    variances = 0.01 * 0.7 ** np.arange(12)
    train, test = synthetic_cells(3000, 1, variances), synthetic_cells(500, 2, variances)
    masks = np.zeros(test.shape[:3], bool)
    masks[:, 1:3, 1:3] = True
    pca = fit_pca(train, 12, 1 << 30)
    ks = list(range(1, 13))
    curve = pca_errors(pca.mean_, pca.components_, test, masks, ks)
    mses = [curve[k][0].mean() for k in ks]
    assert np.all(np.diff(mses) < 0)
    mean, components = pca.mean_, pca.components_[:7]

    def pca_7(x):
        return (mean + (x.reshape(len(x), -1) - mean) @ components.T @ components).reshape(x.shape)

    window, inside = model_errors(test, pca_7, masks, batch_size=64)
    np.testing.assert_allclose(window, curve[7][0], rtol=1e-4)  # float32 inputs
    np.testing.assert_allclose(inside, curve[7][1], rtol=1e-4)
    assert pca_equivalent_k(ks, mses, window.mean()) == pytest.approx(7.0, abs=1e-3)
    assert pca_equivalent_k(ks, [curve[k][1].sum() for k in ks], inside.sum()) == pytest.approx(7.0, abs=1e-3)
    # on a coarser grid, halfway in log MSE between k = 4 and k = 8 is k = 6
    grid = [1, 2, 4, 8, 12]
    between = np.sqrt(curve[4][0].mean() * curve[8][0].mean())
    assert pca_equivalent_k(grid, [curve[k][0].mean() for k in grid], between) == pytest.approx(6.0)
    assert pca_equivalent_k(ks, mses, mses[-1] / 2) == float("inf")  # better than every PCA fitted
    assert pca_equivalent_k(ks, mses, mses[0] * 2) == 1.0
    mean_only = pca_errors(pca.mean_, pca.components_, test, masks, [0])[0][0]  # PCA-0: the mean image
    np.testing.assert_allclose(
        mean_only, cell_errors(test, np.broadcast_to(pca.mean_.reshape(4, 4, 3), test.shape), masks)[0]
    )
    assert pca_equivalent_k([0, *ks], [mean_only.mean(), *mses], mean_only.mean() * 2) == 0.0
    # PCA-5 from the first 5 of 12 components is the PCA fitted with 5
    five = fit_pca(train, 5, 1 << 30)
    direct = five.inverse_transform(five.transform(test.reshape(500, -1) / 255.0)).reshape(test.shape)
    direct = cell_errors(test, direct, masks)[0]
    np.testing.assert_allclose(curve[5][0], direct, rtol=1e-3)


def drawn_window(side=68):
    """A raw uint16 window (RGB = Tubulin, Actin, DAPI): a centre cell (disk of radius 14, nucleus 6) and a
    neighbour in the corner, on a camera offset."""
    rows, cols = np.ogrid[:side, :side]
    window = np.full((side, side, 3), 100, np.uint16)
    for (r, c), radius in (((34, 34), 14), ((6, 6), 5)):
        cell = (rows - r) ** 2 + (cols - c) ** 2 <= radius**2
        nucleus = (rows - r) ** 2 + (cols - c) ** 2 <= (radius // 2) ** 2
        window[cell, :2] = 2000
        window[nucleus, 2] = 3000
    return window


def test_centre_cell_mask_lands_on_the_composed_crop():
    window = drawn_window()
    cell = centre_cell(window)
    rows, cols = np.ogrid[:68, :68]
    disk = (rows - 34) ** 2 + (cols - 34) ** 2 <= 14**2
    assert (cell & disk).sum() / (cell | disk).sum() > 0.9 and not cell[6, 6]  # the centre cell, not its neighbour
    # resized as the crop: the mask of a window whose only content is that cell matches the composed content
    only_cell = np.where(cell[..., None], window, 0).astype(np.uint16)
    ranges = np.array([[0.0, 3000.0]] * 3)
    for size, scale in ((32, None), (64, None), (128, 1.0), (48, 0.5)):
        composed, _ = compose_arrays([only_cell], size, None, scale, ranges)
        mask = centre_cell_masks([cell], size, scale)[0]
        content = composed[0, ..., 0] > 85  # half the cell's tubulin (2000 of 3000: 170)
        assert mask.shape == (size, size)
        assert (mask & content).sum() / (mask | content).sum() > 0.9, (size, scale)
    # the product's masked crop: cut to the cell, pasted at scale 1: the mask is exactly the crop's pixels
    crop, crop_mask = masked_crop(window, cell)
    assert crop.shape[:2] == crop_mask.shape == (29, 29) and not crop[~crop_mask].any()
    composed, _ = compose_arrays([crop], 64, None, 1.0, ranges)
    np.testing.assert_array_equal(centre_cell_masks([crop_mask], 64, 1.0)[0], composed[0].any(axis=-1))


def test_paired_comparison_and_its_table():
    fields = np.array(["p/w/s1", "p/w/s1", "p/w/s2"])
    pixels = np.array([30.0, 60.0, 30.0])
    row = paired_comparison(fields, pixels, [1.0, 2.0, 3.0], [2.0, 2.0, 2.0], [3.0, 3.0, 6.0], [6.0, 6.0, 6.0], 100)
    assert (row["n_cells"], row["n_fields"], row["vae_mse"], row["pca_mse"]) == (3, 2, 2.0, 2.0)
    assert (row["vae_mse_cell"], row["pca_mse_cell"], row["ratio_cell"]) == (0.1, 0.15, pytest.approx(2 / 3))
    rows = pd.DataFrame(
        [{"model": "default", "latent_dim": 75, "plate": "p", **row, "k_equivalent": np.inf, "k_max": 256}]
    )
    table = markdown_table(rows, flagged={"p"})
    assert len(table) == 3 and table[2].startswith("| default-z75 | p\\* | 3 | 2 |") and "> 256 / -" in table[2]


def test_replace_section_inserts_then_replaces(tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Results\n\n## A\n\nold a\n\n## B\n\nb\n")
    replace_section(results, "## A", "## A\n\nnew a\n")
    assert results.read_text() == "# Results\n\n## A\n\nnew a\n\n## B\n\nb\n"
    replace_section(results, "## C", "## C\n\nc\n")
    assert results.read_text().endswith("## B\n\nb\n\n## C\n\nc\n")


def real_cells(tmp_path, results, size: int, *extra) -> subprocess.CompletedProcess:
    """benchmarks/real_cells.py --folds lopo on a few cells of each plate, one tiny model of one epoch."""
    options = (
        f"--max-cells-per-plate 12 --epochs 1 --seeds 1 --latent-dims 4 --pca-max-k 8 --size {size} --bootstrap 100"
    )
    command = [sys.executable, "benchmarks/real_cells.py", "--folds", "lopo", *options.split(), *extra]
    command += ["--out", str(tmp_path / "out"), "--results", str(results)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.skipif(not MANIFEST.is_file(), reason=f"{MANIFEST} absent (the shared BBBC021 crops beside the checkout)")
@pytest.mark.slow
def test_leave_one_plate_out_runs_on_a_few_real_cells(tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Results\n")
    run = real_cells(tmp_path, results, 16)
    assert run.returncode == 0, run.stderr[-2000:]
    last = run.stdout.strip().splitlines()[-1]
    assert last.startswith("lopo_ratio_max_upper=") and float(last.split("=")[1]) > 0
    table = pd.read_csv(tmp_path / "out" / "lopo-16px-max12" / "lopo.csv")
    assert sorted(table["plate"]) == sorted(["all", *(p for p in pd.read_csv(MANIFEST)["plate"].unique())])
    assert (table["ratio_low"] <= table["ratio"]).all() and (table["ratio"] <= table["ratio_high"]).all()
    section = results.read_text()
    assert "## Leave one plate out" in section and section.count("| default-z4 |") == 11
    trivial = next(line for line in section.splitlines() if "the mean training image (PCA-0)" in line)
    assert trivial.count("Week4_") == 5 and "all" not in trivial


@pytest.mark.skipif(not MANIFEST.is_file(), reason=f"{MANIFEST} absent (the shared BBBC021 crops beside the checkout)")
@pytest.mark.slow
def test_one_fold_of_masked_cells_has_its_own_section(tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Results\n\n## Leave one plate out\n\nthe whole windows' figures\n")
    refused = real_cells(tmp_path, results, 32, "--held-out", "Week4_99999")
    assert refused.returncode != 0 and "--held-out Week4_99999: no such plate" in refused.stderr
    run = real_cells(tmp_path, results, 32, "--masked", "--held-out", "Week4_27821")
    assert run.returncode == 0, run.stderr[-2000:]
    table = pd.read_csv(tmp_path / "out" / "lopo-32px-masked-max12" / "lopo.csv")
    assert table["plate"].tolist() == ["Week4_27821"]  # one fold: no pooled row repeating it
    text = results.read_text()
    assert "the whole windows' figures" in text and "## Leave one plate out, 32 px masked" in text
    assert "masked centre cells at the common scale" in text and text.count("| default-z4 |") == 2  # and its latent row


@pytest.mark.skipif(not MANIFEST.is_file(), reason=f"{MANIFEST} absent (the shared BBBC021 crops beside the checkout)")
@pytest.mark.slow
def test_the_fixed_fold_writes_reconstruction_and_response_with_intervals(tmp_path):
    results = tmp_path / "RESULTS.md"
    heading = "## Fixed fold: reconstruction and response on two never-seen plates"
    results.write_text(f"# Results\n\n{heading}\n\nstale figures\n")
    options = "--max-cells-per-well 30 --epochs 1 --seeds 1 2 --latent-dims 4 --pca-max-k 8 --size 16 --bootstrap 100"
    command = [sys.executable, "benchmarks/real_cells.py", *options.split(), "--models", "default", "thesis"]
    command += ["--out", str(tmp_path / "out"), "--results", str(results)]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    reconstruction = pd.read_csv(tmp_path / "out" / "reconstruction.csv")
    assert set(reconstruction["method"].dropna()) == {"zero", "mean", "median"}
    models = reconstruction.dropna(subset=["model"])
    assert models["model"].tolist() == ["default", "thesis"] and models["pca_augmented"].tolist() == [True, False]
    assert (models["ratio_low"] <= models["ratio"]).all() and (models["ratio"] <= models["ratio_high"]).all()
    response = pd.read_csv(tmp_path / "out" / "response.csv").set_index("features")
    assert response.loc["default-z4 mu", "sets"] == 2 and response.loc["classic", "sets"] == 1
    for key in ("lda_accuracy", "Week4_27821_50uM"):
        assert (response[f"{key}_low"] < response[key]).all() and (response[key] < response[f"{key}_high"]).all()
    assert "Week4_27801_dmso_null" in response and "Week4_27801_dmso_null_low" not in response
    text = results.read_text()
    assert "stale figures" not in text and text.count("| default-z4 |") == 1 and "| default-z4 mu | 2 |" in text
    assert "27821 50 µM [95%]" in text and "27801 null" in text
