"""Snakemake entry point: RGB PNGs of one plate's cells."""

import json
from pathlib import Path

from cellvae.png import reference_fields, synthesize_plate
from cellvae.runlog import logged

with logged(snakemake.log[0]):
    params, output = snakemake.params, snakemake.output
    scale = json.loads(Path(snakemake.input.scale).read_text())["scale"]
    synthesize_plate(
        snakemake.input.cells,
        Path(snakemake.input.cells).parent,
        snakemake.input.quarantine,
        output.pngs,
        output.manifest,
        output.qc,
        output.histogram,
        size=params.size,
        percentiles=tuple(params.percentiles),
        scale=scale,
        reference_fields=reference_fields(snakemake.input.selected, snakemake.wildcards.plate),
    )
