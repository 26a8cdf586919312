"""Snakemake entry point: the cell manifest with its train/validation split by well or plate."""

from cellvae.core.runlog import logged
from cellvae.imaging.dataset import build_manifest

with logged(snakemake.log[0]):
    params = snakemake.params
    manifest = build_manifest(
        list(snakemake.input.manifests),
        snakemake.input.selected,
        manifest_csv=snakemake.output.manifest,
        shards_dir=snakemake.output.shards,
        validation_fraction=params.validation_fraction,
        seed=params.seed,
        split=params.split,
        validation_plates=params.validation_plates,
    )
    print(manifest.groupby(["split", "plate"]).agg(wells=("well", "nunique"), cells=("path", "size")).to_string())
