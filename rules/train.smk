# One convolutional VAE per configured latent dimension, streamed from the dataset's uint8 shards.
# Resumable: a rerun after a crash or preemption continues after the last completed epoch
# (checkpoints are kept as outputs' siblings, so incomplete outputs are not deleted: --rerun-incomplete
# or a plain rerun resumes).
rule train_vae:
    input:
        manifest=rules.dataset.output.manifest,
        shards=rules.dataset.output.shards,
    output:
        model="results/models/z{latent_dim}/model.keras",
        history="results/models/z{latent_dim}/history.csv",
        summary="results/models/z{latent_dim}/training.json",
    wildcard_constraints:
        latent_dim=r"\d+",
    params:
        epochs=lookup(dpath="epochs", within=config),
        settings=lookup(dpath="train", within=config),
    threads: workflow.cores
    conda:
        "../envs/tensorflow.yaml"
    log:
        "results/logs/train_vae/z{latent_dim}.log",
    benchmark:
        "results/benchmarks/train_vae/z{latent_dim}.tsv"
    script:
        "../scripts/train_vae.py"
