"""Convolutional variational autoencoder of single-cell images.

Two architectures: `thesis` (encoder Conv2D 32/64/64, decoder Conv2DTranspose 64/64/32, as in the 2020
thesis), `wide` (encoder 32/64/128, decoder 128/64/32: twice the channels where the image is smallest) and
`deep` (encoder 32/64/128/128, decoder 128/128/64/32: a fourth stride-2 stage, so at 128 px the dense layers
are 4x smaller than wide's and the receptive field larger).
Two reconstruction terms: `mse` (the thesis: r_loss_factor * mean squared error) and `gaussian` (the
negative log-likelihood of a Gaussian decoder whose variance is the batch's own MSE, the "optimal sigma"
of Rybkin et al. 2021: it balances reconstruction and KL without a hand-tuned factor, at any image size;
`sigma: per_channel` fits one variance per RGB channel, whose errors differ). `likelihood_support: cell` sums
the Gaussian term over the cell's pixels only (the segmentation's mask, a 4th input channel), with the variance
estimated from them: the masked background is not modelled at all.

Backend-agnostic Keras 3: only `keras.ops`, so it runs on TensorFlow, JAX and PyTorch.
Images are float tensors in [0, 1] of shape (image_size, image_size, 3), or uint8 (0..255) ones,
which the model scales itself.
"""

import math
import zipfile
from pathlib import Path

import keras
from keras import layers, ops

from cellvae.core.config import (
    ARCHITECTURES,
    LIKELIHOOD_SUPPORTS,
    MODEL_KEYS,
    RECONSTRUCTION_LOSSES,
    SIGMAS,
    TRAIN_DEFAULTS,
)

LOG_VAR_LIMIT = 20.0  # soft bound of the posterior log-variance: LIMIT * tanh(log_var / LIMIT)
MIN_VARIANCE = 1e-6  # floor of the Gaussian decoder's variance


def conv_block(x, layer, batch_norm, dropout, momentum):
    """Convolution, optional batch normalisation, LeakyReLU, optional dropout."""
    x = layer(x)
    if batch_norm:
        x = layers.BatchNormalization(momentum=momentum)(x)
    x = layers.LeakyReLU()(x)
    if dropout > 0:
        x = layers.Dropout(dropout)(x)
    return x


def build_encoder(image_size, latent_dim, batch_norm, dropout, momentum, architecture):
    """Images -> (mu, log_var) of the approximate posterior q(z | x)."""
    images = keras.Input(shape=(image_size, image_size, 3), name="images")
    x = images
    for filters in ARCHITECTURES[architecture][0]:
        conv = layers.Conv2D(filters, 3, strides=2, padding="same")
        x = conv_block(x, conv, batch_norm, dropout, momentum)
    x = layers.Flatten()(x)
    mu = layers.Dense(latent_dim, name="mu", dtype="float32")(x)
    log_var = layers.Dense(latent_dim, name="log_var", dtype="float32")(x)
    return keras.Model(images, [mu, log_var], name="encoder")


def build_decoder(image_size, latent_dim, batch_norm, dropout, momentum, architecture):
    """Latent vectors -> images in [0, 1] (sigmoid output)."""
    encoder_filters, decoder_filters = ARCHITECTURES[architecture]
    side = image_size // 2 ** len(encoder_filters)
    z = keras.Input(shape=(latent_dim,), name="z")
    x = layers.Dense(side * side * encoder_filters[-1])(z)
    x = layers.Reshape((side, side, encoder_filters[-1]))(x)
    for filters in decoder_filters:
        conv = layers.Conv2DTranspose(filters, 3, strides=2, padding="same")
        x = conv_block(x, conv, batch_norm, dropout, momentum)
    images = layers.Conv2DTranspose(3, 3, strides=1, padding="same", activation="sigmoid", dtype="float32")(x)
    return keras.Model(z, images, name="decoder")


