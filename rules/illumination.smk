# Illumination functions per plate and channel: headless CellProfiler (pipelines/illum.cppipe).
rule illumination:
    input:
        images=rules.fetch_images.output.images,
        selected=rules.select_images.output.table,
        pipeline=local(lookup(dpath="cellprofiler/illum_pipeline", within=config)),
    output:
        functions=expand("results/illumination/{{plate}}/illum_{stain}.npy", stain=STAINS),
        fields="results/illumination/{plate}/fields.csv",
        quarantine="results/illumination/{plate}/quarantine.csv",
    log:
        "results/logs/illumination/{plate}.log",
    benchmark:
        "results/benchmarks/illumination/{plate}.tsv"
    conda:
        "../envs/cellprofiler.yaml"
    threads: 1
    resources:
        mem_mb=4096,
        runtime=120,
    params:
        executable=lookup(dpath="cellprofiler/executable", within=config),
    script:
        "../scripts/illumination.py"
