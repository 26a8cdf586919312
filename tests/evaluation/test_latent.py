"""The latent section: KL per dimension and in total, active units, the VAE's importance-weighted held-out NLL and
probabilistic PCA's exact one (cellvae.evaluation.latent), and the baselines' stored PCA eigenvalues."""

import math
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy import stats  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402

from cellvae.core.config import vae_settings  # noqa: E402
from cellvae.evaluation import latent  # noqa: E402
from cellvae.evaluation.baselines import Baselines  # noqa: E402
from cellvae.model.vae import build_vae  # noqa: E402


def test_kl_per_dimension_is_the_hand_computed_gaussian_kl():
    mu = np.array([[0.0, 1.0, 2.0], [0.0, -1.0, 0.0]])
    log_var = np.array([[0.0, 0.0, math.log(0.25)], [0.0, math.log(4.0), math.log(0.25)]])
    # KL(N(m, s2) || N(0, 1)) = (m^2 + s2 - 1 - log s2) / 2
    cell0 = [0.0, 0.5, (4 + 0.25 - 1 - math.log(0.25)) / 2]
    cell1 = [0.0, (1 + 4 - 1 - math.log(4.0)) / 2, (0.25 - 1 - math.log(0.25)) / 2]
    np.testing.assert_allclose(latent.kl_per_dimension(mu, log_var), (np.array(cell0) + cell1) / 2)


def test_active_units_count_dimensions_whose_posterior_mean_varies_over_cells():
    rng = np.random.default_rng(0)
    mu = np.column_stack(
        [
            rng.normal(0, 1.0, 1000),  # informative: Var = 1
            rng.normal(3, 0.2, 1000),  # Var 0.04 > 0.01, whatever its mean
            rng.normal(0, 0.05, 1000),  # Var 0.0025: inactive
            np.full(1000, 2.0),  # constant: inactive
        ]
    )
    assert latent.active_units(mu) == 2
    assert latent.active_units(mu, threshold=0.001) == 3


def test_latent_section_of_a_hand_built_encoder_output(monkeypatch):
    """A model whose posterior is given: mu of dimension 0 varies over cells, dimension 1 is the prior."""
    mu = np.column_stack([np.linspace(-1, 1, 8), np.zeros(8)])
    log_var = np.column_stack([np.full(8, math.log(0.5)), np.zeros(8)])
    monkeypatch.setattr(latent, "posterior", lambda vae, cells: (mu, log_var))
    section = latent.latent_section(None, np.zeros((8, 16, 16, 3), np.uint8), None, None, samples=4)
    expected_dim0 = np.mean(0.5 * (mu[:, 0] ** 2 + 0.5 - 1 - math.log(0.5)))
    assert section["kl_per_dim"] == pytest.approx([expected_dim0, 0.0])
    assert section["kl_nats"] == pytest.approx(expected_dim0) and section["active_units"] == 1
    assert section["nll_per_pixel"] is None and section["ppca_nll_per_pixel"] is None
    assert any("no training cells" in note for note in section["notes"])


@pytest.fixture(scope="module")
def cells():
    """Smooth random 4 x 4 x 3 'cells' (D = 48) of rank-limited structure plus noise, in [0, 1]."""
    rng = np.random.default_rng(3)
    basis = rng.normal(size=(5, 48))
    data = 0.5 + 0.05 * rng.normal(size=(300, 5)) @ basis + 0.02 * rng.normal(size=(300, 48))
    return np.clip(data, 0, 1).reshape(300, 4, 4, 3)


def test_ppca_log_likelihood_is_sklearns_and_the_multivariate_normal_density(cells):
    train, held_out = cells[:200].reshape(200, -1), cells[200:].reshape(100, -1)
    pca = PCA(n_components=3).fit(train)
    ours = latent.ppca_log_likelihood(
        held_out, pca.mean_, pca.components_, pca.explained_variance_, pca.noise_variance_
    )
    np.testing.assert_allclose(ours, pca.score_samples(held_out), rtol=1e-9)
    eigenvalues, sigma2 = pca.explained_variance_, pca.noise_variance_
    w = pca.components_.T * np.sqrt(eigenvalues - sigma2)  # Tipping & Bishop's W
    covariance = w @ w.T + sigma2 * np.eye(48)
    direct = stats.multivariate_normal(pca.mean_, covariance).logpdf(held_out)
    np.testing.assert_allclose(ours, direct, rtol=1e-9)
    assert sigma2 == pytest.approx(np.sort(np.linalg.eigvalsh(np.cov(train.T)))[::-1][3:].mean())


