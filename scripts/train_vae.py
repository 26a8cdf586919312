"""Snakemake entry point: train (or resume) the VAE of one latent dimension (and variant)."""

from cellvae.core.runlog import logged
from cellvae.model.train import train_vae

with logged(snakemake.log[0]):
    train_vae(
        snakemake.input.manifest,
        snakemake.params.latent_dim,
        snakemake.params.epochs,
        model_path=snakemake.output.model,
        history_csv=snakemake.output.history,
        summary_json=snakemake.output.summary,
        **snakemake.params.settings,
    )
