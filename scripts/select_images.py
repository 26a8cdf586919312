"""Snakemake entry point: the fields selected by plate, compound and MoA."""
from cellvae.metadata import write_selection
from cellvae.runlog import logged

with logged(snakemake.log[0]):
    params = snakemake.params
    selected = write_selection(snakemake.input.image_csv, snakemake.input.moa_csv, snakemake.output.table,
                               params.plates, params.compounds, params.moas)
    print(f"{len(selected)} fields, {selected.groupby(['plate', 'well']).ngroups} wells, "
          f"{selected['plate'].nunique()} plates selected")
