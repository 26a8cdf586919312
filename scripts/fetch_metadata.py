"""Snakemake entry point: the metadata tables from the source, validated, with their size and sha256."""

from pathlib import Path

from cellvae.fetch import FetchSettings, fetch_metadata
from cellvae.metadata import write_json
from cellvae.runlog import logged

with logged(snakemake.log[0]):
    out = snakemake.output
    records = fetch_metadata(
        snakemake.params.source, Path(out.image_csv).parent, FetchSettings.from_config(snakemake.params.fetch)
    )
    write_json(records, out.record)
    print(records)
