# The cost table (report): every job's wall hours from its benchmark file × the price per hour of the
# instance type its rule runs on (config cost:), per stage and per model.
def benchmark_files(wildcards):
    plates = selected_plates()
    files = [
        "results/benchmarks/fetch_metadata.tsv",
        "results/benchmarks/select_images.tsv",
        "results/benchmarks/dataset.tsv",
        "results/benchmarks/compare_models.tsv",
    ]
    if lookup(dpath="synthetic/enabled", within=config):
        files.append("results/benchmarks/synthesize_bbbc021.tsv")
    for rule_name in ["fetch_images", "illumination", "segmentation", "compose_pngs"]:
        files += expand("results/benchmarks/{rule}/{plate}.tsv", rule=rule_name, plate=plates)
    for rule_name in ["train_vae", "analyze_model"]:
        files += expand("results/benchmarks/{rule}/{model}.tsv", rule=rule_name, model=MODELS)
    return files


rule cost:
    input:
        benchmarks=benchmark_files,
    output:
        table=report(
            "results/cost/cost.csv",
            caption="../report/cost.rst",
            category="Cost",
            labels={"figure": "cost table"},
        ),
    log:
        "results/logs/cost.log",
    benchmark:
        "results/benchmarks/cost.tsv"
    conda:
        "../envs/workflow.yaml"
    params:
        settings=lookup(dpath="cost", within=config),
    script:
        "../scripts/cost.py"
