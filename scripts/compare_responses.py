"""Snakemake entry point: MoA accuracy and separation from DMSO, one row per latent dimension."""

from cellvae.response import compare_responses
from cellvae.runlog import logged

with logged(snakemake.log[0]):
    table = compare_responses(
        snakemake.params.models,
        moa_jsons=snakemake.input.moa,
        separation_csvs=snakemake.input.separation,
        table_csv=snakemake.output.table,
    )
    print(table.to_string(index=False))
