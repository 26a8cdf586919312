"""Convolutional variational autoencoder of single-cell images (the thesis architecture).

Backend-agnostic Keras 3: only `keras.ops`, so it runs on TensorFlow, JAX and PyTorch.
Images are float tensors in [0, 1] of shape (image_size, image_size, 3).
"""

import keras
from keras import layers, ops

ENCODER_FILTERS = (32, 64, 64)
DECODER_FILTERS = (64, 64, 32)
LOG_VAR_LIMIT = 20.0


def conv_block(x, layer, batch_norm, dropout):
    """Convolution, optional batch normalisation, LeakyReLU, optional dropout."""
    x = layer(x)
    if batch_norm:
        x = layers.BatchNormalization()(x)
    x = layers.LeakyReLU()(x)
    if dropout > 0:
        x = layers.Dropout(dropout)(x)
    return x


def build_encoder(image_size, latent_dim, batch_norm=True, dropout=0.0):
    """Images -> (mu, log_var) of the approximate posterior q(z | x)."""
    images = keras.Input(shape=(image_size, image_size, 3), name="images")
    x = images
    for filters in ENCODER_FILTERS:
        conv = layers.Conv2D(filters, 3, strides=2, padding="same")
        x = conv_block(x, conv, batch_norm, dropout)
    x = layers.Flatten()(x)
    mu = layers.Dense(latent_dim, name="mu")(x)
    log_var = layers.Dense(latent_dim, name="log_var")(x)
    return keras.Model(images, [mu, log_var], name="encoder")


def build_decoder(image_size, latent_dim, batch_norm=True, dropout=0.0):
    """Latent vectors -> images in [0, 1] (sigmoid output)."""
    side = image_size // 2 ** len(ENCODER_FILTERS)
    z = keras.Input(shape=(latent_dim,), name="z")
    x = layers.Dense(side * side * ENCODER_FILTERS[-1])(z)
    x = layers.Reshape((side, side, ENCODER_FILTERS[-1]))(x)
    for filters in DECODER_FILTERS:
        conv = layers.Conv2DTranspose(filters, 3, strides=2, padding="same")
        x = conv_block(x, conv, batch_norm, dropout)
    images = layers.Conv2DTranspose(3, 3, strides=1, padding="same", activation="sigmoid")(x)
    return keras.Model(z, images, name="decoder")


def vae_loss(images, reconstructions, mu, log_var, r_loss_factor):
    """Batch means of (total, reconstruction, KL) loss.

    Per image: reconstruction = r_loss_factor * mean squared error over pixels and channels,
    KL = KL(N(mu, exp(log_var)) || N(0, I)) summed over latent dimensions.
    """
    squared_error = ops.square(images - reconstructions)
    reconstruction = r_loss_factor * ops.mean(squared_error, axis=(1, 2, 3))
    kl = -0.5 * ops.sum(1.0 + log_var - ops.square(mu) - ops.exp(log_var), axis=1)
    return ops.mean(reconstruction + kl), ops.mean(reconstruction), ops.mean(kl)


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
    """Encoder + sampling + decoder, trained on r_loss_factor * MSE + KL.

    `call` returns (reconstruction from a sampled z, mu, log_var): the stochastic
    forward pass whose loss `fit` and `evaluate` report. For evaluation use
    `reconstruct`, which decodes mu and is deterministic.
    """

    def __init__(self, image_size, latent_dim, batch_norm=True, dropout=0.0,
                 r_loss_factor=1000.0, **kwargs):
        super().__init__(**kwargs)
        if image_size % 2 ** len(ENCODER_FILTERS):
            raise ValueError(f"image_size must be a multiple of 8, got {image_size}")
        self.image_size = image_size
        self.latent_dim = latent_dim
        self.batch_norm = batch_norm
        self.dropout = dropout
        self.r_loss_factor = r_loss_factor
        self.encoder = build_encoder(image_size, latent_dim, batch_norm, dropout)
        self.decoder = build_decoder(image_size, latent_dim, batch_norm, dropout)
        self.sampling = Sampling(name="sampling")
        self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_loss_tracker = keras.metrics.Mean(name="kl_loss")

    def build(self, input_shape):
        self.sampling.build([(None, self.latent_dim)] * 2)
        self.built = True

    def encode(self, images, training=False):
        """Posterior mean and log-variance (clamped to +-LOG_VAR_LIMIT for stability)."""
        mu, log_var = self.encoder(images, training=training)
        return mu, ops.clip(log_var, -LOG_VAR_LIMIT, LOG_VAR_LIMIT)

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
        total, reconstruction, kl = vae_loss(x, reconstructions, mu, log_var, self.r_loss_factor)
        batch_size = ops.shape(x)[0]
        self.reconstruction_loss_tracker.update_state(reconstruction, sample_weight=batch_size)
        self.kl_loss_tracker.update_state(kl, sample_weight=batch_size)
        return total

    def get_config(self):
        config = super().get_config()
        config.update(
            image_size=self.image_size,
            latent_dim=self.latent_dim,
            batch_norm=self.batch_norm,
            dropout=self.dropout,
            r_loss_factor=self.r_loss_factor,
        )
        return config


def build_vae(image_size: int, latent_dim: int, batch_norm=True, dropout=0.0,
              r_loss_factor=1000.0) -> VAE:
    """The thesis VAE for square RGB images of side image_size (a multiple of 8)."""
    vae = VAE(image_size, latent_dim, batch_norm, dropout, r_loss_factor, name=f"vae_z{latent_dim}")
    vae.build((None, image_size, image_size, 3))
    return vae


def load_vae(path) -> VAE:
    """A VAE saved with `save(...keras)`, without its optimizer state."""
    vae = keras.saving.load_model(path, compile=False)
    if not isinstance(vae, VAE):
        raise ValueError(f"{path} holds a {type(vae).__name__}, not a cellvae VAE")
    return vae
