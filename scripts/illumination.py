"""Snakemake entry point: CellProfiler illumination functions of one plate."""

from pathlib import Path

import pandas as pd

from cellvae.cellprofiler import run_illumination
from cellvae.runlog import logged

with logged(snakemake.log[0]):
    selected = pd.read_csv(snakemake.input.selected)
    fields = selected[selected["plate"] == snakemake.wildcards.plate]
    run_illumination(
        fields,
        snakemake.input.images,
        Path(snakemake.output.fields).parent,
        snakemake.params.executable,
        snakemake.input.pipeline,
        snakemake.log[0],
    )
