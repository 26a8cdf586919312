"""Snakemake entry point: CellProfiler illumination functions of one plate."""

import pandas as pd

from cellvae.core.channels import STAINS
from cellvae.core.runlog import logged
from cellvae.imaging.cellprofiler import run_illumination

with logged(snakemake.log[0]):
    selected = pd.read_csv(snakemake.input.selected)
    output = snakemake.output
    run_illumination(
        selected[selected["plate"] == snakemake.wildcards.plate],
        snakemake.input.images,
        snakemake.params.executable,
        snakemake.input.pipeline,
        snakemake.log[0],
        functions=dict(zip(STAINS, output.functions, strict=True)),  # the rule expands them over STAINS
        fields_csv=output.fields,
        quarantine_csv=output.quarantine,
    )
