"""Snakemake entry point: the synthetic mini BBBC021 in the real source layout."""

from pathlib import Path

from cellvae.runlog import logged
from cellvae.synthetic import generate_mini_bbbc021

with logged(snakemake.log[0]):
    generate_mini_bbbc021(Path(snakemake.output.image_csv).parent, dict(snakemake.params.settings))
