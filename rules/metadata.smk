# Metadata tables from the source, then the field selection (a checkpoint: it decides the plates).
rule fetch_metadata:
    input:
        image_csv=source_input("BBBC021_v1_image.csv"),
        moa_csv=source_input("BBBC021_v1_moa.csv"),
    output:
        image_csv="results/metadata/BBBC021_v1_image.csv",
        moa_csv="results/metadata/BBBC021_v1_moa.csv",
        record="results/metadata/sources.json",
    params:
        source=SOURCE,
    log:
        "results/logs/fetch_metadata.log",
    benchmark:
        "results/benchmarks/fetch_metadata.tsv"
    script:
        "../scripts/fetch_metadata.py"


checkpoint select_images:
    input:
        image_csv=rules.fetch_metadata.output.image_csv,
        moa_csv=rules.fetch_metadata.output.moa_csv,
    output:
        table="results/metadata/selected_images.csv",
    params:
        plates=lookup(dpath="plates", within=config),
        compounds=lookup(dpath="compounds", within=config),
        moas=lookup(dpath="moas", within=config, default="all"),
    log:
        "results/logs/select_images.log",
    benchmark:
        "results/benchmarks/select_images.tsv"
    script:
        "../scripts/select_images.py"
