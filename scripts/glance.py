"""Snakemake entry point: the report's "Results at a glance" page."""

from cellvae.core.runlog import logged
from cellvae.profiling.glance import write_glance

with logged(snakemake.log[0]):
    write_glance(
        snakemake.input.metrics,
        dict(zip(snakemake.params.models, snakemake.input.latent)),
        snakemake.input.cost,
        snakemake.output.page,
        response_csv=snakemake.input.response[0] if snakemake.input.response else None,
    )
    print(f"wrote {snakemake.output.page}")