def vae_loss(images, reconstructions, mu, log_var, r_loss_factor, *, kl_weight, reconstruction_loss, sigma, mask=None):
    """Batch means of (total, reconstruction, KL) loss, in float32.

    Per image, reconstruction is
    - `mse`: r_loss_factor * mean squared error over pixels and channels (the thesis);
    - `gaussian`: -log N(x | x_hat, sigma^2 I) in nats, summed over the D pixel values, with sigma^2 the
      batch's mean squared error (floored at MIN_VARIANCE): sum (x - x_hat)^2 / (2 sigma^2) + D/2 log(2 pi sigma^2);
      with sigma="per_channel" one sigma_c^2 per channel c, the batch's mean squared error in that channel (floored),
      summed over channels: the same as "shared" when the channels' errors are equal.
    With a `mask` (batch × H × W, or × 1; 1 inside the cell, 0 outside: likelihood_support "cell") the gaussian
    term is summed over the cell's pixels only and sigma^2 (shared or per channel) is the batch's mean squared
    error over those pixels: the background is not modelled, so what lies outside the cell changes nothing.
    An all-ones mask gives the window's loss. `mse` ignores the mask.
    KL = KL(N(mu, exp(log_var)) || N(0, I)) summed over latent dimensions;
    total = reconstruction + kl_weight * KL (kl_weight is the beta of a beta-VAE).
    """
    images, reconstructions, mu, log_var = (ops.cast(t, "float32") for t in (images, reconstructions, mu, log_var))
    if sigma not in SIGMAS:
        raise ValueError(f"sigma must be one of {SIGMAS}, got {sigma!r}")
    if mask is not None and reconstruction_loss == "gaussian":
        reconstruction = cell_gaussian_nll(images, reconstructions, mask, sigma)
        kl = -0.5 * ops.sum(1.0 + log_var - ops.square(mu) - ops.exp(log_var), axis=1)
        return ops.mean(reconstruction + kl_weight * kl), ops.mean(reconstruction), ops.mean(kl)
    channel_error = ops.mean(ops.square(images - reconstructions), axis=(1, 2))  # batch × channels
    squared_error = ops.mean(channel_error, axis=1)
    if reconstruction_loss == "mse":
        reconstruction = r_loss_factor * squared_error
    elif reconstruction_loss == "gaussian" and sigma == "shared":
        pixels = math.prod(images.shape[1:])
        variance = ops.maximum(ops.mean(squared_error), MIN_VARIANCE)
        reconstruction = 0.5 * pixels * (squared_error / variance + ops.log(2.0 * math.pi * variance))
    elif reconstruction_loss == "gaussian":
        pixels = math.prod(images.shape[1:3])  # per channel
        variance = ops.maximum(ops.mean(channel_error, axis=0), MIN_VARIANCE)  # one per channel
        per_channel = channel_error / variance + ops.log(2.0 * math.pi * variance)
        reconstruction = 0.5 * pixels * ops.sum(per_channel, axis=1)
    else:
        raise ValueError(f"reconstruction_loss must be one of {RECONSTRUCTION_LOSSES}, got {reconstruction_loss!r}")
    kl = -0.5 * ops.sum(1.0 + log_var - ops.square(mu) - ops.exp(log_var), axis=1)
    return ops.mean(reconstruction + kl_weight * kl), ops.mean(reconstruction), ops.mean(kl)


