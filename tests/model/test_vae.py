"""The thesis VAE: architecture, parameter count, loss, determinism, save/load."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from keras import layers, ops  # noqa: E402

from cellvae.core.config import (  # noqa: E402
    MODEL_KEYS,
    TRAIN_DEFAULTS,
    training_settings,
    vae_settings,
    variant_settings,
)
from cellvae.model.vae import LOG_VAR_LIMIT, VAE, build_vae, info_nce, load_vae, vae_loss  # noqa: E402


def loss_terms(x, x_hat, mu, log_var, r_loss_factor, kl_weight=1.0, reconstruction_loss="mse", sigma="shared"):
    """vae_loss with the thesis's loss (1 x KL, r_loss_factor x MSE) unless a test names another."""
    return vae_loss(
        x, x_hat, mu, log_var, r_loss_factor, kl_weight=kl_weight, reconstruction_loss=reconstruction_loss, sigma=sigma
    )


# Keras's own TensorFlow variable conversion when saving; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

THESIS = variant_settings("thesis")  # config/bbbc021.yaml's models.thesis (vae_settings keeps the model's keys)
BATCH_NORM_PARAMETERS = 4 * (32 + 64 + 64 + 64 + 64 + 32)  # gamma, beta, moving mean and variance


def thesis_vae(image_size, latent_dim, **overrides):
    """The thesis VAE (THESIS over the schema's train: defaults), with overrides."""
    return build_vae(image_size, latent_dim, **vae_settings({**THESIS, **overrides}))


def test_the_model_settings_have_no_defaults_but_the_schemas():
    """VAE's settings are required: none has a default of its own that could differ from the schema's."""
    with pytest.raises(TypeError, match="VAE needs the settings"):
        build_vae(16, 2)
    vae = build_vae(16, 2, **vae_settings())
    assert {key: getattr(vae, key) for key in MODEL_KEYS} == {key: TRAIN_DEFAULTS[key] for key in MODEL_KEYS}


def random_images(n, size=32, seed=0):
    return np.random.default_rng(seed).random((n, size, size, 3), dtype=np.float32)


@pytest.mark.parametrize("latent_dim", [2, 75, 150, 300])
def test_parameter_count_matches_thesis(latent_dim):
    vae = thesis_vae(128, latent_dim)
    expected = 167_171 + 49_154 * latent_dim
    assert vae.encoder.count_params() + vae.decoder.count_params() == expected
    assert vae.count_params() == expected
    if latent_dim == 75:
        assert expected == 3_853_721


def test_parameter_count_without_batch_norm():
    vae = thesis_vae(128, 10, batch_norm=False)
    assert vae.count_params() == 167_171 - BATCH_NORM_PARAMETERS + 49_154 * 10
    assert not any(isinstance(layer, layers.BatchNormalization) for layer in vae.encoder.layers)


def test_architecture_layers():
    vae = thesis_vae(32, 4)  # the thesis's dropout: 0.25
    convs = [layer for layer in vae.encoder.layers if isinstance(layer, layers.Conv2D)]
    assert [(c.filters, c.kernel_size, c.strides) for c in convs] == [
        (32, (3, 3), (2, 2)),
        (64, (3, 3), (2, 2)),
        (64, (3, 3), (2, 2)),
    ]
    deconvs = [layer for layer in vae.decoder.layers if isinstance(layer, layers.Conv2DTranspose)]
    assert [(d.filters, d.strides) for d in deconvs] == [(64, (2, 2)), (64, (2, 2)), (32, (2, 2)), (3, (1, 1))]
    assert deconvs[-1].activation.__name__ == "sigmoid"
    for model in (vae.encoder, vae.decoder):
        assert sum(isinstance(layer, layers.Dropout) for layer in model.layers) == 3
        assert sum(isinstance(layer, layers.BatchNormalization) for layer in model.layers) == 3
    assert not any(isinstance(layer, layers.Dropout) for layer in thesis_vae(32, 4, dropout=0.0).encoder.layers)


