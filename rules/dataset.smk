# All plates' cells in one manifest, split into train and validation by well or by plate (dataset.split), plus decoded uint8 shards
# (one .npy per split and plate) that training streams.
rule dataset:
    input:
        manifests=per_plate(CELL_MANIFEST),
        pngs=per_plate(CELL_PNGS),
        selected=rules.select_images.output.table,
    output:
        manifest="results/dataset/manifest.csv",
        shards=directory("results/dataset/shards"),
    log:
        "results/logs/dataset.log",
    benchmark:
        "results/benchmarks/dataset.tsv"
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=8192,
        runtime=30,
    params:
        split=lookup(dpath="dataset/split", within=config),
        validation_plates=lookup(dpath="dataset/validation_plates", within=config),
        validation_fraction=lookup(dpath="dataset/validation_fraction", within=config),
        seed=lookup(dpath="dataset/seed", within=config),
    script:
        "../scripts/dataset.py"
