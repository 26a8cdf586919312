"""Snakemake entry point: comparison table and figures across latent dimensions."""

from pathlib import Path

from cellvae.analysis import compare_models
from cellvae.runlog import logged

with logged(snakemake.log[0]):
    compare_models(
        [Path(path).parent for path in snakemake.input.models],
        [Path(path).parent for path in snakemake.input.metrics],
        snakemake.input.manifest,
        Path(snakemake.output.metrics).parent,
        n_reconstructions=snakemake.params.n_reconstructions,
    )
