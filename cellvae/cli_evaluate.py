"""cellvae evaluate: reconstruction metrics of a trained VAE beside its baselines, on single-cell images.

Prints JSON: the model's similarity_s (thesis S = 1 - mean|x - x_hat|/255), mse, psnr, ssim (reconstructing
from mu) and, where the crops carry a segmentation mask, s_cell and mse_cell over the cell's pixels only; then
`baselines`: the same metrics for zero, mean, median and pca (k = the latent dimension, fitted on the model's
training cells: baselines.npz beside the model). Same cells, same preprocessing, same code.
Images are composed as for training, with the preprocessing.json that `train` wrote beside the model (size,
channel order, intensity ranges); --images and --where work as for train.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from cellvae.baselines import Baselines
from cellvae.cli_train import BASELINES_NPZ, PREPROCESSING_JSON, add_image_arguments, parse_channel_order, read_inputs
from cellvae.config import defaults
from cellvae.inputs import compose_arrays
from cellvae.metrics import reconstruction_metrics


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model.keras written by train")
    add_image_arguments(p)
    p.add_argument("--pattern", default="*", help="glob of the images in folders (default: all)")
    p.add_argument(
        "--channel-order",
        help="input channels, e.g. dapi,tubulin,actin (default: as in training, else auto; see train --help)",
    )


def model_inputs(args) -> tuple:
    """(vae, image table, uint8 cells composed as for the model's training, masked, preprocessing dict); a clear
    error when the images are not of the kind the model was trained on."""
    model = Path(args.model)
    if not model.is_file():
        raise FileNotFoundError(f"model not found: {model}")
    preprocessing_json = model.parent / PREPROCESSING_JSON
    preprocessing = json.loads(preprocessing_json.read_text()) if preprocessing_json.is_file() else {}
    channel_order = parse_channel_order(args.channel_order or preprocessing.get("channel_order"))
    table, raw, kind, masked = read_inputs(args.images, args.where, args.pattern, channel_order)
    trained_on = preprocessing.get("input_kind", "uint8")  # pipeline models: the PNG stage's uint8 cells
    if kind != trained_on:
        described = {"uint8": "uint8 images (e.g. the PNG stage's)", "raw": "raw microscope crops (e.g. uint16)"}
        raise ValueError(
            f"{model} was trained on {described[trained_on]} but {', '.join(args.images)} holds "
            f"{described[kind]}: give images of the kind it was trained on"
        )
    from cellvae.model import load_vae  # TensorFlow: only once the inputs are known good

    vae = load_vae(model)
    cells, _ = compose_arrays(
        raw,
        vae.image_size,
        preprocessing.get("percentiles", defaults()["png"]["percentiles"]),  # pipeline models: uint8, unused
        preprocessing.get("scale"),
        preprocessing.get("ranges_rgb"),
    )
    return vae, table, cells, masked, preprocessing


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
    vae, _, cells, masked, _ = model_inputs(args)
    baselines_npz = Path(args.model).parent / BASELINES_NPZ
    baselines = Baselines.load(baselines_npz) if baselines_npz.is_file() else None
    result = evaluate_with_baselines(vae, cells, masked, baselines)
    if baselines is None:
        result["baselines"] = f"none: {baselines_npz} not found (written by `cellvae train`)"
    print(json.dumps(result))
    return 0
