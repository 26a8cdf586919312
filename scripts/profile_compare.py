"""Snakemake entry point: MoA accuracy and separation from DMSO, one row per latent dimension."""

from pathlib import Path

from cellvae.profiles import compare_profiles
from cellvae.runlog import logged

with logged(snakemake.log[0]):
    table = compare_profiles([Path(path).parent for path in snakemake.input.moa], snakemake.output.table)
    print(table.to_string(index=False))
