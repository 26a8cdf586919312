"""Snakemake entry point: the metadata tables from the source, validated, with their size and sha256."""
from cellvae.fetch import copy_source_file
from cellvae.metadata import IMAGE_CSV, MOA_CSV, read_image_table, read_moa_table, write_json
from cellvae.runlog import logged

with logged(snakemake.log[0]):
    source, out = snakemake.params.source, snakemake.output
    records = [copy_source_file(source, IMAGE_CSV, out.image_csv), copy_source_file(source, MOA_CSV, out.moa_csv)]
    read_image_table(out.image_csv)
    read_moa_table(out.moa_csv)
    write_json(records, out.record)
    print(records)
