# Per-model metrics and figures on held-out cells, then the comparison across latent dimensions.
rule analyze_model:
    input:
        model=rules.train_vae.output.model,
        manifest=rules.dataset.output.manifest,
        pngs=per_plate("results/png/{plate}/cells"),  # read through the manifests' paths (staged with storage)
    output:
        metrics="results/analysis/z{latent_dim}/metrics.json",
        ks="results/analysis/z{latent_dim}/latent_ks.csv",
        generated=report(
            "results/analysis/z{latent_dim}/generated.png",
            caption="../report/generated.rst",
            category="Models",
            subcategory="z={latent_dim}",
            labels={"model": "z={latent_dim}", "figure": "generated samples"},
        ),
        latent=report(
            "results/analysis/z{latent_dim}/latent_histograms.png",
            caption="../report/latent_histograms.rst",
            category="Models",
            subcategory="z={latent_dim}",
            labels={"model": "z={latent_dim}", "figure": "latent distributions"},
        ),
    wildcard_constraints:
        latent_dim=r"\d+",
    params:
        n_generated=lookup(dpath="analysis/n_generated", within=config),
        n_latent_histograms=lookup(dpath="analysis/n_latent_histograms", within=config),
    conda:
        "../envs/tensorflow.yaml"
    log:
        "results/logs/analyze_model/z{latent_dim}.log",
    benchmark:
        "results/benchmarks/analyze_model/z{latent_dim}.tsv"
    script:
        "../scripts/analyze_model.py"


rule compare_models:
    input:
        models=expand("results/models/z{latent_dim}/model.keras", latent_dim=LATENT_DIMS),
        histories=expand("results/models/z{latent_dim}/history.csv", latent_dim=LATENT_DIMS),  # read beside
        summaries=expand("results/models/z{latent_dim}/training.json", latent_dim=LATENT_DIMS),  # each model
        metrics=expand("results/analysis/z{latent_dim}/metrics.json", latent_dim=LATENT_DIMS),
        manifest=rules.dataset.output.manifest,
        pngs=per_plate("results/png/{plate}/cells"),  # read through the manifests' paths (staged with storage)
    output:
        metrics=report(
            "results/analysis/metrics.csv",
            caption="../report/metrics.rst",
            category="Comparison",
            labels={"figure": "metrics table"},
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
    params:
        n_reconstructions=lookup(dpath="analysis/n_reconstructions", within=config),
    conda:
        "../envs/tensorflow.yaml"
    log:
        "results/logs/compare_models.log",
    benchmark:
        "results/benchmarks/compare_models.tsv"
    script:
        "../scripts/compare_models.py"
