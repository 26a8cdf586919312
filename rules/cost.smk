# The cost table (report): every job's wall hours from its benchmark file × the price per hour of the
# instance type its rule runs on (config cost:), per stage (the rules/ file of its rule) and per model.
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
    threads: 1
    resources:
        mem_mb=2048,
        runtime=10,
    params:
        settings=lookup(dpath="cost", within=config),
        stages=rule_stages,
    script:
        "../scripts/cost.py"
