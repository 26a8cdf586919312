# Single cells as size×size RGB PNGs (R = Tubulin, G = Actin, B = DAPI), a QC table and a crop-size histogram.
rule png_synthesis:
    input:
        cells=rules.segmentation.output.cells,
        crops=rules.segmentation.output.crops,
        quarantine=rules.illumination.output.quarantine,
    output:
        pngs=directory("results/png/{plate}/cells"),
        manifest="results/png/{plate}/cells.csv",
        qc="results/png/{plate}/qc.csv",
        histogram=report(
            "results/png/{plate}/crop_sizes.png",
            caption="../report/crop_sizes.rst",
            category="PNG synthesis",
            labels={"plate": "{plate}", "figure": "crop sizes"},
        ),
    params:
        size=lookup(dpath="png/size", within=config),
        percentiles=lookup(dpath="png/percentiles", within=config),
        upscale=lookup(dpath="png/upscale", within=config),
    conda:
        "../envs/workflow.yaml"
    log:
        "results/logs/png_synthesis/{plate}.log",
    benchmark:
        "results/benchmarks/png_synthesis/{plate}.tsv"
    script:
        "../scripts/png_synthesis.py"