def test_image_size_must_be_a_multiple_of_8():
    with pytest.raises(ValueError, match="multiple of 8"):
        thesis_vae(36, 4)


def test_shapes_and_output_range():
    vae = thesis_vae(32, 6)
    images = random_images(5)
    reconstructions, mu, log_var = vae(images, training=False)
    assert tuple(reconstructions.shape) == (5, 32, 32, 3)
    assert tuple(mu.shape) == tuple(log_var.shape) == (5, 6)
    far_away = ops.convert_to_numpy(vae.decode(np.full((3, 6), 1e3, dtype="float32")))
    for output in (ops.convert_to_numpy(reconstructions), far_away):
        assert output.min() >= 0.0 and output.max() <= 1.0


def test_reconstruct_decodes_mu_deterministically():
    vae = thesis_vae(32, 6)  # with the thesis's dropout
    images = random_images(4)
    first = ops.convert_to_numpy(vae.reconstruct(images))
    np.testing.assert_array_equal(first, ops.convert_to_numpy(vae.reconstruct(images)))
    mu, _ = vae.encode(images)
    np.testing.assert_array_equal(first, ops.convert_to_numpy(vae.decode(mu)))
    sampled, _, _ = vae(images)
    assert not np.allclose(first, ops.convert_to_numpy(sampled))


def test_log_var_is_bounded_smoothly():
    vae = thesis_vae(32, 3)
    dense = vae.encoder.get_layer("log_var")
    kernel, bias = dense.get_weights()
    for raw, expected in [(100.0, LOG_VAR_LIMIT), (-100.0, -LOG_VAR_LIMIT)]:
        dense.set_weights([np.zeros_like(kernel), np.full_like(bias, raw)])
        _, log_var = vae.encode(random_images(2))
        np.testing.assert_allclose(ops.convert_to_numpy(log_var), expected * np.tanh(raw / expected), rtol=1e-6)
        assert np.all(np.abs(ops.convert_to_numpy(log_var)) < LOG_VAR_LIMIT)


def test_a_dimension_driven_past_the_log_var_bound_recovers():
    """A log-variance pushed far below the bound costs KL; with a hard clip its gradient there is zero and the
    dimension stays, with the tanh bound minimising the KL (by the log-variance's bias) brings it back."""
    import tensorflow as tf

    images = random_images(8, 16)
    for bound, expect_recovery in [("tanh", True), ("clip", False)]:
        vae = thesis_vae(16, 2)
        dense = vae.encoder.get_layer("log_var")
        kernel, bias = dense.get_weights()
        dense.set_weights([np.zeros_like(kernel), np.array([-3 * LOG_VAR_LIMIT, 0.0], np.float32)])
        optimizer = keras.optimizers.Adam(1.0)

        def first_log_var():
            mu, log_var = vae.encode(images)
            if bound == "clip":
                log_var = ops.clip(vae.encoder(images)[1], -LOG_VAR_LIMIT, LOG_VAR_LIMIT)
            return mu, log_var

        for _ in range(60):
            with tf.GradientTape() as tape:
                mu, log_var = first_log_var()
                _, _, kl = loss_terms(images, images, mu, log_var, 1.0)
            optimizer.apply_gradients([(tape.gradient(kl, dense.bias), dense.bias)])
        final = float(ops.convert_to_numpy(first_log_var()[1])[:, 0].mean())
        assert (final > -0.5 * LOG_VAR_LIMIT) == expect_recovery, (bound, final)


