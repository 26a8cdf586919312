"""Snakemake entry point: MoA accuracy and separation from DMSO, one row per latent dimension."""

from pathlib import Path

from cellvae.response import compare_responses
from cellvae.runlog import logged

with logged(snakemake.log[0]):
    table = compare_responses([Path(path).parent for path in snakemake.input.moa], snakemake.output.table)
    print(table.to_string(index=False))
