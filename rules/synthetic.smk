# A synthetic mini BBBC021 in the real source layout (CSVs + one zip per plate), for the demo and tests, written
# into `source` only where that is a folder of its own (new, empty, or marked by it: rules/common.smk checks).
if lookup(dpath="synthetic/enabled", within=config):

    rule synthesize_bbbc021:
        output:
            image_csv=source_location(SOURCE, "BBBC021_v1_image.csv"),
            moa_csv=source_location(SOURCE, "BBBC021_v1_moa.csv"),
            archives=[source_location(SOURCE, archive_name(plate)) for plate in config["synthetic"]["plates"]],
        log:
            "results/logs/synthesize_bbbc021.log",
        benchmark:
            "results/benchmarks/synthesize_bbbc021.tsv"
        conda:
            "../envs/workflow.yaml"
        threads: 1
        resources:
            mem_mb=2048,
            runtime=30,
        params:
            settings=lookup(dpath="synthetic", within=config),
        script:
            "../scripts/synthesize_bbbc021.py"
