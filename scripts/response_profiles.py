"""Snakemake entry point: response profiles, MoA accuracy and latent-space figures of one trained VAE."""

from cellvae.core.runlog import logged
from cellvae.profiling.response import response_profiles

with logged(snakemake.log[0]):
    input, output = snakemake.input, snakemake.output
    response_profiles(
        input.model,
        list(input.manifests),
        input.selected,
        snakemake.params.settings,
        cells_csv=output.cells,
        wells_csv=output.wells,
        moa_json=output.moa,
        separation_csv=output.separation,
        baselines_npz=input.baselines,
        confusion_png=output.confusion,
        embedding_png=output.embedding,
        traversals_png=output.traversals,
        interpolations_png=output.interpolations,
        dataset_manifest=input.dataset,
    )
