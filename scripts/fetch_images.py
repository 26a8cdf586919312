"""Snakemake entry point: the selected images of one plate."""

from cellvae.core.runlog import logged
from cellvae.data.fetch import FetchSettings, fetch_plate

with logged(snakemake.log[0]):
    print(
        fetch_plate(
            snakemake.wildcards.plate,
            snakemake.input.selected,
            snakemake.params.source,
            snakemake.output.images,
            snakemake.output.record,
            FetchSettings.from_config(snakemake.params.fetch),
        )
    )
