"""Snakemake entry point: the data set's common resize factor for the PNGs."""

from cellvae.png import write_scale
from cellvae.runlog import logged

with logged(snakemake.log[0]):
    summary = write_scale(
        list(snakemake.input.cells),
        snakemake.params.size,
        snakemake.params.scale,
        snakemake.params.quantile,
        snakemake.output.scale,
    )
    print(summary)
