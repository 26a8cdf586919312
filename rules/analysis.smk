# Per-model metrics and figures on held-out cells, then the comparison across latent dimensions.
rule analyze_model:
    input:
        model=rules.train_vae.output.model,
        manifest=rules.dataset.output.manifest,
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
    log:
        "results/logs/analyze_model/z{latent_dim}.log",
    benchmark:
        "results/benchmarks/analyze_model/z{latent_dim}.tsv"
    script:
        "../scripts/analyze_model.py"


rule compare_models:
    input:
        models=expand(rules.train_vae.output.model, latent_dim=LATENT_DIMS),
        metrics=expand(rules.analyze_model.output.metrics, latent_dim=LATENT_DIMS),
        manifest=rules.dataset.output.manifest,
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
    params:
        n_reconstructions=lookup(dpath="analysis/n_reconstructions", within=config),
    log:
        "results/logs/compare_models.log",
    benchmark:
        "results/benchmarks/compare_models.tsv"
    script:
        "../scripts/compare_models.py"
