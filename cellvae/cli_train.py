"""cellvae train: train a VAE on single-cell images (PNG, TIFF or .npy) from folders or manifests.

Images are composed exactly as the PNG stage does (cellvae.inputs), written as .npy shards under
OUT/data/, and trained with the pipeline's code (cellvae.train); rerunning resumes after the last
completed epoch. Beside the model: preprocessing.json (how inputs were composed: evaluate and embed reuse
it) and baselines.npz (mean / median image and PCA-k of the training cells, k = the latent dimension).

--images takes a folder or a CSV manifest (columns path or file, e.g. ../shared's by-plate manifest.csv),
and may be given several times; --where KEY=VALUE[,VALUE...] keeps the manifests' rows that match (several
--where: all must match). Example, four plates' DMSO cells for training and a fifth for validation:
  cellvae train --images manifest.csv --where compound=DMSO \
                --where plate=Week4_27481,Week4_27521,Week4_27542,Week4_27801
                --validation-images manifest.csv --validation-where compound=DMSO --validation-where plate=Week4_27821
                --latent-dim 75 --size 64 --epochs 30 --out runs/z75
Training settings come from the config file's train: section (png: for the image size and intensity
percentiles); options given here override them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from cellvae.baselines import Baselines
from cellvae.cli import UsageError
from cellvae.config import defaults, with_defaults
from cellvae.files import write_json
from cellvae.inputs import compose_arrays, image_table, read_images, write_shard
from cellvae.metrics import inputs_are_masked
from cellvae.png import resolve_scale
from cellvae.settings import DEFAULTS, NUMBERS, training_settings

PREPROCESSING_JSON = "preprocessing.json"
BASELINES_NPZ = "baselines.npz"


def load_config(path) -> dict:
    """The workflow config file over the defaults (config/config.schema.yaml); the defaults when path is None."""
    if path is None:
        return defaults()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path} (pass --config FILE or --config none)")
    return with_defaults(yaml.safe_load(path.read_text()) or {})


def parse_channel_order(text):
    return None if text in (None, "auto") else tuple(text.split(","))


def switch(text):
    return text if text == "auto" else text == "true"


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
    (`cellvae.inputs.read_images`)."""
    table = image_table(sources, where, pattern)
    raw, kind = read_images(table["path"], channel_order, max_side, what=", ".join(map(str, sources)))
    return table, raw, kind, inputs_are_masked(raw)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_image_arguments(p)
    add_image_arguments(p, "validation-", required=False)
    p.add_argument("--latent-dim", type=int, required=True)
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--out", required=True, help="output folder (model.keras, history.csv, checkpoints)")
    p.add_argument("--pattern", default="*", help="glob of the training images in folders (default: all)")
    p.add_argument(
        "--validation-pattern",
        help="glob of held-out validation images in the --images folders (excluded from training), e.g. '*_s3_*'",
    )
    p.add_argument(
        "--channel-order",
        default="auto",
        help="input channels, comma separated, e.g. dapi,tubulin,actin (default auto: "
        "tubulin,actin,dapi for .png as the PNG stage writes them, dapi,tubulin,actin "
        "for .npy/TIFF as BBBC021's w1,w2,w4)",
    )
    p.add_argument("--size", type=int, help="image side in px, a multiple of 8 (default: the config's png.size)")
    p.add_argument(
        "--scale",
        type=lambda text: text if text in ("auto", "fill") else float(text),
        help="resize factor of every cell: auto (the largest at which every given cell fits the canvas, "
        "at most 1), fill (each cell fills the canvas: the thesis) or a number (default: png.scale)",
    )
    p.add_argument(
        "--config",
        default="config/config.yaml",
        help="workflow config for train: and png: settings ('none': the defaults of config/config.schema.yaml)",
    )
    for key, default in DEFAULTS.items():
        kind = float if key in NUMBERS else {bool: lambda text: text == "true"}.get(type(default), type(default))
        if key in ("mixed_precision", "xla"):
            kind = switch
        p.add_argument(f"--{key.replace('_', '-')}", type=kind, help=f"override train.{key}")


def run(args) -> int:
    config = load_config(None if args.config == "none" else args.config)
    png = config.get("png", {})
    size = args.size or png["size"]
    if size < 8 or size % 8:
        raise UsageError(f"--size must be a positive multiple of 8, got {size}")
    percentiles = tuple(png["percentiles"])
    scale_setting = args.scale if args.scale is not None else png["scale"]
    settings = {key: value for key, value in config["train"].items() if key in DEFAULTS}
    settings.update({key: getattr(args, key) for key in DEFAULTS if getattr(args, key) is not None})
    try:
        settings = training_settings(args.latent_dim, args.epochs, settings)  # refuse bad values before writing
    except ValueError as error:
        raise UsageError(str(error)) from None

    from cellvae.train import train_on_shards, training_files  # TensorFlow: once the arguments are known good

    channel_order = parse_channel_order(args.channel_order)
    table, raw, kind, masked = read_inputs(args.images, args.where, args.pattern, channel_order, png["max_crop_side"])
    paths = table["path"].tolist()
    validation_paths = (
        image_table(args.validation_images, args.validation_where, args.pattern)["path"].tolist()
        if args.validation_images
        else []
    )
    if args.validation_pattern:
        validation_paths += image_table(args.images, [], args.validation_pattern)["path"].tolist()
    held_out = set(validation_paths)
    train_raw = [cell for path, cell in zip(paths, raw) if path not in held_out]
    if not train_raw:
        raise ValueError(
            "every training image is also a validation image; check --validation-pattern / --validation-images"
        )
    out = Path(args.out)
    validation_raw = read_images(
        validation_paths, channel_order, png["max_crop_side"], "validation images", (kind, paths[0])
    )[0]
    longest = [max(cell.shape[:2]) for cell in train_raw + validation_raw]
    scale = resolve_scale(scale_setting, longest, size, 1.0)  # every given cell fits the canvas
    cells, ranges = compose_arrays(train_raw, size, percentiles, scale)
    train_shards, validation_shards = [out / "data" / "train.npy"], []
    write_shard(train_shards[0], cells)
    if validation_paths:
        validation_cells, _ = compose_arrays(validation_raw, size, percentiles, scale, ranges)
        validation_shards = [out / "data" / "validation.npy"]
        write_shard(validation_shards[0], validation_cells)
    Baselines.fit(cells, args.latent_dim).save(out / BASELINES_NPZ)
    preprocessing = {
        "size": size,
        "channel_order": args.channel_order,
        "percentiles": list(percentiles),
        "scale": scale,
        "ranges_rgb": ranges.tolist(),
        "input_kind": kind,
        "masked": masked,
        "images": [str(Path(source).resolve()) for source in args.images],
        "where": args.where,
        "pattern": args.pattern,
        "n_train": len(cells),
        "n_validation": len(validation_paths),
        "validation_images": [str(Path(s).resolve()) for s in args.validation_images or []],
        "validation_where": args.validation_where,
        "validation_pattern": args.validation_pattern,
    }
    write_json(preprocessing, out / PREPROCESSING_JSON)
    train_on_shards(train_shards, validation_shards, args.latent_dim, args.epochs, **training_files(out), **settings)
    return 0
