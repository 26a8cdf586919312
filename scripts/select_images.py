"""Snakemake entry point: the fields selected by plate, compound and MoA, for training and for profiling."""

from cellvae.core.runlog import logged
from cellvae.data.metadata import write_selection

with logged(snakemake.log[0]):
    params = snakemake.params
    selected = write_selection(
        snakemake.input.image_csv,
        snakemake.input.moa_csv,
        snakemake.output.table,
        params.plates,
        params.compounds,
        params.moas,
        params.response,
    )
    for purpose in ("train", "response"):
        chosen = selected[selected[purpose]]
        print(
            f"{purpose}: {len(chosen)} fields, {chosen.groupby(['plate', 'well']).ngroups} wells, "
            f"{chosen['plate'].nunique()} plates, {chosen['compound'].nunique()} compounds"
        )
    print(f"segmented (union): {len(selected)} fields on {selected['plate'].nunique()} plates")
