"""cellvae embed: the posterior mean of every image under a trained VAE, as per-cell profiles in the field's format
(a user's way from crops to profiles; pycytominer and copairs read them as they are).

One row per image: Metadata_Path and the manifest's columns as Metadata_* (plate -> Metadata_Plate, well,
compound, concentration_uM -> Metadata_Concentration_uM, moa -> Metadata_MoA; provenance columns such as git_blob,
sha256 and size_bytes left out: cellvae.profiling.field_format), then z0 … z{k-1} unprefixed. Images from a folder
get Metadata_Plate, Metadata_Well and Metadata_Site where their names carry them, as BBBC021's do: the plate is the
nearest parent folder named Week<n>_<plate> (Week4_27481), well and site the file name's _<Well>_s<site>_ part
(..._B02_s1_...). --out is Parquet unless its name ends .csv or .csv.gz. z0 … z{k-1}: by
default each image's posterior mean averaged over its 8 flips/rotations (--orientations, cellvae.imaging.orientations).
Images are composed as for the model's training (preprocessing.json beside the model); --images and --where
work as for train. The response-profile stage encodes with the same function (cellvae.profiling.response.encode_images).
--out never replaces a file the command reads (the model, a manifest, an image) and never lies inside a run folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from cellvae.cli.common import UsageError, add_model_arguments, model_inputs
from cellvae.core.config import defaults
from cellvae.core.files import refuse_overwriting_inputs
from cellvae.core.option_types import positive_int
from cellvae.imaging.orientations import ORIENTATIONS
from cellvae.model.run_folder import MODEL_KERAS, RUN_FILES, enclosing_run_folder
from cellvae.profiling.field_format import LATENT, field_metadata_from_name, to_field_format, write_profiles


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    p.add_argument(
        "--out",
        required=True,
        help="profiles to write (Metadata_* columns, z0 … z{k-1}): Parquet, or CSV for a .csv/.csv.gz name",
    )
    p.add_argument("--batch-size", type=positive_int, default=256, help="images encoded per batch")
    p.add_argument(
        "--orientations",
        type=int,
        choices=ORIENTATIONS,
        default=defaults()["response"]["analysis"]["orientations"],
        help="8: each image's mean over its 8 flips/rotations (a cell has no canonical orientation); 1: as it is "
        "(default: the config's response.analysis.orientations, %(default)s)",
    )


def refuse_reading_what_is_written(out: Path, inputs) -> None:
    """A usage error when --out names one of the command's inputs (or a folder), before anything is written."""
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder; give the file to write (e.g. cells.parquet)")
    try:
        refuse_overwriting_inputs(out, inputs)
    except ValueError as error:
        raise UsageError(str(error)) from None
    run_folder = enclosing_run_folder(out.parent)
    if run_folder is not None:
        raise UsageError(
            f"--out {out} is inside the run folder {run_folder}: it could replace a file of that run; "
            "give a path outside it"
        )


def refuse_latent_names(sources) -> None:
    """A one-line error when a manifest has a column named as a latent column (z0, z1, …, written beside it: the
    CSV would name two columns alike, and moa-eval would take the manifest's for a feature)."""
    for source in map(Path, sources):
        if source.suffix.lower() != ".csv" or not source.is_file():
            continue
        try:
            columns = pd.read_csv(source, nrows=0).columns
        except (OSError, ValueError, UnicodeDecodeError):  # read_inputs names what is wrong with it
            continue
        clashing = [column for column in columns if LATENT.fullmatch(str(column))]
        if clashing:
            raise ValueError(
                f"manifest {source} has a column {clashing[0]}, the name embed gives a latent column (z0, z1, …): "
                "rename that column"
            )


def with_name_metadata(table: pd.DataFrame) -> pd.DataFrame:
    """The image table with plate, well and site filled from the file names (field_metadata_from_name) where the
    table lacks them or leaves them empty."""
    table = table.copy()
    parsed = pd.DataFrame([field_metadata_from_name(path) for path in table["path"]], index=table.index)
    for column in parsed.columns:
        table[column] = table[column].fillna(parsed[column]) if column in table else parsed[column]
    return table


def run(args) -> int:
    out = Path(args.out)
    model = Path(args.model) / MODEL_KERAS if Path(args.model).is_dir() else Path(args.model)
    refuse_reading_what_is_written(out, [model, *(model.parent / name for name in RUN_FILES), *args.images])
    refuse_latent_names(args.images)
    from cellvae.profiling.response import encode_images

    vae, table, cells, _, _ = model_inputs(args)
    refuse_reading_what_is_written(out, table["path"])
    mu = encode_images(vae, cells, args.batch_size, args.orientations)
    latent = pd.DataFrame(mu, columns=[f"z{i}" for i in range(mu.shape[1])])
    table = pd.concat([with_name_metadata(table.reset_index(drop=True)), latent], axis=1)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_profiles(to_field_format(table), out)
    print(f"{len(table)} images, z = {mu.shape[1]} -> {out}")
    return 0
