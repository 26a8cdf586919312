# One convolutional VAE per configured latent dimension.
rule train_vae:
    input:
        manifest=rules.dataset.output.manifest,
    output:
        model="results/models/z{latent_dim}/model.keras",
        history="results/models/z{latent_dim}/history.csv",
        summary="results/models/z{latent_dim}/training.json",
    wildcard_constraints:
        latent_dim=r"\d+",
    params:
        epochs=lookup(dpath="epochs", within=config),
        batch_size=lookup(dpath="train/batch_size", within=config),
        learning_rate=lookup(dpath="train/learning_rate", within=config),
        r_loss_factor=lookup(dpath="train/r_loss_factor", within=config),
        batch_norm=lookup(dpath="train/batch_norm", within=config),
        dropout=lookup(dpath="train/dropout", within=config),
        seed=lookup(dpath="train/seed", within=config),
    threads: workflow.cores
    log:
        "results/logs/train_vae/z{latent_dim}.log",
    benchmark:
        "results/benchmarks/train_vae/z{latent_dim}.tsv"
    script:
        "../scripts/train_vae.py"
