"""Snakemake entry point: CellProfiler segmentation, then measurements, border-cell counts and crops of one plate."""

from pathlib import Path

from cellvae.cellprofiler import run_segmentation
from cellvae.runlog import logged

with logged(snakemake.log[0]):
    run_segmentation(
        snakemake.input.fields,
        snakemake.input.images,
        Path(snakemake.input.fields).parent,
        Path(snakemake.output.cells).parent,
        snakemake.params.executable,
        snakemake.input.pipeline,
        snakemake.log[0],
    )
