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
from pathlib import Path

import numpy as np

from cellvae.baselines import Baselines
from cellvae.cli_train import add_image_arguments, parse_channel_order, read_inputs
from cellvae.inputs import compose_arrays
from cellvae.metrics import reconstruction_metrics
from cellvae.run_folder import BASELINES_NPZ, MODEL_KERAS, PREPROCESSING_JSON, read_json

PREPROCESSING_KEYS = ("input_kind", "size", "channel_order", "percentiles", "scale", "ranges_rgb")


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model.keras written by train (or its run folder)")
    add_image_arguments(p)
    p.add_argument("--pattern", default="*", help="glob of the images in folders (default: all)")
    p.add_argument(
        "--channel-order",
        help="input channels, e.g. dapi,tubulin,actin (default: as in training, else auto; see train --help)",
    )


def run_folder(model_option) -> tuple[Path, dict]:
    """(model.keras, its preprocessing.json) of a `cellvae train` run folder (--model: the model or the folder);
    a one-line error naming the file that is missing, unreadable or of another run."""
    model = Path(model_option)
    if model.is_dir():
        model = model / MODEL_KERAS
    if not model.is_file():
        raise FileNotFoundError(f"model not found: {model} (pass the model.keras of a `cellvae train` run folder)")
    rerun = f"rerun the `cellvae train` command that wrote {model.parent} to rewrite it"
    preprocessing = read_json(
        model.parent / PREPROCESSING_JSON,
        f"evaluate and embed take a model trained by `cellvae train`, whose run folder says how its inputs were "
        f"composed (a model.keras alone does not); {rerun}",
    )
    missing = [key for key in PREPROCESSING_KEYS if key not in preprocessing]
    if missing:
        raise ValueError(f"{model.parent / PREPROCESSING_JSON} lacks {missing}: {rerun}")
    summary_json = model.parent / "training.json"
    trained = read_json(summary_json, rerun).get("fingerprint") if summary_json.is_file() else None
    run_id = preprocessing.get("run", {}).get("id")
    if trained and run_id and trained != run_id:
        raise ValueError(
            f"{model.parent}: {PREPROCESSING_JSON} (run {run_id}) is not of the run that trained {model.name} "
            f"(run {trained}, training.json): {rerun}"
        )
    return model, preprocessing


def check_belongs(model: Path, preprocessing: dict, latent_dim: int, image_size: int) -> None:
    """A one-line error when the loaded model is not the one preprocessing.json was written for."""
    expected = (preprocessing.get("run", {}).get("latent_dim", latent_dim), preprocessing["size"])
    if (latent_dim, image_size) != expected:
        raise ValueError(
            f"{model} (z = {latent_dim}, {image_size} px) is not the model of {model.parent / PREPROCESSING_JSON} "
            f"(z = {expected[0]}, {expected[1]} px): the run folder mixes files of different runs; retrain into it "
            "with --overwrite, or into a fresh --out"
        )


def run_baselines(model: Path, preprocessing: dict, latent_dim: int | None) -> Baselines | None:
    """The baselines.npz beside the model (None if there is none), checked to be of the same run (and of a model
    of latent_dim, when known)."""
    path = model.parent / BASELINES_NPZ
    if not path.is_file():
        return None
    try:
        baselines = Baselines.load(path)
    except ValueError as error:
        raise ValueError(f"{error}: rerun the `cellvae train` command that wrote {model.parent}") from None
    run_id = preprocessing.get("run", {}).get("id")
    of_another_run = bool(baselines.run_id and run_id and baselines.run_id != run_id)
    if latent_dim is not None:  # PCA-k beside a model of latent dimension k (k is capped by the cells: never more)
        of_another_run |= baselines.latent_dim not in (None, latent_dim) or baselines.k > latent_dim
    if of_another_run:
        raise ValueError(
            f"{path} (PCA-{baselines.k}, run {baselines.run_id}) is not of the run of {model} (z = {latent_dim}, "
            f"run {run_id}): rerun the `cellvae train` command that wrote {model.parent} to rewrite it"
        )
    return baselines


def model_inputs(args) -> tuple:
    """(vae, image table, uint8 cells composed as for the model's training, masked, preprocessing dict); a clear
    error when the run folder's files do not belong together or the images are not of the kind the model was
    trained on."""
    model, preprocessing = run_folder(args.model)
    channel_order = parse_channel_order(args.channel_order or preprocessing.get("channel_order"))
    table, raw, kind, masked = read_inputs(args.images, args.where, args.pattern, channel_order)
    trained_on = preprocessing["input_kind"]
    if kind != trained_on:
        described = {"uint8": "uint8 images (e.g. the PNG stage's)", "raw": "raw microscope crops (e.g. uint16)"}
        raise ValueError(
            f"{model} was trained on {described[trained_on]} but {', '.join(args.images)} holds "
            f"{described[kind]}: give images of the kind it was trained on"
        )
    from cellvae.model import load_vae  # TensorFlow: only once the inputs are known good

    vae = load_vae(model)
    check_belongs(model, preprocessing, vae.latent_dim, vae.image_size)
    cells, _ = compose_arrays(
        raw, vae.image_size, preprocessing["percentiles"], preprocessing["scale"], preprocessing["ranges_rgb"]
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
