"""Snakemake entry point: the synthetic mini BBBC021 in the real source layout."""

from cellvae.core.runlog import logged
from cellvae.data.synthetic import generate_mini_bbbc021

with logged(snakemake.log[0]):
    settings, output = dict(snakemake.params.settings), snakemake.output
    generate_mini_bbbc021(
        settings,
        image_csv=output.image_csv,
        moa_csv=output.moa_csv,
        archives=dict(zip(settings["plates"], output.archives, strict=True)),  # the rule lists them per plate
    )
