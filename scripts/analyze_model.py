"""Snakemake entry point: metrics and figures of one trained VAE on held-out cells."""

from cellvae.core.runlog import logged
from cellvae.evaluation.analysis import analyze_model

with logged(snakemake.log[0]):
    output = snakemake.output
    analyze_model(
        snakemake.input.model,
        snakemake.input.manifest,
        metrics_json=output.metrics,
        baselines_npz=output.baselines,
        latent_json=output.latent_json,
        generated_png=output.generated,
        latent_histograms_png=output.latent,
        n_generated=snakemake.params.n_generated,
        n_latent_histograms=snakemake.params.n_latent_histograms,
        iwae_samples=snakemake.params.iwae_samples,
    )