def cell_gaussian_nll(images, reconstructions, mask, sigma):
    """Per image, -log N(x | x_hat, sigma^2) in nats over the mask's pixels (all channels), sigma^2 the batch's
    mean squared error over the masked pixels (shared, or one per channel), floored at MIN_VARIANCE."""
    mask = ops.cast(mask, "float32")
    if len(mask.shape) == 3:
        mask = ops.expand_dims(mask, -1)
    mask = mask[..., :1]
    squared = ops.square(images - reconstructions) * mask  # batch × H × W × C, 0 outside the cell
    channel_sum = ops.sum(squared, axis=(1, 2))  # batch × channels
    pixels = ops.sum(mask, axis=(1, 2, 3))  # per image: the cell's pixels
    channels = images.shape[-1]
    if sigma == "shared":
        variance = ops.maximum(ops.sum(channel_sum) / ops.maximum(ops.sum(pixels) * channels, 1.0), MIN_VARIANCE)
        return 0.5 * (ops.sum(channel_sum, axis=1) / variance + pixels * channels * ops.log(2.0 * math.pi * variance))
    variance = ops.maximum(ops.sum(channel_sum, axis=0) / ops.maximum(ops.sum(pixels), 1.0), MIN_VARIANCE)
    per_channel = channel_sum / variance + ops.expand_dims(pixels, 1) * ops.log(2.0 * math.pi * variance)
    return 0.5 * ops.sum(per_channel, axis=1)


def split_mask(images):
    """(RGB images, mask or None) of a batch with 3 channels, or 4: RGB + the cell mask (nonzero inside the cell)."""
    if images.shape[-1] == 4:
        return images[..., :3], ops.cast(images[..., 3:] > 0, "float32")
    return images, None


def info_nce(mu, other_mu, temperature):
    """Symmetric InfoNCE (NT-Xent) of two views' posterior means, in nats: each cell's mu must pick its own other
    view among the batch's by cosine similarity / temperature (and the other way round); log(batch) at chance."""
    first, second = (ops.cast(m, "float32") for m in (mu, other_mu))
    first = first / ops.maximum(ops.norm(first, axis=1, keepdims=True), 1e-8)
    second = second / ops.maximum(ops.norm(second, axis=1, keepdims=True), 1e-8)
    logits = ops.matmul(first, ops.transpose(second)) / temperature
    forward = ops.diagonal(ops.log_softmax(logits, axis=1))
    backward = ops.diagonal(ops.log_softmax(logits, axis=0))
    return -0.5 * ops.mean(forward + backward)


def as_unit_range(images):
    """uint8 images (as the input pipeline delivers them) scaled to float32 [0, 1]; floats unchanged."""
    if keras.backend.standardize_dtype(images.dtype) == "uint8":
        return ops.cast(images, "float32") / 255.0
    return images


