"""Snakemake entry point: the metadata tables from the source, validated, with their size and sha256."""

from cellvae.core.files import write_json
from cellvae.core.runlog import logged
from cellvae.data.fetch import FetchSettings, fetch_metadata

with logged(snakemake.log[0]):
    output = snakemake.output
    records = fetch_metadata(
        snakemake.params.source,
        image_csv=output.image_csv,
        moa_csv=output.moa_csv,
        settings=FetchSettings.from_config(snakemake.params.fetch),
    )
    write_json(records, output.record)
    print(records)
