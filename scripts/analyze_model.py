"""Snakemake entry point: metrics and figures of one trained VAE on held-out cells."""

from pathlib import Path

from cellvae.analysis import analyze_model
from cellvae.runlog import logged

with logged(snakemake.log[0]):
    analyze_model(
        snakemake.input.model,
        snakemake.input.manifest,
        Path(snakemake.output.metrics).parent,
        n_generated=snakemake.params.n_generated,
        n_latent_histograms=snakemake.params.n_latent_histograms,
    )
