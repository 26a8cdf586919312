# The selected TIFFs of one plate, extracted from its archive and CRC-verified.
rule fetch_images:
    input:
        selected=rules.select_images.output.table,
        archive=lambda wildcards: source_input(archive_name(wildcards.plate)),
    output:
        images=directory("results/fetch/{plate}/images"),
        record="results/fetch/{plate}/fetch.json",
    log:
        "results/logs/fetch_images/{plate}.log",
    benchmark:
        "results/benchmarks/fetch_images/{plate}.tsv"
    retries: 1  # a transfer can fail transiently beyond fetch.retries (no other rule retries)
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=2048,
        runtime=60,
    params:
        source=staged_source("archive"),
        fetch=lookup(dpath="fetch", within=config),
    script:
        "../scripts/fetch_images.py"


rule fetch_summary:
    input:
        records=per_plate("results/fetch/{plate}/fetch.json"),
    output:
        table=report(
            "results/fetch/summary.csv",
            caption="../report/fetch_summary.rst",
            category="Data",
            labels={"table": "fetch totals"},
        ),
    log:
        "results/logs/fetch_summary.log",
    benchmark:
        "results/benchmarks/fetch_summary.tsv"
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=2048,
        runtime=10,
    script:
        "../scripts/fetch_summary.py"