def test_gaussian_reconstruction_term_is_the_optimal_sigma_nll():
    rng = np.random.default_rng(7)
    x, x_hat = random_images(4, 8, seed=8), random_images(4, 8, seed=9)
    mu, log_var = rng.normal(size=(2, 4, 3)).astype("float32")
    _, reconstruction, kl = (
        float(v) for v in loss_terms(x, x_hat, mu, log_var, 1000.0, reconstruction_loss="gaussian")
    )
    squared = ((x - x_hat) ** 2).astype(np.float64)
    variance = squared.mean()
    pixels = 8 * 8 * 3
    per_image = squared.sum(axis=(1, 2, 3)) / (2 * variance) + pixels / 2 * np.log(2 * np.pi * variance)
    assert reconstruction == pytest.approx(per_image.mean(), rel=1e-4)
    assert kl == pytest.approx(numpy_vae_loss(x, x_hat, mu, log_var, 1.0)[2], rel=1e-5)
    # independent of r_loss_factor; the same image-size balance at any size (per pixel it is one NLL term)
    assert float(loss_terms(x, x_hat, mu, log_var, 1.0, reconstruction_loss="gaussian")[1]) == pytest.approx(
        reconstruction, rel=1e-6
    )


def test_per_channel_sigma_is_one_optimal_sigma_nll_per_channel():
    rng = np.random.default_rng(3)
    x, x_hat = random_images(3, 4, seed=4), random_images(3, 4, seed=5)
    x_hat[..., 0] = np.clip(x[..., 0] + 0.3, 0, 1)  # channels of very different errors
    mu, log_var = rng.normal(size=(2, 3, 2)).astype("float32")
    loss = loss_terms(x, x_hat, mu, log_var, 1.0, reconstruction_loss="gaussian", sigma="per_channel")
    total, reconstruction, kl = (float(v) for v in loss)
    expected = 0.0  # by hand: per channel c, sigma_c^2 = the batch's mean squared error in c
    for c in range(3):
        squared = ((x[..., c] - x_hat[..., c]) ** 2).astype(np.float64)
        variance = squared.mean()
        expected += (squared.sum(axis=(1, 2)) / (2 * variance) + 16 / 2 * np.log(2 * np.pi * variance)).mean()
    assert reconstruction == pytest.approx(expected, rel=1e-4)
    assert total == pytest.approx(reconstruction + kl, rel=1e-5)
    shared = float(loss_terms(x, x_hat, mu, log_var, 1.0, reconstruction_loss="gaussian")[1])
    assert reconstruction < shared - 1.0  # a variance per channel fits unequal errors better


def test_per_channel_sigma_equals_shared_for_equal_channel_errors():
    x = np.repeat(0.25 + 0.5 * random_images(4, 8, seed=11)[..., :1], 3, axis=-1)
    x_hat = x + np.repeat(0.2 * random_images(4, 8, seed=12)[..., :1] - 0.1, 3, axis=-1)  # equal channel errors
    mu, log_var = np.zeros((2, 4, 3), np.float32)
    shared = loss_terms(x, x_hat, mu, log_var, 1.0, reconstruction_loss="gaussian")
    per_channel = loss_terms(x, x_hat, mu, log_var, 1.0, reconstruction_loss="gaussian", sigma="per_channel")
    np.testing.assert_allclose([float(v) for v in per_channel], [float(v) for v in shared], rtol=1e-5)
    # the mse loss ignores sigma; an unknown sigma is named
    mse = [float(v) for v in loss_terms(x, x_hat, mu, log_var, 10.0)]
    assert [float(v) for v in loss_terms(x, x_hat, mu, log_var, 10.0, sigma="per_channel")] == mse
    with pytest.raises(ValueError, match="sigma must be one of"):
        thesis_vae(16, 2, sigma="per_pixel")


def test_per_channel_sigma_model_trains_and_reloads(tmp_path):
    vae = thesis_vae(16, 2, reconstruction_loss="gaussian", sigma="per_channel")
    vae.compile(optimizer="adam", jit_compile=False)
    images = random_images(8, 16)
    history = vae.fit(images, epochs=1, batch_size=4, verbose=0).history
    assert np.isfinite(history["loss"][0])
    vae.save(tmp_path / "vae.keras")
    loaded = load_vae(tmp_path / "vae.keras")
    assert (loaded.reconstruction_loss, loaded.sigma) == ("gaussian", "per_channel")
    assert build_vae(16, 2, **vae_settings()).sigma == "shared"
    # a train: setting (schema default shared) that reaches the model as the other model settings do
    settings = training_settings({"sigma": "per_channel"})
    assert TRAIN_DEFAULTS["sigma"] == "shared" and "sigma" in MODEL_KEYS
    assert build_vae(16, 2, **vae_settings(settings)).sigma == "per_channel"


