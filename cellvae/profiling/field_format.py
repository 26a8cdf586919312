"""Profiles in the field's format (pycytominer, copairs, the Cell Painting Gallery): metadata as Metadata_*
columns, features (z0, z1, …) unprefixed, no provenance columns; Parquet unless a .csv/.csv.gz name asks for CSV.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from cellvae.core.files import atomic_write, write_csv

FIELD_NAMES = {  # our names (and a manifest's) -> the field's
    "path": "Metadata_Path",
    "plate": "Metadata_Plate",
    "well": "Metadata_Well",
    "site": "Metadata_Site",
    "compound": "Metadata_Compound",
    "concentration": "Metadata_Concentration_uM",
    "concentration_uM": "Metadata_Concentration_uM",
    "moa": "Metadata_MoA",
    "week": "Metadata_Batch",
    "batch": "Metadata_Batch",
    "replicate": "Metadata_Replicate",
    "n_cells": "Metadata_Count_Cells",
    "object": "Metadata_ObjectNumber",
    "split": "Metadata_Split",
}
PROVENANCE = {"git_blob", "sha256", "size_bytes", "source_repo_path", "source_url", "source", "commit", "md5"}
LATENT = re.compile(r"z\d+")  # the latent feature names cellvae embed and the response stage write: z0, z1, …
PLATE_FOLDER = re.compile(r"Week\d+_\d+")
WELL_SITE = re.compile(r"_([A-P]\d{2})_s(\d+)_")
CSV_SUFFIXES = (".csv", ".csv.gz")


def field_metadata_from_name(path) -> dict:
    """Plate, well and site a BBBC021 file name carries: plate is the nearest parent folder named Week<n>_<plate>
    (e.g. Week4_27481), well and site the name's _<Well>_s<site>_ part (e.g. _B02_s1_); {} for what is absent."""
    path = Path(path)
    found = {}
    plate = next((parent.name for parent in path.parents if PLATE_FOLDER.fullmatch(parent.name)), None)
    if plate is not None:
        found["plate"] = plate
    well_site = WELL_SITE.search(path.name)
    if well_site:
        found["well"], found["site"] = well_site.group(1), int(well_site.group(2))
    return found


def to_field_format(table: pd.DataFrame) -> pd.DataFrame:
    """A profile table with metadata renamed to Metadata_* (FIELD_NAMES; other non-feature columns prefixed
    Metadata_), provenance columns (PROVENANCE) dropped, features z0, z1, … last and unprefixed."""
    kept = [column for column in table.columns if column not in PROVENANCE]
    features = [column for column in kept if LATENT.fullmatch(str(column))]
    metadata = [column for column in kept if column not in features]
    renamed = {
        column: column
        if str(column).startswith("Metadata_")
        else FIELD_NAMES.get(column, f"Metadata_{str(column)[:1].upper()}{str(column)[1:]}")
        for column in metadata
    }
    return table[metadata + features].rename(columns=renamed)


def is_csv_name(path) -> bool:
    """Whether a file name asks for CSV (.csv, .csv.gz) rather than Parquet."""
    return str(path).lower().endswith(CSV_SUFFIXES)


def write_profiles(table: pd.DataFrame, path) -> None:
    """Write profiles atomically: CSV for a .csv/.csv.gz name, Parquet otherwise."""
    if is_csv_name(path):
        write_csv(table, path)
    else:
        atomic_write(path, lambda temporary: table.to_parquet(temporary, index=False))
