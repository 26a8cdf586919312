"""Snakemake entry point: the cell manifest with its train/validation split by well or plate."""

from cellvae.dataset import build_manifest
from cellvae.runlog import logged

with logged(snakemake.log[0]):
    manifest = build_manifest(
        list(snakemake.input.manifests),
        snakemake.input.selected,
        snakemake.output.manifest,
        snakemake.params.validation_fraction,
        snakemake.params.seed,
        snakemake.output.shards,
        snakemake.params.split,
        snakemake.params.validation_plates,
    )
    print(manifest.groupby(["split", "plate"]).agg(wells=("well", "nunique"), cells=("path", "size")).to_string())
