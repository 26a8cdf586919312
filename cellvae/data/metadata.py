"""BBBC021 metadata: read and validate the image and MoA tables, select fields, record provenance."""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

import pandas as pd

from cellvae.core.channels import STAINS, file_column
from cellvae.core.files import sha256, write_csv

IMAGE_CSV = "BBBC021_v1_image.csv"
MOA_CSV = "BBBC021_v1_moa.csv"

IMAGE_COLUMNS = {
    "Image_Metadata_Plate_DAPI": "plate",
    "Image_Metadata_Well_DAPI": "well",
    "Image_Metadata_Compound": "compound",
    "Image_Metadata_Concentration": "concentration",
    "Replicate": "replicate",
    "ImageNumber": "image_number",
    "Image_PathName_DAPI": "path",
    **{f"Image_FileName_{stain}": file_column(stain) for stain in STAINS},
}
MOA_COLUMNS = ["compound", "concentration", "moa"]
SELECTED_COLUMNS = [
    "plate",
    "week",
    "well",
    "site",
    "compound",
    "concentration",
    "moa",
    "replicate",
    "image_number",
    "path",
    *map(file_column, STAINS),
]
CONTROL = "DMSO"
SITE_PATTERN = re.compile(r"_s(\d+)_w\d")


class MetadataError(ValueError):
    """A metadata table or a selection that cannot be used."""


def _read_csv(path: Path, required: list[str]) -> pd.DataFrame:
    """A metadata table with at least the required columns and one row; MetadataError naming the file if not."""
    header = ", ".join(required[:3]) + (", ..." if len(required) > 3 else "")
    expected = f"expected BBBC021's {path.name}: a header ({header}) and one row per entry"
    try:
        table = pd.read_csv(path)
    except pd.errors.EmptyDataError as error:
        raise MetadataError(f"{path}: the file is empty; {expected}; re-download it") from error
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise MetadataError(f"{path}: cannot read as CSV ({error}); re-download it") from error
    missing = [column for column in required if column not in table.columns]
    if missing:
        raise MetadataError(f"{path}: missing column(s) {', '.join(missing)}; is this the BBBC021 file? re-download it")
    if table.empty:
        raise MetadataError(f"{path}: has a header but no rows; {expected}; re-download it")
    return table


def read_image_table(path: str | Path) -> pd.DataFrame:
    """The image table with short column names, one row per field, plus week and site."""
    path = Path(path)
    table = _read_csv(path, list(IMAGE_COLUMNS)).rename(columns=IMAGE_COLUMNS)
    table = table[list(IMAGE_COLUMNS.values())].copy()
    table["week"] = table["plate"].str.split("_").str[0]
    sites = table["file_dapi"].str.extract(SITE_PATTERN, expand=False)
    if sites.isna().any():
        bad = table.loc[sites.isna(), "file_dapi"].iloc[0]
        raise MetadataError(f"{path}: file name {bad!r} has no _s<site>_w<channel> part")
    table["site"] = sites.astype(int)
    return table


def read_moa_table(path: str | Path) -> pd.DataFrame:
    """The compound–concentration → mechanism-of-action table."""
    return _read_csv(Path(path), MOA_COLUMNS)[MOA_COLUMNS]


def _check_known(requested: list[str], known: pd.Series, key: str) -> None:
    names = sorted(known.dropna().unique())
    for name in requested:
        if name not in names:
            close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
            hint = f"close names: {', '.join(close)}" if close else f"{len(names)} known, e.g. {', '.join(names[:5])}"
            what = key.rsplit(".", 1)[-1].rstrip("s")
            raise MetadataError(f"config key {key}: unknown {what} {name!r} ({hint})")


def select_fields(
    images: pd.DataFrame, moa: pd.DataFrame, plates="all", compounds="all", moas="all", section: str = ""
) -> pd.DataFrame:
    """Fields of the requested plates, compounds and MoAs; one row per field with its three channel files. section
    names where compounds and moas come from in errors ('response.': config keys response.compounds/moas)."""
    table = images.merge(moa, on=["compound", "concentration"], how="left")
    for key, requested, column in (
        ("plates", plates, "plate"),
        (f"{section}compounds", compounds, "compound"),
        (f"{section}moas", moas, "moa"),
    ):
        if requested == "all":
            continue
        _check_known(list(requested), table[column], key)
        table = table[table[column].isin(list(requested))]
    if table.empty:
        raise MetadataError("config keys plates/compounds/moas select no field: widen the selection")
    return table.sort_values(["plate", "well", "site"])[SELECTED_COLUMNS].reset_index(drop=True)


def file_record(path: str | Path) -> dict:
    """Size and sha256 of a file, to record what a run used."""
    return {"file": Path(path).name, "bytes": os.path.getsize(path), "sha256": sha256(path)}


def select_profiled_fields(
    images: pd.DataFrame, moa: pd.DataFrame, plates="all", compounds="all", moas="all", exclude_wells=()
) -> pd.DataFrame:
    """Fields of MoA-annotated treatments to profile, plus the DMSO fields of their plates (the reference).

    exclude_wells drops well positions on every plate (BBBC021: the taxol positive controls).
    """
    treated = select_fields(images, moa, plates, compounds, moas, section="response.")
    treated = treated[
        treated["moa"].notna() & (treated["compound"] != CONTROL) & ~treated["well"].isin(list(exclude_wells))
    ]
    if treated.empty:
        raise MetadataError(
            "config keys response.compounds/moas/exclude_wells select no treated field with an "
            "MoA: widen the selection or set response.enabled: false"
        )
    controls = select_fields(images, moa, sorted(treated["plate"].unique()), [CONTROL])
    return pd.concat([treated, controls]).sort_values(["plate", "well", "site"]).reset_index(drop=True)


def training_and_profiled_fields(
    images, moa, plates="all", compounds="all", moas="all", response: dict | None = None
) -> pd.DataFrame:
    """The union of the training selection and (response given) the profiling selection, each segmented once.

    Boolean columns train and response say which selection(s) a field belongs to.
    """
    training = select_fields(images, moa, plates, compounds, moas)
    keys = ["plate", "well", "site"]
    if response is None:
        return training.assign(train=True, response=False)
    profiled = select_profiled_fields(
        images,
        moa,
        plates,
        response.get("compounds", "all"),
        response.get("moas", "all"),
        response.get("exclude_wells", ()),
    )
    union = pd.concat([training, profiled]).drop_duplicates(keys).sort_values(keys).reset_index(drop=True)
    index = union.set_index(keys).index
    union["train"] = index.isin(training.set_index(keys).index)
    union["response"] = index.isin(profiled.set_index(keys).index)
    return union


def write_selection(
    image_csv, moa_csv, out_csv, plates="all", compounds="all", moas="all", response: dict | None = None
) -> pd.DataFrame:
    """Select fields (training, and profiling where response is given) and write them atomically to out_csv."""
    selected = training_and_profiled_fields(
        read_image_table(image_csv), read_moa_table(moa_csv), plates, compounds, moas, response
    )
    write_csv(selected, out_csv)
    return selected
