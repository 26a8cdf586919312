"""Snakemake entry point: CellProfiler segmentation, then measurements, border-cell counts and crops of one plate."""

from cellvae.core.channels import STAINS
from cellvae.core.runlog import logged
from cellvae.imaging.cellprofiler import run_segmentation

with logged(snakemake.log[0]):
    input, output = snakemake.input, snakemake.output
    run_segmentation(
        input.fields,
        input.images,
        dict(zip(STAINS, input.functions, strict=True)),  # the illumination rule expands them over STAINS
        snakemake.params.executable,
        input.pipeline,
        snakemake.log[0],
        cells_csv=output.cells,
        summary_csv=output.summary,
        crops_dir=output.crops,
        measurements_dir=output.measurements,
    )
