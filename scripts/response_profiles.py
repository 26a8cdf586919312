"""Snakemake entry point: response profiles, MoA accuracy and latent-space figures of one trained VAE."""

from pathlib import Path

from cellvae.response import response_profiles
from cellvae.runlog import logged

with logged(snakemake.log[0]):
    response_profiles(
        snakemake.input.model,
        list(snakemake.input.manifests),
        snakemake.input.selected,
        Path(snakemake.output.moa).parent,
        snakemake.params.settings,
        dataset_manifest=snakemake.input.dataset,
    )
