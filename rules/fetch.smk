# The selected TIFFs of one plate, extracted from its archive and CRC-verified.
rule fetch_images:
    input:
        selected=rules.select_images.output.table,
        archive=lambda wildcards: source_input(archive_name(wildcards.plate)),
    output:
        images=directory("results/fetch/{plate}/images"),
        record="results/fetch/{plate}/fetch.json",
    params:
        source=SOURCE,
    log:
        "results/logs/fetch_images/{plate}.log",
    benchmark:
        "results/benchmarks/fetch_images/{plate}.tsv"
    script:
        "../scripts/fetch_images.py"