def test_baselines_keep_the_pca_eigenvalues_and_ppca_nll_is_per_pixel(cells, tmp_path):
    uint8 = np.round(cells * 255).astype(np.uint8)
    baselines = Baselines.fit(uint8[:200], 3)
    baselines.save(tmp_path / "baselines.npz")
    loaded = Baselines.load(tmp_path / "baselines.npz")
    np.testing.assert_allclose(loaded.pca_explained_variance, baselines.pca_explained_variance)
    assert loaded.pca_noise_variance == baselines.pca_noise_variance > 0
    pca = PCA(n_components=3).fit(uint8[:200].reshape(200, -1) / 255.0)
    expected = -pca.score_samples(uint8[200:].reshape(100, -1) / 255.0).mean() / 48
    assert latent.ppca_nll_per_pixel(loaded, uint8[200:], batch_size=7) == pytest.approx(expected, rel=1e-4)


def test_baselines_of_an_older_version_load_but_refuse_ppca_in_one_line(cells, tmp_path):
    baselines = Baselines.fit(np.round(cells * 255).astype(np.uint8)[:200], 3)
    baselines.pca_explained_variance = baselines.pca_noise_variance = None  # as files written before they were kept
    baselines.save(tmp_path / "old.npz")
    old = Baselines.load(tmp_path / "old.npz")
    assert old.k == 3 and old.pca_explained_variance is None
    with pytest.raises(ValueError, match="predate probabilistic PCA"):
        latent.ppca_nll_per_pixel(old, cells)


def test_iwae_bound_tightens_the_elbo_on_an_untrained_model():
    vae = build_vae(16, 2, **vae_settings({"reconstruction_loss": "gaussian"}))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 16, 16, 3)).astype(np.uint8)
    variance = latent.decoder_variance(vae, rng.integers(0, 256, (10, 16, 16, 3)).astype(np.uint8))
    weights = latent.iwae_log_weights(vae, images, variance, samples=64, seed=1)
    assert weights.shape == (6, 64) and np.isfinite(weights).all()
    iwae, elbo = latent.iwae_nll(weights), -weights.mean(axis=1)  # the negative ELBO over the same 64 draws
    assert (iwae <= elbo + 1e-9).all()
    # the negative ELBO's own terms: each draw's -log w = -log p(x|z) + log q(z|x) - log p(z), whose mean over the
    # draws estimates the Gaussian reconstruction NLL + the closed-form KL, which is at most the NLL at the best z
    mu, log_var = latent.posterior(vae, images)
    kl = np.sum(0.5 * (mu**2 + np.exp(log_var) - 1 - log_var), axis=1)
    pixels = 16 * 16 * 3
    assert (elbo > kl + 0.5 * pixels * math.log(2 * math.pi * variance)).all()  # sum of squares / 2 sigma^2 >= 0
    assert latent.iwae_nll(weights[:, :1]) == pytest.approx(-weights[:, 0])  # K = 1: one draw of the ELBO


@pytest.mark.slow
def test_evaluate_prints_the_latent_section(tmp_path):
    """`cellvae train` then `cellvae evaluate` on 24 tiny PNG cells: the evaluate JSON's latent section."""
    import json
    import subprocess
    import sys

    from PIL import Image

    from cellvae.testing.workflow import REPO

    images = tmp_path / "cells"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(24):
        small = rng.integers(0, 256, (4, 4, 3)).astype(np.uint8)
        Image.fromarray(small).resize((16, 16), Image.BILINEAR).save(images / f"cell{i:02d}.png")

    def cellvae(*args):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        command = [sys.executable, "-m", "cellvae", *map(str, args)]
        return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)

    out = tmp_path / "run"
    trained = cellvae(
        "train", "--images", images, "--latent-dim", 3, "--epochs", 1, "--size", 16, "--config", "none",
        "--batch-size", 8, "--out", out,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    result = cellvae("evaluate", "--model", out, "--images", images)
    assert result.returncode == 0, result.stderr
    section = json.loads(result.stdout)["latent"]
    assert {"kl_nats", "kl_per_dim", "active_units", "nll_per_pixel", "ppca_nll_per_pixel"} <= set(section)
    assert "notes" not in section and section["iwae_samples"] == 64 and section["n_cells"] == 24
    assert len(section["kl_per_dim"]) == 3 and section["kl_nats"] == pytest.approx(sum(section["kl_per_dim"]))
    assert np.isfinite(section["nll_per_pixel"]) and np.isfinite(section["ppca_nll_per_pixel"])
    assert section["decoder_variance"] > 0
