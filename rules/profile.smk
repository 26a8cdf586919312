# Response profiles: every profiled cell encoded by each trained VAE (mu), wells → treatments, MoA accuracy
# (NSC/NSCB) and separation from DMSO, latent traversals/interpolations/embedding; then a table across models.
PROFILE_FIGURES = {
    "confusion": "MoA confusion (NSC)",
    "embedding": "2-D embedding",
    "traversals": "latent traversals",
    "interpolations": "interpolations",
}


rule profile_model:
    input:
        model=rules.train_vae.output.model,
        manifests=per_plate("results/png/{plate}/cells.csv"),
        pngs=per_plate("results/png/{plate}/cells"),  # read through the manifests' paths (staged with storage)
        selected=rules.select_images.output.table,
        dataset=rules.dataset.output.manifest,  # which DMSO cells the model trained on
    output:
        **{
            name: report(
                f"results/profile/{{model}}/{name}.png",
                caption=f"../report/profile_{name}.rst",
                category="Response profiles",
                subcategory="{model}",
                labels={"model": "{model}", "figure": label},
            )
            for name, label in PROFILE_FIGURES.items()
        },
        cells="results/profile/{model}/cells.csv.gz",
        wells="results/profile/{model}/wells.csv",
        moa="results/profile/{model}/moa.json",
        separation="results/profile/{model}/separation.csv",
    log:
        "results/logs/profile_model/{model}.log",
    benchmark:
        "results/benchmarks/profile_model/{model}.tsv"
    wildcard_constraints:
        model=MODEL_PATTERN,
    conda:
        "../envs/tensorflow.yaml"
    params:
        settings=lookup(dpath="profile/analysis", within=config),
    script:
        "../scripts/profile_model.py"


rule compare_profiles:
    input:
        moa=expand("results/profile/{model}/moa.json", model=MODELS),
        separation=expand("results/profile/{model}/separation.csv", model=MODELS),
    output:
        table=report(
            "results/profile/summary.csv",
            caption="../report/profile_summary.rst",
            category="Response profiles",
            labels={"figure": "accuracy per latent dim"},
        ),
    log:
        "results/logs/compare_profiles.log",
    benchmark:
        "results/benchmarks/compare_profiles.tsv"
    conda:
        "../envs/tensorflow.yaml"
    script:
        "../scripts/profile_compare.py"
