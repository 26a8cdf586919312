# All plates' cells in one manifest, split into train and validation by well.
rule dataset:
    input:
        manifests=per_plate("results/png/{plate}/cells.csv"),
        selected=rules.select_images.output.table,
    output:
        manifest="results/dataset/manifest.csv",
    params:
        validation_fraction=lookup(dpath="dataset/validation_fraction", within=config),
        seed=lookup(dpath="dataset/seed", within=config),
    log:
        "results/logs/dataset.log",
    benchmark:
        "results/benchmarks/dataset.tsv"
    script:
        "../scripts/dataset.py"
