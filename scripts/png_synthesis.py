"""Snakemake entry point: RGB PNGs of one plate's cells."""
from pathlib import Path

from cellvae.png import synthesize_plate
from cellvae.runlog import logged

with logged(snakemake.log[0]):
    params, output = snakemake.params, snakemake.output
    synthesize_plate(snakemake.input.cells, Path(snakemake.input.cells).parent, snakemake.input.quarantine,
                     output.pngs, output.manifest, output.qc, output.histogram,
                     size=params.size, percentiles=tuple(params.percentiles), upscale=params.upscale)
