"""What the commands share: their errors, the image arguments and reading of inputs, and
the reading of a `cellvae train` run folder (the model, its preprocessing.json and baselines.npz).

Command modules (cellvae/cli/<command>.py) import from here, never from one another. Image reading and the
baselines (scikit-image, scikit-learn) are imported where they are used, so that the commands that need neither
(fetch, cost, aws) start without them.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from cellvae.model.run_folder import BASELINES_NPZ, MODEL_KERAS, PREPROCESSING_JSON, read_json

if TYPE_CHECKING:
    from cellvae.evaluation.baselines import Baselines

PREPROCESSING_KEYS = ("input_kind", "size", "channel_order", "percentiles", "scale", "ranges_rgb")


class UsageError(ValueError):
    """An option value that the command cannot use (answered like argparse's own errors: exit 2)."""


class CommandError(Exception):
    """A failure of a command, said in one line (exit 1)."""


def parse_channel_order(text):
    return None if text in (None, "auto") else tuple(text.split(","))


def add_image_arguments(p: argparse.ArgumentParser, prefix="", required=True) -> None:
    """--[prefix]images (repeatable) and --[prefix]where (repeatable)."""
    p.add_argument(
        f"--{prefix}images",
        action="append",
        required=required,
        default=None,
        help="folder of single-cell images, or a CSV manifest (repeatable)",
    )
    p.add_argument(
        f"--{prefix}where",
        action="append",
        default=[],
        metavar="KEY=VALUE[,VALUE...]",
        help="keep manifest rows whose column KEY has one of the values (repeatable: all must hold)",
    )


def read_inputs(sources, where, pattern, channel_order, max_side=None) -> tuple:
    """(image table: path and manifest columns, raw RGB arrays, input kind 'uint8' or 'raw', whether crops carry
    a cell mask); max_side: config png.max_crop_side (default: its schema default). Refused, one line naming a
    file: a source given twice or an image reached twice, a mix of kinds, images that cannot be used
    (`cellvae.imaging.images.read_images`)."""
    from cellvae.evaluation.metrics import inputs_are_masked
    from cellvae.imaging.images import RowFilterError, image_table, read_images

    try:
        table = image_table(sources, where, pattern)
    except RowFilterError as error:
        raise UsageError(f"--where: {error}") from None
    raw, kind = read_images(table["path"], channel_order, max_side, what=", ".join(map(str, sources)))
    return table, raw, kind, inputs_are_masked(raw)


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
    from cellvae.evaluation.baselines import Baselines

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
    from cellvae.imaging.images import compose_arrays
    from cellvae.model.vae import load_vae  # TensorFlow: only once the inputs are known good

    vae = load_vae(model)
    check_belongs(model, preprocessing, vae.latent_dim, vae.image_size)
    settings = (preprocessing["percentiles"], preprocessing["scale"], preprocessing["ranges_rgb"])
    cells, _ = compose_arrays(raw, vae.image_size, *settings, names=table["path"].tolist())
    return vae, table, cells, masked, preprocessing
