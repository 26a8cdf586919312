# Nuclei (DAPI) and cells (propagation on actin) per plate by headless CellProfiler (pipelines/analysis.cppipe),
# cells touching the field border dropped (counted per field: border_cells in fields_summary.csv); per-cell
# measurements (measurements/Cells.csv) and per-channel single-cell crops in Python.
rule segmentation:
    input:
        images=rules.fetch_images.output.images,
        fields=rules.illumination.output.fields,
        functions=rules.illumination.output.functions,
        pipeline=local(lookup(dpath="cellprofiler/analysis_pipeline", within=config)),
    output:
        cells="results/segmentation/{plate}/cells.csv",
        summary="results/segmentation/{plate}/fields_summary.csv",
        crops=directory("results/segmentation/{plate}/crops"),
        measurements=directory("results/segmentation/{plate}/measurements"),
    log:
        "results/logs/segmentation/{plate}.log",
    benchmark:
        "results/benchmarks/segmentation/{plate}.tsv"
    conda:
        "../envs/cellprofiler.yaml"
    threads: 1
    resources:
        mem_mb=8192,
        runtime=240,
    params:
        executable=lookup(dpath="cellprofiler/executable", within=config),
    script:
        "../scripts/segmentation.py"