def test_wide_architecture_and_unknown_names():
    vae = thesis_vae(32, 4, architecture="wide", reconstruction_loss="gaussian")
    convs = [layer.filters for layer in vae.encoder.layers if isinstance(layer, layers.Conv2D)]
    deconvs = [layer.filters for layer in vae.decoder.layers if isinstance(layer, layers.Conv2DTranspose)]
    assert convs == [32, 64, 128] and deconvs == [128, 64, 32, 3]
    assert vae.count_params() > thesis_vae(32, 4).count_params()
    with pytest.raises(ValueError, match="architecture must be one of"):
        thesis_vae(32, 4, architecture="huge")
    with pytest.raises(ValueError, match="reconstruction_loss must be one of"):
        thesis_vae(32, 4, reconstruction_loss="l1")


def test_a_file_that_is_not_a_keras_model_is_named(tmp_path):
    text = tmp_path / "model.keras"
    text.write_text("not a model")
    with pytest.raises(ValueError, match="is not a Keras model file"):
        load_vae(text)
    with pytest.raises(FileNotFoundError, match="model not found"):
        load_vae(tmp_path / "absent.keras")


def numpy_vae_loss(x, x_hat, mu, log_var, r_loss_factor):
    reconstruction = r_loss_factor * ((x - x_hat) ** 2).mean(axis=(1, 2, 3))
    kl = -0.5 * (1 + log_var - mu**2 - np.exp(log_var)).sum(axis=1)
    return (reconstruction + kl).mean(), reconstruction.mean(), kl.mean()


def test_loss_is_r_times_mse_plus_kl():
    rng = np.random.default_rng(1)
    x, x_hat = random_images(3, 8, seed=2), random_images(3, 8, seed=3)
    mu = rng.normal(size=(3, 5)).astype("float32")
    log_var = rng.normal(size=(3, 5)).astype("float32")
    losses = [float(value) for value in loss_terms(x, x_hat, mu, log_var, 1000.0)]
    np.testing.assert_allclose(losses, numpy_vae_loss(x, x_hat, mu, log_var, 1000.0), rtol=1e-5)
    # zero KL for the prior itself, reconstruction term scales with r_loss_factor
    _, _, kl = loss_terms(x, x_hat, np.zeros_like(mu), np.zeros_like(log_var), 1000.0)
    assert float(kl) == 0.0
    _, small, _ = loss_terms(x, x_hat, mu, log_var, 1.0)
    assert float(small) == pytest.approx(losses[1] / 1000.0, rel=1e-5)


def test_compute_loss_uses_the_model_outputs():
    vae = thesis_vae(32, 4, r_loss_factor=500.0)
    vae.compile(optimizer="adam", jit_compile=False)
    images = random_images(4)
    outputs = vae(images)
    loss = float(vae.compute_loss(x=images, y_pred=outputs))
    expected = numpy_vae_loss(images, *[ops.convert_to_numpy(o) for o in outputs], 500.0)
    assert loss == pytest.approx(expected[0], rel=1e-5)
    assert float(vae.reconstruction_loss_tracker.result()) == pytest.approx(expected[1], rel=1e-5)
    assert float(vae.kl_loss_tracker.result()) == pytest.approx(expected[2], rel=1e-5)


