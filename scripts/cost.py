"""Snakemake entry point: the cost table from the jobs' benchmark files."""

from cellvae.cost import write_cost_table
from cellvae.runlog import logged

with logged(snakemake.log[0]):
    print(
        write_cost_table(
            list(snakemake.input.benchmarks),
            snakemake.params.settings,
            snakemake.params.stages,
            snakemake.output.table,
        ).to_string(index=False)
    )
