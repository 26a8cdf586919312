"""Snakemake entry point: RGB PNGs of one plate's cells."""

import json
from pathlib import Path

from cellvae.core.runlog import logged
from cellvae.imaging.png import compose_plate, reference_fields

with logged(snakemake.log[0]):
    input, output, params = snakemake.input, snakemake.output, snakemake.params
    compose_plate(
        input.cells,
        input.crops,
        input.quarantine,
        pngs_dir=output.pngs,
        manifest_csv=output.manifest,
        qc_csv=output.qc,
        histogram_png=output.histogram,
        size=params.size,
        percentiles=tuple(params.percentiles),
        scale=json.loads(Path(input.scale).read_text())["scale"],
        reference_fields=reference_fields(input.selected, snakemake.wildcards.plate),
    )