def test_fit_reports_loss_terms_and_save_load_round_trip(tmp_path):
    keras.utils.set_random_seed(0)
    vae = thesis_vae(32, 4, dropout=0.1, r_loss_factor=100.0)
    vae.compile(optimizer=keras.optimizers.Adam(5e-4), jit_compile=False)
    images = random_images(16)
    history = vae.fit(images, validation_data=(images[:8],), epochs=1, batch_size=8, verbose=0)
    assert set(history.history) == {
        "loss",
        "reconstruction_loss",
        "kl_loss",
        "val_loss",
        "val_reconstruction_loss",
        "val_kl_loss",
    }
    logs = {name: values[0] for name, values in history.history.items()}
    assert logs["loss"] == pytest.approx(logs["reconstruction_loss"] + logs["kl_loss"], rel=1e-4)

    vae.save(tmp_path / "vae.keras")
    loaded = load_vae(tmp_path / "vae.keras")
    assert isinstance(loaded, VAE)
    assert (loaded.image_size, loaded.latent_dim, loaded.dropout, loaded.r_loss_factor) == (32, 4, 0.1, 100.0)
    assert (loaded.architecture, loaded.reconstruction_loss) == ("thesis", "mse")
    np.testing.assert_array_equal(
        ops.convert_to_numpy(vae.reconstruct(images)), ops.convert_to_numpy(loaded.reconstruct(images))
    )
    for original, restored in zip(vae.weights, loaded.weights):
        np.testing.assert_array_equal(original.numpy(), restored.numpy())


def test_kl_weight_is_beta_and_warmup_follows_the_optimizer_steps():
    rng = np.random.default_rng(4)
    x, x_hat = random_images(3, 8, seed=5), random_images(3, 8, seed=6)
    mu, log_var = rng.normal(size=(2, 3, 5)).astype("float32")
    total, reconstruction, kl = (float(v) for v in loss_terms(x, x_hat, mu, log_var, 10.0, kl_weight=0.25))
    assert total == pytest.approx(reconstruction + 0.25 * kl, rel=1e-6)

    vae = thesis_vae(16, 2, kl_weight=0.5)
    vae.compile(optimizer="adam", jit_compile=False)
    assert vae.beta(training=True) == 0.5  # no warm-up: the configured beta
    vae.set_kl_warmup(warmup_epochs=4, steps_per_epoch=10)
    vae.optimizer.build(vae.trainable_variables)
    for steps, training, expected in [
        (0, True, 0.125),
        (9, True, 0.125),
        (10, True, 0.25),
        (10, False, 0.125),
        (35, True, 0.5),
        (100, True, 0.5),
    ]:
        vae.optimizer.iterations.assign(steps)
        assert float(vae.beta(training)) == pytest.approx(expected)


def test_batch_norm_momentum_is_configurable_and_saved(tmp_path):
    vae = thesis_vae(16, 2, batch_norm_momentum=0.8)
    momenta = {
        layer.momentum
        for model in (vae.encoder, vae.decoder)
        for layer in model.layers
        if isinstance(layer, layers.BatchNormalization)
    }
    assert momenta == {0.8}
    vae.save(tmp_path / "vae.keras")
    assert load_vae(tmp_path / "vae.keras").batch_norm_momentum == 0.8
    assert build_vae(16, 2, **vae_settings()).batch_norm_momentum == 0.9


def test_uint8_images_are_scaled_by_the_model():
    vae = thesis_vae(16, 2)
    images = np.random.default_rng(3).integers(0, 256, (2, 16, 16, 3)).astype(np.uint8)
    np.testing.assert_allclose(
        ops.convert_to_numpy(vae.reconstruct(images)),
        ops.convert_to_numpy(vae.reconstruct(images.astype("float32") / 255)),
        rtol=1e-6,
    )
    vae.compile(optimizer="adam", jit_compile=False)
    outputs = vae(images.astype("float32") / 255)
    assert float(vae.compute_loss(x=images, y_pred=outputs)) == pytest.approx(
        float(vae.compute_loss(x=images.astype("float32") / 255, y_pred=outputs)), rel=1e-6
    )


