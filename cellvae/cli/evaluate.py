"""cellvae evaluate: reconstruction metrics of a trained VAE beside its baselines, on single-cell images.

Prints JSON (indented; --json FILE writes it there instead), progress on stderr and, last, a verdict line: the
model against PCA-k on these cells. The JSON: n_cells; the model's similarity_s (thesis S = 1 - mean|x - x_hat|/255),
mse, psnr, ssim (reconstructing from mu) and, where the crops carry a segmentation mask, s_cell and mse_cell over the
cell's pixels only; then `baselines`: the same metrics for zero, mean, median and pca (k = the latent dimension,
fitted on the model's training cells: baselines.npz beside the model). Same cells, same preprocessing, same code.
Images are composed as for training, with the preprocessing.json that `train` wrote beside the model (size,
channel order, intensity ranges); --images and --where work as for train. A run folder whose preprocessing.json,
baselines.npz or model is missing, unreadable or of another run (each carries the run's fingerprint) is refused,
as are images of another kind than the training images (uint8 PNGs for a model trained on raw crops, or the reverse).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from cellvae.cli.common import UsageError, add_model_arguments, model_inputs, run_baselines, run_folder
from cellvae.core.files import atomic_write
from cellvae.evaluation.baselines import Baselines
from cellvae.evaluation.metrics import reconstruction_metrics
from cellvae.model.run_folder import BASELINES_NPZ


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
    p.add_argument("--json", type=Path, metavar="FILE", help="write the JSON here instead of to stdout")


def progress(message: str) -> None:
    print(f"cellvae evaluate: {message}", file=sys.stderr, flush=True)


def verdict(result: dict) -> str:
    """One line: the model's MSE (and SSIM) against PCA-k's on these cells, where PCA-k was fitted."""
    pca = result["baselines"].get("pca") if isinstance(result["baselines"], dict) else None
    if pca is None:
        return "verdict: no PCA-k baseline to compare with (baselines.npz not found)"
    change = result["mse"] / pca["mse"] - 1
    side = "beats" if change < 0 else "is worse than"
    return (
        f"verdict: the VAE {side} PCA-{pca['k']} (fitted on its training cells) on these {result['n_cells']} cells: "
        f"MSE {result['mse']:.4g} vs {pca['mse']:.4g} ({change:+.0%}), SSIM {result['ssim']:.3f} vs {pca['ssim']:.3f}"
    )


def training_cells(train_npy: Path):
    """The run's training cells (memory-mapped), None where the shard is missing; one line naming a damaged one."""
    if not train_npy.is_file():
        return None
    try:
        return np.load(train_npy, mmap_mode="r")
    except (ValueError, OSError) as error:
        raise ValueError(
            f"{train_npy} is cut short or damaged ({error}): rerun the `cellvae train` command that wrote it"
        ) from None


def run(args) -> int:
    model, preprocessing = run_folder(args.model)
    run_baselines(model, preprocessing, preprocessing.get("run", {}).get("latent_dim"))  # before TensorFlow
    if args.json is not None and args.json.is_dir():
        raise UsageError(f"--json {args.json} is a folder; give the file to write")
    progress(f"reading the model {model} and the images")
    vae, _, cells, masked, _ = model_inputs(args)
    baselines = run_baselines(model, preprocessing, vae.latent_dim)
    progress(f"reconstructing {len(cells)} cells with the model and its baselines")
    result = evaluate_with_baselines(vae, cells, masked, baselines)
    if baselines is None:
        result["baselines"] = f"none: {model.parent / BASELINES_NPZ} not found (written by `cellvae train`)"
    # the latent section (cellvae.evaluation.latent): KL, active units, IWAE NLL per pixel (the decoder's sigma^2
    # fitted on the
    # run's training cells, data/train.npy) beside probabilistic PCA's (the baselines' PCA-k)
    from cellvae.core.config import defaults
    from cellvae.evaluation.latent import latent_section
    from cellvae.model.run_folder import SHARDS

    progress(f"the latent space: KL, active units, IWAE NLL (K = {defaults()['analysis']['iwae_samples']})")
    train_npy = model.parent / SHARDS[0]
    train_cells = training_cells(train_npy)
    result["latent"] = latent_section(vae, cells, train_cells, baselines, defaults()["analysis"]["iwae_samples"])
    if train_cells is None:
        result["latent"]["notes"][0] += f" ({train_npy} not found: rerun the `cellvae train` command that wrote it)"
    text = json.dumps(result, indent=2)
    if args.json is None:
        print(text)
    else:
        atomic_write(args.json, lambda temporary: temporary.write_text(text + "\n"))
        progress(f"wrote {args.json}")
    print(verdict(result), file=sys.stderr)
    return 0
