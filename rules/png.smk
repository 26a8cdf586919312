# One resize factor for the whole data set (cells keep their absolute size). With png.scale auto it is chosen
# from every plate's crop sizes, so re-segmenting one plate redoes every plate's PNGs: pin the number it
# wrote (results/png/scale.json) in the config to keep plates independent.
rule png_scale:
    input:
        cells=branch(
            lookup(dpath="png/scale", within=config) == "auto",
            then=per_plate("results/segmentation/{plate}/cells.csv"),
            otherwise=[],
        ),
    output:
        scale="results/png/scale.json",
    log:
        "results/logs/png_scale.log",
    benchmark:
        "results/benchmarks/png_scale.tsv"
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=2048,
        runtime=30,
    params:
        size=lookup(dpath="png/size", within=config),
        scale=lookup(dpath="png/scale", within=config),
        quantile=lookup(dpath="png/scale_quantile", within=config),
    script:
        "../scripts/png_scale.py"


# Single cells as size×size RGB PNGs (R = Tubulin, G = Actin, B = DAPI), a QC table and a crop-size histogram.
rule compose_pngs:
    input:
        cells=rules.segmentation.output.cells,
        crops=rules.segmentation.output.crops,
        quarantine=rules.illumination.output.quarantine,
        scale=rules.png_scale.output.scale,
        selected=rules.select_images.output.table,  # the plate's DMSO training fields set its intensity ranges
    output:
        pngs=directory(CELL_PNGS),
        manifest=CELL_MANIFEST,
        qc="results/png/{plate}/qc.csv",
        histogram=report(
            "results/png/{plate}/crop_sizes.png",
            caption="../report/crop_sizes.rst",
            category="PNG composition",
            labels={"plate": "{plate}", "figure": "crop sizes"},
        ),
    log:
        "results/logs/compose_pngs/{plate}.log",
    benchmark:
        "results/benchmarks/compose_pngs/{plate}.tsv"
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=4096,
        runtime=60,
    params:
        size=lookup(dpath="png/size", within=config),
        percentiles=lookup(dpath="png/percentiles", within=config),
    script:
        "../scripts/compose_pngs.py"
