"""python -m cellvae evaluate: reconstruction metrics of a trained VAE on a folder of cell images.

Prints JSON: similarity_s (thesis S = 1 - mean|x - x_hat|/255), mse, psnr, ssim, reconstructing
from mu. Images are composed as for training: with the preprocessing.json that `train` wrote
beside the model (its size, channel order and intensity ranges) when present, otherwise as the
PNG stage does at the model's image size.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from cellvae.analysis import evaluate
from cellvae.cli_train import PREPROCESSING_JSON, parse_channel_order
from cellvae.inputs import compose_cells, list_images
from cellvae.model import load_vae


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m cellvae evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="model.keras written by train")
    p.add_argument("--images", required=True, help="folder of single-cell images")
    p.add_argument("--pattern", default="*", help="glob of the images to evaluate (default: all)")
    p.add_argument("--channel-order", help="input channels, e.g. dapi,tubulin,actin "
                                           "(default: as in training, else auto; see train --help)")
    args = p.parse_args(argv)
    model = Path(args.model)
    if not model.is_file():
        raise SystemExit(f"error: model not found: {model}")
    vae = load_vae(model)
    preprocessing_json = model.parent / PREPROCESSING_JSON
    preprocessing = json.loads(preprocessing_json.read_text()) if preprocessing_json.is_file() else {}
    channel_order = parse_channel_order(args.channel_order or preprocessing.get("channel_order"))
    cells, _ = compose_cells(list_images(args.images, args.pattern), vae.image_size, channel_order,
                             preprocessing.get("percentiles", (0.5, 99.8)), preprocessing.get("upscale", True),
                             preprocessing.get("ranges_rgb"))
    metrics, _ = evaluate(vae, cells)
    print(json.dumps(metrics))
    return 0
