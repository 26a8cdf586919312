"""Snakemake entry point: bytes needed, bytes transferred and seconds of every plate's fetch, with totals."""

from cellvae.core.runlog import logged
from cellvae.data.fetch import summarize_records

with logged(snakemake.log[0]):
    print(summarize_records(list(snakemake.input.records), snakemake.output.table).to_string())
