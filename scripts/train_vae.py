"""Snakemake entry point: train the VAE of one latent dimension."""
from pathlib import Path

from cellvae.runlog import logged
from cellvae.train import train_vae

with logged(snakemake.log[0]):
    params = snakemake.params
    train_vae(snakemake.input.manifest, Path(snakemake.output.model).parent, int(snakemake.wildcards.latent_dim),
              epochs=params.epochs, batch_size=params.batch_size, learning_rate=params.learning_rate,
              r_loss_factor=params.r_loss_factor, batch_norm=params.batch_norm, dropout=params.dropout,
              seed=params.seed)
