# Metadata tables from the source, then the field selection (a checkpoint: it decides the plates): the union of
# the training fields and, with response.enabled, the treated fields to profile and their plates' DMSO fields.
rule fetch_metadata:
    input:
        image_csv=source_input("BBBC021_v1_image.csv"),
        moa_csv=source_input("BBBC021_v1_moa.csv"),
    output:
        image_csv="results/metadata/BBBC021_v1_image.csv",
        moa_csv="results/metadata/BBBC021_v1_moa.csv",
        record="results/metadata/sources.json",
    log:
        "results/logs/fetch_metadata.log",
    benchmark:
        "results/benchmarks/fetch_metadata.tsv"
    retries: 1  # a transfer can fail transiently beyond fetch.retries (no other rule retries)
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=2048,
        runtime=30,
    params:
        source=staged_source("image_csv"),
        fetch=lookup(dpath="fetch", within=config),
    script:
        "../scripts/fetch_metadata.py"


checkpoint select_images:
    input:
        image_csv=rules.fetch_metadata.output.image_csv,
        moa_csv=rules.fetch_metadata.output.moa_csv,
    output:
        table="results/metadata/selected_images.csv",
    log:
        "results/logs/select_images.log",
    benchmark:
        "results/benchmarks/select_images.tsv"
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=2048,
        runtime=10,
    params:
        plates=lookup(dpath="plates", within=config),
        compounds=lookup(dpath="compounds", within=config),
        moas=lookup(dpath="moas", within=config),
        response=response_selection(),
    script:
        "../scripts/select_images.py"
