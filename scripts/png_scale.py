"""Snakemake entry point: the data set's common resize factor for the PNGs."""

from cellvae.core.runlog import logged
from cellvae.imaging.png import write_scale

with logged(snakemake.log[0]):
    summary = write_scale(
        list(snakemake.input.cells),
        snakemake.params.size,
        snakemake.params.scale,
        snakemake.params.quantile,
        snakemake.output.scale,
    )
    print(summary)
