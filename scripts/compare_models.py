"""Snakemake entry point: comparison table and figures across latent dimensions."""

from cellvae.core.runlog import logged
from cellvae.evaluation.analysis import compare_models

with logged(snakemake.log[0]):
    input, output = snakemake.input, snakemake.output
    compare_models(
        snakemake.params.models,
        models=input.models,
        histories=input.histories,
        summaries=input.summaries,
        metrics=input.metrics,
        baselines=input.baselines,
        manifest_csv=input.manifest,
        metrics_csv=output.metrics,
        reconstructions_png=output.reconstructions,
        loss_curves_png=output.loss_curves,
        training_speed_png=output.training_speed,
        model_vs_baselines_png=output.model_vs_baselines,
        n_reconstructions=snakemake.params.n_reconstructions,
    )
