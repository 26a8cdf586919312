# One convolutional VAE per configured latent dimension (and variant, config key models), streamed from the dataset's uint8 shards.
# Resumable: a rerun after a crash or preemption continues after the last completed epoch
# (checkpoints are kept as outputs' siblings, so incomplete outputs are not deleted: --rerun-incomplete
# or a plain rerun resumes).
rule train_vae:
    input:
        manifest=rules.dataset.output.manifest,
        shards=rules.dataset.output.shards,
    output:
        model=MODEL_FILES["model"],
        history=MODEL_FILES["history"],
        summary=MODEL_FILES["summary"],
    log:
        "results/logs/train_vae/{model}.log",
    benchmark:
        "results/benchmarks/train_vae/{model}.tsv"
    wildcard_constraints:
        model=MODEL_PATTERN,
    conda:
        "../envs/tensorflow.yaml"
    threads: lookup(dpath="resources/train_vae/threads", within=config)
    resources:
        mem_mb=lookup(dpath="resources/train_vae/mem_mb", within=config),
        runtime=lookup(dpath="resources/train_vae/runtime", within=config),
        gpu=lookup(dpath="resources/train_vae/gpu", within=config),  # the Slurm executor's name
        _gpus=lookup(dpath="resources/train_vae/gpu", within=config),  # AWS Batch's
    params:
        epochs=lookup(dpath="epochs", within=config),
        latent_dim=model_latent_dim,
        settings=model_settings,
    script:
        "../scripts/train_vae.py"
