"""Snakemake entry point: train (or resume) the VAE of one latent dimension (and variant)."""

from pathlib import Path

from cellvae.runlog import logged
from cellvae.train import train_vae

with logged(snakemake.log[0]):
    train_vae(
        snakemake.input.manifest,
        Path(snakemake.output.model).parent,
        snakemake.params.latent_dim,
        snakemake.params.epochs,
        **snakemake.params.settings,
    )
