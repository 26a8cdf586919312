"""cellvae evaluate: reconstruction metrics of a trained VAE beside its baselines, on single-cell images.

Prints JSON: the model's similarity_s (thesis S = 1 - mean|x - x_hat|/255), mse, psnr, ssim (reconstructing
from mu) and, where the crops carry a segmentation mask, s_cell and mse_cell over the cell's pixels only; then
`baselines`: the same metrics for zero, mean, median and pca (k = the latent dimension, fitted on the model's
training cells: baselines.npz beside the model). Same cells, same preprocessing, same code.
Images are composed as for training, with the preprocessing.json that `train` wrote beside the model (size,
channel order, intensity ranges); --images and --where work as for train. A run folder whose preprocessing.json,
baselines.npz or model is missing, unreadable or of another run (each carries the run's fingerprint) is refused,
as are images of another kind than the training images (uint8 PNGs for a model trained on raw crops, or the reverse).
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from cellvae.baselines import Baselines
from cellvae.cli.common import add_model_arguments, model_inputs, run_baselines, run_folder
from cellvae.metrics import reconstruction_metrics
from cellvae.run_folder import BASELINES_NPZ


def evaluate_with_baselines(vae, cells, masked: bool, baselines: Baselines | None) -> dict:
    """The model's metrics and, when baselines are given, a `baselines` object with theirs."""
    result = {
        "latent_dim": vae.latent_dim,
        **reconstruction_metrics(cells, lambda x: np.asarray(vae.reconstruct(x)), masked),
    }
    if not masked:
        result["cell_metrics"] = "whole image only: the crops carry no segmentation mask"
    if baselines is not None:
        result["baselines"] = {
            name: {
                **({"k": baselines.k} if name == "pca" else {}),
                **reconstruction_metrics(cells, reconstruct, masked),
            }
            for name, reconstruct in baselines.reconstructors().items()
        }
    return result


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)


def run(args) -> int:
    model, preprocessing = run_folder(args.model)
    run_baselines(model, preprocessing, preprocessing.get("run", {}).get("latent_dim"))  # before TensorFlow
    vae, _, cells, masked, _ = model_inputs(args)
    baselines = run_baselines(model, preprocessing, vae.latent_dim)
    result = evaluate_with_baselines(vae, cells, masked, baselines)
    if baselines is None:
        result["baselines"] = f"none: {model.parent / BASELINES_NPZ} not found (written by `cellvae train`)"
    # the latent section (cellvae.latent): KL, active units, IWAE NLL per pixel (the decoder's sigma^2 fitted on the
    # run's training cells, data/train.npy) beside probabilistic PCA's (the baselines' PCA-k)
    from cellvae.config import defaults
    from cellvae.latent import latent_section
    from cellvae.run_folder import SHARDS

    train_npy = model.parent / SHARDS[0]
    train_cells = np.load(train_npy, mmap_mode="r") if train_npy.is_file() else None
    result["latent"] = latent_section(vae, cells, train_cells, baselines, defaults()["analysis"]["iwae_samples"])
    if train_cells is None:
        result["latent"]["notes"][0] += f" ({train_npy} not found: rerun the `cellvae train` command that wrote it)"
    print(json.dumps(result))
    return 0
