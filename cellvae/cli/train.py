"""cellvae train: train a VAE on single-cell images (PNG, TIFF or .npy) from folders or manifests.

Images are composed exactly as the PNG stage does (cellvae.imaging.images), written as .npy shards under
OUT/data/, and trained with the pipeline's code (cellvae.model.train); rerunning resumes after the last
completed epoch (Ctrl-C says from which). Beside the model: preprocessing.json (how inputs were composed:
evaluate and embed reuse it; the run's record) and baselines.npz (mean / median image and PCA-k of the
training cells, k = the latent dimension). An OUT that holds another run (other settings, images or fewer
epochs) is refused, saying what differs, unless --overwrite; one train at a time holds OUT (OUT/.lock; a second
is refused, naming the first's pid). More --epochs continue a finished run where the learning-rate schedule allows
(--lr-schedule constant). Checkpoints (OUT/checkpoints/, checkpoint.json) hold weights, optimizer state, epoch, RNG
states and history; a moved run folder still resumes (its fingerprint holds the cells' content, not their path).

--images takes a folder or a CSV manifest (columns path or file, e.g. ../shared's by-plate manifest.csv),
and may be given several times; --where KEY=VALUE[,VALUE...] keeps the manifests' rows that match (several
--where: all must match); a manifest's relative paths are found beside it or in a folder above it. uint8 inputs
keep their 0..255 scale, others are scaled by per-channel percentile ranges (png.percentiles) of the training
cells. Refused, in one line naming the file: an image reached twice, a grey PNG among colour ones (grey PNGs only
are read into all three channels), validation images of another kind than the training images, non-finite
pixels, an image larger than png.max_crop_side (checked from its header) and anything but a regular file.
Example, four plates' DMSO cells for training and a fifth for validation:
  cellvae train --images manifest.csv --where compound=DMSO \\
      --where plate=Week4_27481,Week4_27521,Week4_27542,Week4_27801 \\
      --validation-images manifest.csv --validation-where compound=DMSO --validation-where plate=Week4_27821 \\
      --latent-dim 75 --size 64 --epochs 30 --out runs/z75
Training settings are the schema's defaults (config/config.schema.yaml, train: and png:), or a config file's
(--config FILE); options given here override them, and all are checked against the schema before anything is
written. No config file is needed: the command works from any folder.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from cellvae.cli.common import CommandError, UsageError, add_image_arguments, parse_channel_order, read_inputs
from cellvae.core.config import TRAIN_DEFAULTS as DEFAULTS
from cellvae.core.config import defaults, with_defaults
from cellvae.core.files import write_json
from cellvae.core.option_types import bounded
from cellvae.core.schema_check import resolved, rule_at, validate
from cellvae.evaluation.baselines import Baselines
from cellvae.imaging.images import compose_arrays, image_table, read_images
from cellvae.imaging.png import resolve_scale
from cellvae.imaging.shards import write_shard
from cellvae.model.run_folder import (
    BASELINES_NPZ,
    CHECKPOINT_JSON,
    MODEL_KERAS,
    PREPROCESSING_JSON,
    array_digest,
    clear,
    differences,
    fingerprint,
    locked,
)

SWITCH_WORDS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}
NULL_WORDS = ("none", "null")
INTEGER, NUMBER = bounded(int), bounded(float)  # the options' bounds are the schema's, checked by validate


def load_config(path) -> dict:
    """The workflow config file over the defaults (config/config.schema.yaml), checked against the schema; the
    defaults when path is None. A one-line error naming the file (and the key) when it is unusable."""
    if path is None:
        return defaults()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path} (pass --config FILE or --config none)")
    try:
        config = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        where = getattr(error, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        raise UsageError(f"config file {path} is not valid YAML{at}: fix it, or pass --config none") from None
    if not isinstance(config, dict | None):
        raise UsageError(f"config file {path} must hold a mapping of config keys, not {type(config).__name__}")
    config = with_defaults(config or {})
    try:
        validate(config, source=f"config file {path}")
    except ValueError as error:
        raise UsageError(str(error)) from None
    return config


def switch(text):
    """true, false (yes/no, on/off, 1/0, any case) or auto."""
    word = text.strip().lower()
    if word == "auto":
        return "auto"
    if word not in SWITCH_WORDS:
        raise argparse.ArgumentTypeError(f"expected true, false or auto, got {text!r}")
    return SWITCH_WORDS[word]


def or_null(kind):
    """kind, or none/null (the setting off: e.g. --clip-norm none), said as "null"."""
    return lambda text: "null" if text.strip().lower() in NULL_WORDS else kind(text)


def scale_value(text):
    """auto, fill or a number."""
    if text in ("auto", "fill"):
        return text
    try:
        return NUMBER(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected auto, fill or a number > 0, got {text!r}") from None


def option(key: str) -> str:
    """The option of a train: setting: kl_weight -> --kl-weight."""
    return f"--{key.replace('_', '-')}"


def option_kind(rule: dict) -> dict:
    """add_argument's type (or action) for a setting's rule in config/config.schema.yaml (rule_at)."""
    kinds = {resolved(branch).get("type") for branch in rule.get("oneOf", [rule])}
    if kinds == {"boolean"}:
        return {"action": argparse.BooleanOptionalAction}
    if kinds == {"boolean", "string"}:
        return {"type": switch, "metavar": "{true,false,auto}"}
    kind = INTEGER if "integer" in kinds else NUMBER if "number" in kinds else str
    return {"type": or_null(kind) if "null" in kinds else kind}


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_image_arguments(p)
    add_image_arguments(p, "validation-", required=False)
    p.add_argument("--latent-dim", type=INTEGER, required=True, help="dimensions of the latent space, e.g. 75")
    p.add_argument("--epochs", type=INTEGER, required=True, help="passes over the training cells, e.g. 20")
    p.add_argument("--out", required=True, help="output folder (model.keras, history.csv, checkpoints)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run that --out holds (model, checkpoints, history, baselines) when its settings or "
        "images differ; without it such a run is kept and this one refused",
    )
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
    p.add_argument("--size", type=INTEGER, help="image side in px, a multiple of 8, at least 16 (default: png.size)")
    p.add_argument(
        "--scale",
        type=scale_value,
        help="resize factor of every cell: auto (the largest at which every given cell fits the canvas, "
        "at most 1), fill (each cell fills the canvas: the thesis) or a number (default: png.scale)",
    )
    p.add_argument(
        "--config",
        help="a workflow config file (e.g. the checkout's config/config.yaml) whose train: and png: settings "
        "override the defaults (default: none, the schema's defaults)",
    )
    settings = p.add_argument_group("training settings (train: of config/config.schema.yaml; the defaults shown)")
    for key, value in DEFAULTS.items():
        rule = rule_at(["train", key])
        choices = f"{'|'.join(rule['enum'])}; " if "enum" in rule else ""
        kind = {"metavar": "V", **option_kind(rule)}
        if kind.get("action"):
            kind.pop("metavar")
        settings.add_argument(option(key), **kind, help=f"{choices}default {value}")


def checked_settings(args) -> tuple[dict, dict]:
    """(png: settings, train: settings): the config file's with the options over them, checked against
    config/config.schema.yaml; a UsageError naming the option (or the file's key) and its bound."""
    source = None if args.config in (None, "none") else args.config
    config = load_config(source)
    given = {key: getattr(args, key) for key in DEFAULTS if getattr(args, key) is not None}
    config["train"].update({key: None if value == "null" else value for key, value in given.items()})
    config["epochs"], config["latent_dims"] = args.epochs, [args.latent_dim]
    names = {f"train.{key}": option(key) for key in given}
    names |= {"epochs": "--epochs", "latent_dims[0]": "--latent-dim", "png.size": "--size", "png.scale": "--scale"}
    for key, value in (("size", args.size), ("scale", args.scale)):
        if value is not None:
            config["png"][key] = value
    try:
        validate(config, names, f"config file {source}" if source else None)
    except ValueError as error:
        raise UsageError(str(error)) from None
    return config["png"], {key: config["train"][key] for key in DEFAULTS}


def completed_epochs(out: Path) -> int:
    try:
        return int(json.loads((out / CHECKPOINT_JSON).read_text())["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def run(args) -> int:
    try:
        return train(args)
    except KeyboardInterrupt:
        done = completed_epochs(Path(args.out))
        print(f"cellvae train: interrupted; rerun the same command to resume from epoch {done + 1}", file=sys.stderr)
        return 130


def check_outputs_and_filters(args) -> None:
    """Usage errors, before anything is read: --out naming a file, --validation-where without what it filters."""
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise UsageError(f"--out {args.out} is a file: give the folder of the run (a new or a run's folder)")
    if args.validation_where and not args.validation_images:
        raise UsageError(
            "--validation-where filters the rows of --validation-images: give --validation-images (it may be the "
            "manifest that --images names)"
        )


def train(args) -> int:
    check_outputs_and_filters(args)
    png, settings = checked_settings(args)  # bad values are refused before anything is read or written
    cells, validation_cells, preprocessing = composed_cells(args, png)
    preprocessing["run"] = run_record(args, png, settings, preprocessing, cells, validation_cells)
    fit_in_folder(Path(args.out), args.overwrite, preprocessing, cells, validation_cells, settings)
    return 0


def validation_paths(args) -> list:
    """The held-out images: --validation-images (filtered by --validation-where) and the --images that match
    --validation-pattern."""
    paths = []
    if args.validation_images:
        paths = image_table(args.validation_images, args.validation_where, args.pattern)["path"].tolist()
    if args.validation_pattern:
        paths += image_table(args.images, [], args.validation_pattern)["path"].tolist()
    return paths


def composed_cells(args, png: dict) -> tuple:
    """(training cells, validation cells or None, preprocessing: how they were composed), uint8 arrays composed
    as the PNG stage does, at one scale at which every given cell fits the canvas and with the training cells'
    intensity ranges."""
    size, percentiles = png["size"], tuple(png["percentiles"])
    channel_order = parse_channel_order(args.channel_order)
    table, raw, kind, masked = read_inputs(args.images, args.where, args.pattern, channel_order, png["max_crop_side"])
    paths = table["path"].tolist()
    held_out = validation_paths(args)
    excluded = set(held_out)
    train_raw = [cell for path, cell in zip(paths, raw) if path not in excluded]
    if not train_raw:
        raise ValueError(
            "every training image is also a validation image; check --validation-pattern / --validation-images"
        )
    validation_raw = read_images(held_out, channel_order, png["max_crop_side"], "validation images", (kind, paths[0]))[
        0
    ]
    longest = [max(cell.shape[:2]) for cell in train_raw + validation_raw]
    scale = resolve_scale(png["scale"], longest, size, 1.0)  # every given cell fits the canvas
    cells, ranges = compose_arrays(train_raw, size, percentiles, scale)
    validation_cells = compose_arrays(validation_raw, size, percentiles, scale, ranges)[0] if held_out else None
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
        "n_validation": len(held_out),
        "validation_images": [str(Path(s).resolve()) for s in args.validation_images or []],
        "validation_where": args.validation_where,
        "validation_pattern": args.validation_pattern,
    }
    return cells, validation_cells, preprocessing


def run_record(args, png: dict, settings: dict, preprocessing: dict, cells, validation_cells) -> dict:
    """What another run into the same folder is compared with (cellvae.model.run_folder): the run's fingerprint, its
    cells' digests and the options that made it."""
    train_digest = array_digest(cells)
    return {
        "id": fingerprint(args.latent_dim, png["size"], args.epochs, settings, [train_digest]),
        "latent_dim": args.latent_dim,
        "epochs": args.epochs,
        "train_cells": train_digest,
        "validation_cells": None if validation_cells is None else array_digest(validation_cells),
        "options": {
            "--latent-dim": args.latent_dim,
            **{f"--{key.replace('_', '-')}": preprocessing[key] for key in ("images", "where", "pattern")},
            **{f"--{key.replace('_', '-')}": preprocessing[key] for key in preprocessing if "validation_" in key},
            "--channel-order": args.channel_order,
            "--size": png["size"],
            "--scale": png["scale"],
            "png.percentiles": list(png["percentiles"]),
            **{option(key): value for key, value in settings.items() if key not in ("mixed_precision", "xla")},
        },
    }


def fit_in_folder(out: Path, overwrite: bool, preprocessing: dict, cells, validation_cells, settings: dict) -> None:
    """Hold `out` (one run at a time), refuse or (overwrite) clear another run there, write the cells as .npy shards
    and baselines.npz, then train (resuming after the last completed epoch); preprocessing.json, the run's record,
    is written at the start of a new run and again when it ends (a continuation's interruption leaves the finished
    run's record and model as they were)."""
    run = preprocessing["run"]
    with locked(out):  # one run at a time in a folder; the kernel releases it when this process ends
        found = differences(out, run)
        if found and not overwrite:
            raise CommandError(
                f"{out} holds another run ({'; '.join(found)}): pass --overwrite to replace it, or give another --out"
            )
        if overwrite:
            clear(out)
        if not (out / PREPROCESSING_JSON).exists():  # a continuation keeps the finished run's record until it ends
            write_json(preprocessing, out / PREPROCESSING_JSON)
        train_shards, validation_shards = [out / "data" / "train.npy"], []
        write_shard(train_shards[0], cells)
        if validation_cells is not None:
            validation_shards = [out / "data" / "validation.npy"]
            write_shard(validation_shards[0], validation_cells)
        Baselines.fit(cells, run["latent_dim"], run_id=run["id"]).save(out / BASELINES_NPZ)
        from cellvae.model.train import train_on_shards, training_files  # TensorFlow: once the run is known good

        train_on_shards(
            train_shards, validation_shards, run["latent_dim"], run["epochs"], **training_files(out), **settings
        )
        write_json(preprocessing, out / PREPROCESSING_JSON)
    if validation_cells is not None:
        print(held_out_verdict(out, validation_cells))


def held_out_verdict(out: Path, validation_cells) -> str:
    """The trained model's MSE on the validation cells beside PCA-k's (fitted on the training cells)."""
    import numpy as np

    from cellvae.evaluation.metrics import reconstruction_metrics
    from cellvae.model.vae import load_vae

    vae = load_vae(out / MODEL_KERAS)
    baselines = Baselines.load(out / BASELINES_NPZ)
    model = reconstruction_metrics(validation_cells, lambda x: np.asarray(vae.reconstruct(x)), False)["mse"]
    pca = reconstruction_metrics(validation_cells, baselines.reconstructors()["pca"], False)["mse"]
    side = "better" if model < pca else "worse"
    return (
        f"held-out: MSE {model:.4g} on {len(validation_cells)} validation cells vs PCA-{baselines.k}'s {pca:.4g} "
        f"({model / pca - 1:+.0%}: {side} than PCA-{baselines.k})"
    )
