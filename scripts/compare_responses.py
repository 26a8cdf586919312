"""Snakemake entry point: MoA accuracy and separation from DMSO, one row per latent dimension."""

from cellvae.core.runlog import logged
from cellvae.profiling.response import compare_responses

with logged(snakemake.log[0]):
    table = compare_responses(
        snakemake.params.models,
        moa_jsons=snakemake.input.moa,
        separation_csvs=snakemake.input.separation,
        table_csv=snakemake.output.table,
    )
    print(table.to_string(index=False))
