# Response profiles: every profiled cell encoded by each trained VAE (mu), wells → treatments, MoA accuracy
# (NSC/NSCB) and separation from DMSO, latent traversals/interpolations/embedding; then a table across models.
RESPONSE_FIGURES = {
    "confusion": "MoA confusion (NSC)",
    "embedding": "2-D embedding",
    "traversals": "latent traversals",
    "interpolations": "interpolations",
}


if lookup(dpath="response/enabled", within=config):  # off: no response jobs, none in the cost table

    rule response_profiles:
        input:
            model=rules.train_vae.output.model,
            manifests=per_plate(CELL_MANIFEST),
            pngs=per_plate(CELL_PNGS),
            selected=rules.select_images.output.table,
            dataset=rules.dataset.output.manifest,  # which DMSO cells the model trained on
            baselines=rules.analyze_model.output.baselines,  # PCA-k of the model's training cells
        output:
            **{
                name: report(
                    f"results/response/{{model}}/{name}.png",
                    caption=f"../report/response_{name}.rst",
                    category="Response profiles",
                    subcategory="{model}",
                    labels={"model": "{model}", "figure": label},
                )
                for name, label in RESPONSE_FIGURES.items()
            },
            cells="results/response/{model}/cells.csv.gz",
            wells="results/response/{model}/wells.csv",
            moa="results/response/{model}/moa.json",
            separation="results/response/{model}/separation.csv",
        log:
            "results/logs/response_profiles/{model}.log",
        benchmark:
            "results/benchmarks/response_profiles/{model}.tsv"
        wildcard_constraints:
            model=MODEL_PATTERN,
        conda:
            "../envs/tensorflow.yaml"
        threads: lookup(dpath="resources/response_profiles/threads", within=config)
        resources:
            mem_mb=lookup(dpath="resources/response_profiles/mem_mb", within=config),
            runtime=lookup(dpath="resources/response_profiles/runtime", within=config),
        params:
            settings=lookup(dpath="response/analysis", within=config),
        script:
            "../scripts/response_profiles.py"

    rule compare_responses:
        input:
            moa=expand("results/response/{model}/moa.json", model=MODELS),
            separation=expand("results/response/{model}/separation.csv", model=MODELS),
        output:
            table=report(
                "results/response/summary.csv",
                caption="../report/response_summary.rst",
                category="Response profiles",
                labels={"figure": "accuracy per latent dim"},
            ),
        log:
            "results/logs/compare_responses.log",
        benchmark:
            "results/benchmarks/compare_responses.tsv"
        conda:
            "../envs/tensorflow.yaml"
        threads: 1
        resources:
            mem_mb=2048,
            runtime=10,
        params:
            models=MODELS,
        script:
            "../scripts/compare_responses.py"
