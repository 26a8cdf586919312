"""python -m cellvae train: train a VAE on a folder of single-cell images (PNG, TIFF or .npy).

Images are composed exactly as the PNG stage does (cellvae.inputs), written as .npy shards under
OUT/data/, and trained with the pipeline's code (cellvae.train); rerunning resumes after the last
completed epoch. Training settings come from the config file's train: section (png: for the image
size and intensity percentiles); options given here override them.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import yaml

from cellvae.inputs import compose_cells, list_images, write_shard
from cellvae.train import DEFAULTS, atomic_write, train_on_shards

PREPROCESSING_JSON = "preprocessing.json"


def load_config(path) -> dict:
    """The workflow config (train: and png: sections), or {} when path is None."""
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path} (pass --config FILE or --config none)")
    return yaml.safe_load(path.read_text()) or {}


def parse_channel_order(text):
    return None if text in (None, "auto") else tuple(text.split(","))


def switch(text):
    return text if text == "auto" else text == "true"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m cellvae train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", required=True, help="folder of single-cell images")
    p.add_argument("--latent-dim", type=int, required=True)
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--out", required=True, help="output folder (model.keras, history.csv, checkpoints)")
    p.add_argument("--pattern", default="*", help="glob of the training images in --images (default: all)")
    p.add_argument("--validation-pattern", help="glob of held-out validation images in --images "
                                                "(excluded from training), e.g. '*_s3_*'")
    p.add_argument("--channel-order", default="auto",
                   help="input channels, comma separated, e.g. dapi,tubulin,actin (default auto: "
                        "tubulin,actin,dapi for .png as the PNG stage writes them, dapi,tubulin,actin "
                        "for .npy/TIFF as BBBC021's w1,w2,w4)")
    p.add_argument("--size", type=int, help="image side in px (default: config png.size, else 128)")
    p.add_argument("--config", default="config/config.yaml",
                   help="workflow config for train: and png: settings ('none': built-in defaults)")
    for key, default in DEFAULTS.items():
        kind = {bool: lambda text: text == "true", type(None): float}.get(type(default), type(default))
        if key in ("mixed_precision", "xla"):
            kind = switch
        p.add_argument(f"--{key.replace('_', '-')}", type=kind, help=f"override train.{key}")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    config = load_config(None if args.config == "none" else args.config)
    png = config.get("png", {})
    size = args.size or png.get("size", 128)
    percentiles = tuple(png.get("percentiles", (0.5, 99.8)))
    upscale = png.get("upscale", True)
    settings = {key: value for key, value in config.get("train", {}).items() if key in DEFAULTS}
    settings.update({key: getattr(args, key) for key in DEFAULTS if getattr(args, key) is not None})

    channel_order = parse_channel_order(args.channel_order)
    paths = list_images(args.images, args.pattern)
    validation_paths = list_images(args.images, args.validation_pattern) if args.validation_pattern else []
    held_out = set(validation_paths)
    paths = [path for path in paths if path not in held_out]
    if not paths:
        raise SystemExit(f"error: every image matching --pattern also matches --validation-pattern in {args.images}")
    out = Path(args.out)
    cells, ranges = compose_cells(paths, size, channel_order, percentiles, upscale)
    train_shards, validation_shards = [out / "data" / "train.npy"], []
    write_shard(train_shards[0], cells)
    if validation_paths:
        validation_cells, _ = compose_cells(validation_paths, size, channel_order, percentiles, upscale, ranges)
        validation_shards = [out / "data" / "validation.npy"]
        write_shard(validation_shards[0], validation_cells)
    preprocessing = {"size": size, "channel_order": args.channel_order, "percentiles": list(percentiles),
                     "upscale": upscale, "ranges_rgb": ranges.tolist(), "images": os.path.abspath(args.images),
                     "pattern": args.pattern, "validation_pattern": args.validation_pattern}
    atomic_write(out / PREPROCESSING_JSON, lambda path: path.write_text(json.dumps(preprocessing, indent=2) + "\n"))
    train_on_shards(train_shards, validation_shards, out, args.latent_dim, args.epochs, **settings)
    return 0
