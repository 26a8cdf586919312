# Per-model metrics and figures on held-out cells, then the comparison across latent dimensions.
rule analyze_model:
    input:
        model=rules.train_vae.output.model,
        manifest=rules.dataset.output.manifest,
        pngs=per_plate(CELL_PNGS),
    output:
        metrics=MODEL_METRICS,
        baselines=MODEL_BASELINES,
        latent_json=report(
            "results/analysis/{model}/latent.json",
            caption="../report/latent.rst",
            category="Models",
            subcategory="{model}",
            labels={"model": "{model}", "figure": "latent section (KL, active units, NLL vs PPCA)"},
        ),
        generated=report(
            "results/analysis/{model}/generated.png",
            caption="../report/generated.rst",
            category="Models",
            subcategory="{model}",
            labels={"model": "{model}", "figure": "generated samples"},
        ),
        latent=report(
            "results/analysis/{model}/latent_histograms.png",
            caption="../report/latent_histograms.rst",
            category="Models",
            subcategory="{model}",
            labels={"model": "{model}", "figure": "latent distributions"},
        ),
    log:
        "results/logs/analyze_model/{model}.log",
    benchmark:
        "results/benchmarks/analyze_model/{model}.tsv"
    wildcard_constraints:
        model=MODEL_PATTERN,
    conda:
        "../envs/tensorflow.yaml"
    threads: lookup(dpath="resources/analyze_model/threads", within=config)
    resources:
        mem_mb=lookup(dpath="resources/analyze_model/mem_mb", within=config),
        runtime=lookup(dpath="resources/analyze_model/runtime", within=config),
    params:
        n_generated=lookup(dpath="analysis/n_generated", within=config),
        n_latent_histograms=lookup(dpath="analysis/n_latent_histograms", within=config),
        iwae_samples=lookup(dpath="analysis/iwae_samples", within=config),
    script:
        "../scripts/analyze_model.py"


rule compare_models:
    input:
        models=expand(MODEL_FILES["model"], model=MODELS),
        histories=expand(MODEL_FILES["history"], model=MODELS),
        summaries=expand(MODEL_FILES["summary"], model=MODELS),
        metrics=expand(MODEL_METRICS, model=MODELS),
        baselines=expand(MODEL_BASELINES, model=MODELS),
        manifest=rules.dataset.output.manifest,
        pngs=per_plate(CELL_PNGS),
    output:
        metrics=report(
            "results/analysis/metrics.csv",
            caption="../report/metrics.rst",
            category="1. Models against baselines",
            labels={"figure": "metrics table"},
        ),
        model_vs_baselines=report(
            "results/analysis/model_vs_baselines.png",
            caption="../report/model_vs_baselines.rst",
            category="1. Models against baselines",
            labels={"figure": "MSE: models vs baselines"},
        ),
        reconstructions=report(
            "results/analysis/reconstructions.png",
            caption="../report/reconstructions.rst",
            category="Comparison",
            labels={"figure": "reconstructions"},
        ),
        loss_curves=report(
            "results/analysis/loss_curves.png",
            caption="../report/loss_curves.rst",
            category="Comparison",
            labels={"figure": "loss curves"},
        ),
        training_speed=report(
            "results/analysis/training_speed.png",
            caption="../report/training_speed.rst",
            category="Comparison",
            labels={"figure": "training time and throughput"},
        ),
    log:
        "results/logs/compare_models.log",
    benchmark:
        "results/benchmarks/compare_models.tsv"
    conda:
        "../envs/tensorflow.yaml"
    threads: lookup(dpath="resources/compare_models/threads", within=config)
    resources:
        mem_mb=lookup(dpath="resources/compare_models/mem_mb", within=config),
        runtime=lookup(dpath="resources/compare_models/runtime", within=config),
    params:
        models=MODELS,
        n_reconstructions=lookup(dpath="analysis/n_reconstructions", within=config),
    script:
        "../scripts/compare_models.py"
