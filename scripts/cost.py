"""Snakemake entry point: the cost table from the jobs' benchmark files."""

from cellvae.core.runlog import logged
from cellvae.operations.cost import write_cost_table

with logged(snakemake.log[0]):
    print(
        write_cost_table(
            list(snakemake.input.benchmarks),
            snakemake.params.settings,
            snakemake.params.stages,
            snakemake.output.table,
        ).to_string(index=False)
    )
