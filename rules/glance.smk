# The report's first item: every model against its baselines, its latent section, the MoA scores, the cost and a
# verdict per model on one HTML page, from the tables the analysis, response and cost stages wrote.
RESPONSE_ENABLED = lookup(dpath="response/enabled", within=config)


rule glance:
    input:
        metrics=rules.compare_models.output.metrics,
        latent=expand("results/analysis/{model}/latent.json", model=MODELS),
        cost=rules.cost.output.table,
        response=["results/response/summary.csv"] if RESPONSE_ENABLED else [],
    output:
        page=report(
            "results/glance.html",
            caption="../report/glance.rst",
            category="0. Results at a glance",
            labels={"figure": "results at a glance"},
        ),
    log:
        "results/logs/glance.log",
    benchmark:
        "results/benchmarks/glance.tsv"
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=2048,
        runtime=10,
    params:
        models=MODELS,
    script:
        "../scripts/glance.py"
