"""Snakemake entry point: the cell manifest with its train/validation split by well."""
from cellvae.dataset import build_manifest
from cellvae.runlog import logged

with logged(snakemake.log[0]):
    manifest = build_manifest(list(snakemake.input.manifests), snakemake.input.selected, snakemake.output.manifest,
                              snakemake.params.validation_fraction, snakemake.params.seed,
                              snakemake.output.shards)
    print(manifest.groupby("split").size().to_string())