@keras.saving.register_keras_serializable(package="cellvae")
class Sampling(layers.Layer):
    """Reparameterisation trick: z = mu + exp(log_var / 2) * epsilon, epsilon ~ N(0, I)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator()

    def call(self, inputs):
        mu, log_var = inputs
        epsilon = keras.random.normal(ops.shape(mu), seed=self.seed_generator)
        return mu + ops.exp(0.5 * log_var) * epsilon


@keras.saving.register_keras_serializable(package="cellvae")
class VAE(keras.Model):
    """Encoder + sampling + decoder, trained on a reconstruction term (vae_loss) + beta * KL.

    Every model setting is a required keyword argument (cellvae.core.config.MODEL_KEYS): their defaults live in
    config/config.schema.yaml (train:) alone; cellvae.core.config.vae_settings gives them, with overrides.

    beta is kl_weight, or during a KL warm-up (set_kl_warmup) kl_weight * min(1, epoch / warmup_epochs)
    for epochs counted from 1, derived from the optimizer's step count (so it resumes with it).

    `call` returns (reconstruction from a sampled z, mu, log_var): the stochastic
    forward pass whose loss `fit` and `evaluate` report. For evaluation use
    `reconstruct`, which decodes mu and is deterministic.
    """

    def __init__(self, image_size, latent_dim, **kwargs):
        settings = {key: kwargs.pop(key) for key in MODEL_KEYS if key in kwargs}
        missing = sorted(set(MODEL_KEYS) - set(settings))
        if missing:
            raise TypeError(f"VAE needs the settings {missing} (cellvae.core.config.vae_settings gives them all)")
        super().__init__(**kwargs)
        architecture, reconstruction_loss = settings["architecture"], settings["reconstruction_loss"]
        sigma = settings["sigma"]
        if architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {sorted(ARCHITECTURES)}, got {architecture!r}")
        if reconstruction_loss not in RECONSTRUCTION_LOSSES:
            raise ValueError(f"reconstruction_loss must be one of {RECONSTRUCTION_LOSSES}, got {reconstruction_loss!r}")
        if sigma not in SIGMAS:
            raise ValueError(f"sigma must be one of {SIGMAS}, got {sigma!r}")
        if settings["likelihood_support"] not in LIKELIHOOD_SUPPORTS:
            raise ValueError(
                f"likelihood_support must be one of {LIKELIHOOD_SUPPORTS}, got {settings['likelihood_support']!r}"
            )
        stride = 2 ** len(ARCHITECTURES[architecture][0])
        if image_size % stride:
            raise ValueError(f"image_size must be a multiple of {stride}, got {image_size}")
        self.image_size = image_size
        self.latent_dim = latent_dim
        self.settings = settings
        for key, value in settings.items():
            setattr(self, key, value)
        batch_norm, dropout, momentum = settings["batch_norm"], settings["dropout"], settings["batch_norm_momentum"]
        previous_policy = keras.config.dtype_policy()
        keras.config.set_dtype_policy(self.dtype_policy)  # e.g. mixed_float16, also when loaded
        try:
            self.encoder = build_encoder(image_size, latent_dim, batch_norm, dropout, momentum, architecture)
            self.decoder = build_decoder(image_size, latent_dim, batch_norm, dropout, momentum, architecture)
        finally:
            keras.config.set_dtype_policy(previous_policy)
        self.sampling = Sampling(name="sampling", dtype="float32")
        self.view_seeds = keras.random.SeedGenerator()
        self.kl_warmup_epochs, self.steps_per_epoch = 0, 1
        self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_loss_tracker = keras.metrics.Mean(name="kl_loss")
        if self.invariance_weight:
            self.invariance_loss_tracker = keras.metrics.Mean(name="invariance_loss")

    def set_kl_warmup(self, warmup_epochs, steps_per_epoch):
        """Ramp the KL weight linearly over the first warmup_epochs epochs of steps_per_epoch steps."""
        self.kl_warmup_epochs, self.steps_per_epoch = warmup_epochs, steps_per_epoch

    def beta(self, training):
        """The KL weight of the current step (training) or of the epoch just trained (validation)."""
        if not self.kl_warmup_epochs or self.optimizer is None:
            return self.kl_weight
        step = ops.cast(self.optimizer.iterations, "float32") - (0.0 if training else 1.0)
        epoch = ops.floor(ops.maximum(step, 0.0) / self.steps_per_epoch) + 1.0
        return self.kl_weight * ops.minimum(1.0, epoch / self.kl_warmup_epochs)

    def build(self, input_shape):
        self.sampling.build([(None, self.latent_dim)] * 2)
        self.built = True

    def encode(self, images, training=False):
        """Posterior mean and log-variance, the latter bounded smoothly to (-LOG_VAR_LIMIT, LOG_VAR_LIMIT):
        a tanh keeps a gradient everywhere, so a dimension pushed past the bound can come back (a hard clip
        has none there, and such a dimension costs about LOG_VAR_LIMIT / 2 nats of KL for good)."""
        mu, log_var = self.encoder(as_unit_range(split_mask(images)[0]), training=training)
        return mu, LOG_VAR_LIMIT * ops.tanh(log_var / LOG_VAR_LIMIT)

    def decode(self, z, training=False):
        """Images in [0, 1] from latent vectors."""
        return self.decoder(z, training=training)

    def reconstruct(self, images):
        """Deterministic reconstruction: decode the posterior mean, inference mode."""
        mu, _ = self.encode(images)
        return self.decode(mu)

    def call(self, images, training=False):
        mu, log_var = self.encode(images, training=training)
        z = self.sampling([mu, log_var])
        return self.decode(z, training=training), mu, log_var

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        reconstructions, mu, log_var = y_pred
        x, mask = split_mask(x)
        if self.likelihood_support == "cell" and mask is None:
            raise ValueError("likelihood_support: cell needs each cell's mask as a 4th channel of the batch (shards)")
        total, reconstruction, kl = vae_loss(
            as_unit_range(x),
            reconstructions,
            mu,
            log_var,
            self.r_loss_factor,
            kl_weight=self.beta(training),
            reconstruction_loss=self.reconstruction_loss,
            sigma=self.sigma,
            mask=mask if self.likelihood_support == "cell" else None,
        )
        batch_size = ops.shape(x)[0]
        self.reconstruction_loss_tracker.update_state(reconstruction, sample_weight=batch_size)
        self.kl_loss_tracker.update_state(kl, sample_weight=batch_size)
        if self.invariance_weight and training:
            other_mu, _ = self.encode(self.other_view(as_unit_range(x)), training=True)
            invariance = info_nce(mu, other_mu, self.invariance_temperature)
            self.invariance_loss_tracker.update_state(invariance, sample_weight=batch_size)
            total = total + self.invariance_weight * invariance
        return total

    def other_view(self, images):
        """A second view of each image of a [0, 1] batch: a random one of its 8 flips/rotations, each channel's
        intensity scaled by a random factor in [1 - invariance_jitter, 1 + invariance_jitter] (clipped to [0, 1])."""
        flips = keras.random.uniform((3, ops.shape(images)[0], 1, 1, 1), seed=self.view_seeds) < 0.5
        images = ops.where(flips[0], ops.transpose(images, (0, 2, 1, 3)), images)
        images = ops.where(flips[1], ops.flip(images, axis=1), images)
        images = ops.where(flips[2], ops.flip(images, axis=2), images)
        jitter = self.invariance_jitter
        scale = keras.random.uniform((ops.shape(images)[0], 1, 1, 3), 1.0 - jitter, 1.0 + jitter, seed=self.view_seeds)
        return ops.clip(images * scale, 0.0, 1.0)

    def get_config(self):
        config = super().get_config()
        config.update(image_size=self.image_size, latent_dim=self.latent_dim, **self.settings)
        return config

    @classmethod
    def from_config(cls, config):
        """A VAE from its saved config; a model saved before one of its settings existed was built as that
        setting's first value builds it (EARLIER_SAVES), so the user's older models still load."""
        return cls(**{**EARLIER_SAVES, **config})


EARLIER_SAVES = {
    "architecture": "thesis",
    "reconstruction_loss": "mse",
    "sigma": "shared",
    "likelihood_support": "window",
    "invariance_weight": 0.0,
    "invariance_temperature": TRAIN_DEFAULTS["invariance_temperature"],
    "invariance_jitter": TRAIN_DEFAULTS["invariance_jitter"],
}


def build_vae(image_size: int, latent_dim: int, **settings) -> VAE:
    """A built VAE for square RGB images of side image_size (a multiple of 8); settings are VAE's keyword
    arguments, all required (cellvae.core.config.vae_settings: the schema's train: defaults with overrides)."""
    vae = VAE(image_size, latent_dim, name=f"vae_z{latent_dim}", **settings)
    vae.build((None, image_size, image_size, 3))
    return vae


def load_vae(path) -> VAE:
    """A VAE saved with `save(...keras)`, without its optimizer state."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"model not found: {path}")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not a Keras model file (.keras archive); pass the model.keras written by train")
    vae = keras.saving.load_model(path, compile=False)
    if not isinstance(vae, VAE):
        raise ValueError(f"{path} holds a {type(vae).__name__}, not a cellvae VAE")
    return vae