def test_a_model_saved_before_a_setting_existed_still_loads(tmp_path):
    """A user's model.keras from before train.sigma (or the architecture and loss settings) loads as it was built."""
    import json
    import zipfile

    saved = tmp_path / "saved.keras"
    build_vae(16, 3, **vae_settings({"architecture": "thesis", "reconstruction_loss": "mse"})).save(saved)
    earlier = tmp_path / "earlier.keras"
    with zipfile.ZipFile(saved) as source, zipfile.ZipFile(earlier, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "config.json":
                config = json.loads(data)
                for key in ("sigma", "architecture", "reconstruction_loss"):
                    del config["config"][key]
                data = json.dumps(config).encode()
            target.writestr(item, data)
    vae = load_vae(earlier)
    assert (vae.sigma, vae.architecture, vae.reconstruction_loss) == ("shared", "thesis", "mse")
    images = np.random.default_rng(0).random((2, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(vae.encode(images)[0], load_vae(saved).encode(images)[0], rtol=1e-6)


def test_info_nce_is_log_batch_at_chance_and_small_for_matching_views():
    """InfoNCE of identical views of distinct cells is near 0; of views unrelated to each other, near log(batch)."""
    mu = np.eye(8, dtype="float32") * 5.0
    assert float(info_nce(mu, mu, 0.1)) < 1e-3
    same = np.ones((8, 4), dtype="float32")
    assert float(info_nce(same, same, 0.1)) == pytest.approx(np.log(8), rel=1e-5)


def test_other_view_is_a_flip_or_rotation_with_channel_jitter():
    """Without jitter the second view is one of the image's 8 flips/rotations; with it, each channel is scaled."""
    images = random_images(16, size=8)
    vae = build_vae(8, 2, **vae_settings({"invariance_weight": 1.0, "invariance_jitter": 0.0}))
    views = ops.convert_to_numpy(vae.other_view(images))
    for image, view in zip(images, views):
        dihedral = [np.rot90(flipped, k) for flipped in (image, image[:, ::-1]) for k in range(4)]
        assert any(np.array_equal(view, candidate) for candidate in dihedral)
    jittered = build_vae(8, 2, **vae_settings({"invariance_weight": 1.0, "invariance_jitter": 0.5}))
    ratios = ops.convert_to_numpy(jittered.other_view(np.full((4, 8, 8, 3), 0.5, "float32")))[:, 0, 0] / 0.5
    assert np.all((ratios >= 0.5) & (ratios <= 1.5)) and np.ptp(ratios) > 0


def flip_agreement(vae, images):
    """Mean cosine similarity of mu of each cell to mu of its mirror image, less its mean similarity to the other
    cells' mirror images (the cosine is what profiles are compared by)."""
    mu, flipped = (ops.convert_to_numpy(vae.encode(batch)[0]) for batch in (images, images[:, :, ::-1]))
    mu, flipped = (m / np.linalg.norm(m, axis=1, keepdims=True) for m in (mu, flipped))
    similarity = mu @ flipped.T
    return np.diag(similarity).mean() - similarity[~np.eye(len(mu), dtype=bool)].mean()


def test_the_invariance_term_brings_mu_of_flipped_cells_closer():
    """After the same short training, mu of a cell and of its mirror image agree better (relative to the other
    cells) with the invariance term than without it; the term is logged."""
    rng = np.random.default_rng(0)
    images = np.zeros((64, 16, 16, 3), "float32")
    for image in images:  # asymmetric cells: a bright blob off centre in one channel
        row, col, channel = rng.integers(2, 14), rng.integers(2, 8), rng.integers(3)
        image[row - 2 : row + 2, col - 2 : col + 2, channel] = 1.0
    agreement = {}
    for weight in (0.0, 20.0):
        keras.utils.set_random_seed(1)
        vae = build_vae(16, 4, **vae_settings({"invariance_weight": weight}))
        vae.compile(optimizer=keras.optimizers.Adam(1e-3))
        history = vae.fit(images, epochs=15, batch_size=16, verbose=0).history
        assert ("invariance_loss" in history) == bool(weight)
        agreement[weight] = flip_agreement(vae, images)
    assert agreement[20.0] > agreement[0.0] + 0.2


def dense_parameters(vae, weights="all"):
    """The parameters of the encoder's and decoder's dense layers (weights="kernel": their weight matrices only)."""
    dense = [layer for model in (vae.encoder, vae.decoder) for layer in model.layers if isinstance(layer, layers.Dense)]
    if weights == "kernel":
        return sum(int(np.prod(layer.kernel.shape)) for layer in dense)
    return sum(layer.count_params() for layer in dense)


@pytest.mark.parametrize("latent_dim", [2, 75, 150])
def test_deep_architecture_parameter_count_and_smaller_dense_layers(latent_dim):
    """`deep` (a fourth stride-2 stage) at 128 px: an 8x8x128 map, so its dense layers' weight matrices are 4x
    smaller than wide's 16x16x128 ones (3.9997x with their biases, which scale with z on both)."""
    vae = build_vae(128, latent_dim, **vae_settings({"architecture": "deep"}))
    convs = [layer.filters for layer in vae.encoder.layers if isinstance(layer, layers.Conv2D)]
    deconvs = [layer.filters for layer in vae.decoder.layers if isinstance(layer, layers.Conv2DTranspose)]
    assert convs == [32, 64, 128, 128] and deconvs == [128, 128, 64, 32, 3]
    assert vae.count_params() == 640_131 + 24_578 * latent_dim
    wide = build_vae(128, latent_dim, **vae_settings({"architecture": "wide"}))
    assert dense_parameters(wide, "kernel") == 4 * dense_parameters(vae, "kernel")
    assert dense_parameters(wide) > 3.99 * dense_parameters(vae)
    assert TRAIN_DEFAULTS["architecture"] == "wide"
    with pytest.raises(ValueError, match="image_size must be a multiple of 16"):
        build_vae(40, 2, **vae_settings({"architecture": "deep"}))


def cell_loss(x, x_hat, mask, sigma="shared"):
    mu, log_var = np.zeros((len(x), 2), np.float32), np.zeros((len(x), 2), np.float32)
    return [
        float(v)
        for v in vae_loss(
            x, x_hat, mu, log_var, 1.0, kl_weight=1.0, reconstruction_loss="gaussian", sigma=sigma, mask=mask
        )
    ]


@pytest.mark.parametrize("sigma", ["shared", "per_channel"])
def test_cell_support_loss_ignores_the_background_and_equals_the_window_loss_on_an_all_ones_mask(sigma):
    rng = np.random.default_rng(3)
    x, x_hat = rng.random((4, 16, 16, 3), dtype=np.float32), rng.random((4, 16, 16, 3), dtype=np.float32)
    mask = np.zeros((4, 16, 16), np.float32)
    mask[:, 4:12, 3:11] = 1.0
    other = np.where(mask[..., None] > 0, x, rng.random(x.shape, dtype=np.float32))  # another background
    np.testing.assert_allclose(cell_loss(other, x_hat, mask, sigma), cell_loss(x, x_hat, mask, sigma), rtol=1e-6)
    window = cell_loss(x, x_hat, None, sigma)
    assert window != cell_loss(other, x_hat, None, sigma)  # the window's loss sees the background
    np.testing.assert_allclose(cell_loss(x, x_hat, np.ones((4, 16, 16), np.float32), sigma), window, rtol=1e-5)


def test_cell_support_model_reads_the_mask_channel_trains_and_reloads(tmp_path):
    """A 4-channel batch (RGB + the cell mask): the encoder sees the RGB, the cell-support loss the mask; a model
    saved before likelihood_support existed loads as a window model."""
    vae = build_vae(16, 2, **vae_settings({"likelihood_support": "cell", "reconstruction_loss": "gaussian"}))
    rgb = (np.random.default_rng(0).random((8, 16, 16, 3)) * 255).astype(np.uint8)
    mask = np.zeros((8, 16, 16, 1), np.uint8)
    mask[:, 4:12, 4:12] = 255
    batch = np.concatenate([rgb, mask], axis=-1)
    np.testing.assert_allclose(ops.convert_to_numpy(vae.encode(batch)[0]), ops.convert_to_numpy(vae.encode(rgb)[0]))
    vae.compile(optimizer="adam", jit_compile=False)
    assert np.isfinite(vae.fit(batch, epochs=1, batch_size=4, verbose=0).history["loss"][0])
    vae.save(tmp_path / "vae.keras")
    assert load_vae(tmp_path / "vae.keras").likelihood_support == "cell"
    config = vae.get_config()
    del config["likelihood_support"]
    assert VAE.from_config(config).likelihood_support == "window"
    y_pred = vae(batch[..., :3])
    with pytest.raises(ValueError, match="needs each cell's mask as a 4th channel"):
        vae.compute_loss(x=batch[..., :3], y_pred=y_pred)
    with pytest.raises(ValueError, match="likelihood_support must be one of"):
        build_vae(16, 2, **vae_settings({"likelihood_support": "ring"}))


def test_the_cell_mask_travels_crop_png_shard_loss(tmp_path):
    """A segmentation crop (zero outside the cell) composed with its mask as the PNG's alpha, read back as a 4th
    channel, written to a shard, streamed as a batch: the cell-support loss sees only the cell, so another
    background in the composed cells changes nothing."""
    from PIL import Image

    from cellvae.core.files import read_pngs
    from cellvae.imaging.png import compose_cell
    from cellvae.imaging.shards import cell_dataset, write_shard

    rng = np.random.default_rng(5)
    crops = []
    for index in range(4):
        crop = np.zeros((20, 16, 3), np.uint16)
        crop[4 + index : 16, 3:13] = rng.integers(100, 4000, (12 - index, 10, 3))  # the cell; zero around it
        crops.append(crop)
    ranges = np.array([[0.0, 4000.0]] * 3)
    paths = []
    for index, crop in enumerate(crops):
        composed = compose_cell(crop, ranges, 16, scale=0.5, alpha=True)
        np.testing.assert_array_equal(composed[..., :3], compose_cell(crop, ranges, 16, scale=0.5))
        assert set(np.unique(composed[..., 3])) == {0, 255}
        paths.append(tmp_path / f"cell{index}.png")
        Image.fromarray(composed).save(paths[-1])
    cells = read_pngs(paths, mask=True)
    assert cells.shape == (4, 16, 16, 4)
    np.testing.assert_array_equal(cells[..., :3], read_pngs(paths))
    write_shard(tmp_path / "cells.npy", cells)
    data = dict(shuffle_buffer=8, cache_bytes=1 << 20, parallel_reads=1)
    (batch,) = [np.asarray(b) for b in cell_dataset([tmp_path / "cells.npy"], 4, **data)]
    np.testing.assert_array_equal(batch, cells)

    vae = build_vae(16, 2, **vae_settings({"likelihood_support": "cell", "reconstruction_loss": "gaussian"}))
    other = batch.copy()
    outside = other[..., 3:] == 0
    other[..., :3] = np.where(outside, rng.integers(0, 256, other[..., :3].shape), other[..., :3])
    reconstructions = np.asarray(rng.random((4, 16, 16, 3)), np.float32)
    y_pred = (reconstructions, np.zeros((4, 2), np.float32), np.zeros((4, 2), np.float32))
    losses = [float(vae.compute_loss(x=cells_batch, y_pred=y_pred, training=False)) for cells_batch in (batch, other)]
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-6)
    window = build_vae(16, 2, **vae_settings({"reconstruction_loss": "gaussian"}))
    assert float(window.compute_loss(x=batch[..., :3], y_pred=y_pred, training=False)) != float(
        window.compute_loss(x=other[..., :3], y_pred=y_pred, training=False)
    )
