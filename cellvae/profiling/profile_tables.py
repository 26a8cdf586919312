"""Per-cell and per-well profile tables as users give them: read with one-line errors naming the file and column
(separator, header, compressed files, FIFOs, numbers), wells named as B02, repeated cells refused, annotated with
compound, concentration, MoA and batch, and which columns are features (never metadata such as Metadata_*,
ImageNumber or an index column). cellvae.profiling.moa scores them.
"""

from __future__ import annotations

import fnmatch
import re
import zlib

import numpy as np
import pandas as pd
from pyarrow import ArrowException as ArrowError

from cellvae.core.files import regular_file
from cellvae.data.metadata import CONTROL, MetadataError
from cellvae.profiling.field_format import LATENT
from cellvae.profiling.moa import WELL_KEYS

ALIASES = {  # CellProfiler's, a manifest's and the field's (pycytominer, copairs, cellvae embed) names of ours
    "Image_Metadata_Plate": "plate",
    "Image_Metadata_Well": "well",
    "concentration_uM": "concentration",
    "Metadata_Plate": "plate",
    "Metadata_Well": "well",
    "Metadata_Compound": "compound",
    "Metadata_Concentration_uM": "concentration",
    "Metadata_MoA": "moa",
    "Metadata_Batch": "batch",
    "Metadata_Path": "path",
}
PARQUET_MAGIC = b"PAR1"
NOT_FEATURES = {  # compared case-blind, beside WELL_KEYS and METADATA_PREFIXES
    *("n_cells", "site", "replicate", "week", "label", "size_bytes", "scale", "split", "path", "file", "object"),
    *("imagenumber", "objectnumber", "tablenumber", "image_number", "object_number", "table_number"),
}
METADATA_PREFIXES = ("unnamed:", "metadata_", "image_")  # pandas' index column; CellProfiler's metadata
WELL_NAME = re.compile(r"([A-Za-z]+)0*(\d+)")
SITE_COLUMNS = ("TableNumber", "ImageNumber", "site", "Metadata_Site", "Image_Metadata_Site")
OBJECT_COLUMNS = ("ObjectNumber", "object", "object_number", "Metadata_ObjectNumber")


def annotated_only(table: pd.DataFrame, source: str, unit: str, notes: list | None) -> pd.DataFrame:
    """The rows with an MoA or of DMSO; notes (where given) gets one line counting the rows left out."""
    keep = table["moa"].notna() | (table["compound"] == CONTROL)
    if notes is not None and not keep.all():
        left_out = table[~keep]
        first = left_out.iloc[0]
        treatments = len(left_out[["compound", "concentration"]].drop_duplicates())
        notes.append(
            f"{source}: left out {len(left_out)} {unit}(s) of {treatments} treatment(s) without an MoA (e.g. "
            f"{first.compound} @ {first.concentration:g}): only treatments with an MoA are scored"
        )
    return table[keep].reset_index(drop=True)


def annotate_wells(
    profiles: pd.DataFrame, images: pd.DataFrame, moa: pd.DataFrame, source: str, notes: list | None = None
) -> pd.DataFrame:
    """Plate/well profiles joined with compound, concentration, batch (week) and MoA; unannotated wells dropped
    (annotated_only: counted in notes)."""
    repeated = profiles.duplicated(["plate", "well"], keep=False)
    if repeated.any():
        first = profiles.loc[repeated, ["plate", "well"]].iloc[0]
        raise MetadataError(
            f"{source}: {repeated.sum()} rows repeat a plate and well, e.g. {first.plate} {first.well}: give one "
            "row per well (per-cell tables go to --cells)"
        )
    wells = images[["plate", "well", "compound", "concentration", "week"]].drop_duplicates(["plate", "well"])
    joined = profiles.merge(wells, on=["plate", "well"], how="left", validate="one_to_one")
    unknown = joined["compound"].isna()
    if unknown.any():
        first = joined.loc[unknown, ["plate", "well"]].iloc[0]
        raise MetadataError(
            f"{source}: {unknown.sum()} well(s) not in the image metadata, e.g. "
            f"{first.plate} {first.well}: is the metadata of the same screen?"
        )
    joined = joined.merge(moa, on=["compound", "concentration"], how="left").rename(columns={"week": "batch"})
    return annotated_only(joined, source, "well", notes)


def well_names(wells: pd.Series) -> pd.Series:
    """Well names as letters and two digits (B2, b02 → B02), so that one well has one name; others as they are."""
    parts = wells.astype(str).str.strip().str.extract(f"^{WELL_NAME.pattern}$")
    named = parts[0].notna()
    return wells.where(~named, parts[0].str.upper() + parts[1].str.zfill(2))


def numbers(values: pd.Series, source, column: str) -> pd.Series:
    """values as numbers (empty ones NaN); MetadataError naming the source, the column and its first non-number
    (its line, for a table as read: index 0 is line 2)."""
    parsed = pd.to_numeric(values, errors="coerce")
    bad = parsed.isna() & values.notna()
    if bad.any():
        first = bad.idxmax()
        line = f" (line {first + 2})" if isinstance(first, (int, np.integer)) else ""
        raise MetadataError(
            f"{source}: column {column} holds {values[first]!r}{line}, not a number: give plain numbers (e.g. 0.3, "
            "no unit)"
        )
    return parsed


def check_header(names: list[str], path) -> None:
    """MetadataError when a header is not a comma-separated list of distinct names without spaces around them."""
    separated = next((name for name in names if ";" in name or "\t" in name), None)
    if separated is not None:
        raise MetadataError(
            f"{path}: the header reads {separated[:60]!r}: check the separator (a comma-separated table is expected)"
        )
    spaced = next((name for name in names if name != name.strip()), None)
    if spaced is not None:
        raise MetadataError(
            f"{path}: column name {spaced!r} has spaces around it: check the header (names separated by a comma "
            "alone, e.g. plate,well,…)"
        )
    repeated = next((name for name in names if name and names.count(name) > 1), None)
    if repeated is not None:
        raise MetadataError(
            f"{path}: the header names column {repeated} {names.count(repeated)} times: give each column its own "
            "name (e.g. rename a manifest column z0 that embed wrote beside its latent z0)"
        )


def read_profiles(path: str, unit: str) -> pd.DataFrame:
    """A table of one profile per unit (well or cell), CSV or Parquet, with plate and well columns (ALIASES:
    CellProfiler's Image_Metadata_*, concentration_uM and the field's Metadata_Plate, … accepted), wells named
    as B02 (well_names). Refused in one line naming the file: not a regular file (a FIFO would block), empty, cut
    short, not comma-separated, a header that repeats a name (check_header), two names of one column, a
    concentration missing or not a number."""
    expected = (
        f"expected per-{unit} profiles: a header (plate, well, then one column per feature) and one row per {unit}"
    )
    path = regular_file(path, f"per-{unit} table")
    try:
        if is_parquet(path):
            table = pd.read_parquet(path)
            names = [str(name) for name in table.columns]
        else:
            names = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False).iloc[0].tolist()
            table = pd.read_csv(path)
    except pd.errors.EmptyDataError as error:
        raise MetadataError(f"{path}: the file is empty; {expected}") from error
    except (EOFError, zlib.error) as error:
        raise MetadataError(f"{path}: the compressed file is cut short or damaged ({error}): copy it again") from error
    except pd.errors.ParserError as error:
        reason = " ".join(str(error).split())
        raise MetadataError(f"{path}: cannot read the profiles ({reason}): check the separator (commas)") from error
    except (OSError, UnicodeDecodeError, ArrowError) as error:
        raise MetadataError(f"{path}: cannot read the profiles ({error}): copy the file again") from error
    check_header(names, path)
    for name in dict.fromkeys(ALIASES.values()):
        spellings = [column for column in table.columns if column == name or ALIASES.get(column) == name]
        if len(spellings) > 1:
            raise MetadataError(
                f"{path}: has both {spellings[0]} and {spellings[1]}, two names of one column: keep one"
            )
    given = {ALIASES.get(column, column): column for column in table.columns}
    table = table.rename(columns=ALIASES)
    if not {"plate", "well"} <= set(table.columns):
        raise MetadataError(f"{path}: needs plate and well columns (or Metadata_Plate/Metadata_Well)")
    if table.empty:
        raise MetadataError(f"{path}: has a header but no rows; {expected}")
    table["well"] = well_names(table["well"])
    if "concentration" in table:
        table["concentration"] = numbers(table["concentration"], path, given["concentration"])
        missing = table["concentration"].isna()
        if missing.any():
            raise MetadataError(
                f"{path}: {missing.sum()} row(s) have no {given['concentration']} (the first on line "
                f"{missing.idxmax() + 2}): give every row its concentration ({CONTROL}'s too, e.g. 0)"
            )
    return table


def is_parquet(path) -> bool:
    """Whether a file is Parquet (it begins with PAR1), whatever its name."""
    with open(path, "rb") as opened:
        return opened.read(len(PARQUET_MAGIC)) == PARQUET_MAGIC


def cell_identity(cells: pd.DataFrame) -> list[str]:
    """The columns that name a cell: path or file, else plate, well, site and object where both of the last two
    are given (SITE_COLUMNS, OBJECT_COLUMNS); none otherwise."""
    for column in ("path", "file"):
        if column in cells:
            return [column]
    sites = [column for column in SITE_COLUMNS if column in cells]
    objects = [column for column in OBJECT_COLUMNS if column in cells]
    return ["plate", "well", *sites, *objects] if sites and objects else []


def refuse_repeated_cells(cells: pd.DataFrame, source: str) -> None:
    """MetadataError naming the first cell (cell_identity) that has more than one row: it would weigh twice."""
    identity = cell_identity(cells)
    if not identity:
        return
    repeated = cells.duplicated(identity, keep=False) & cells[identity].notna().all(axis=1)
    if repeated.any():
        first = cells.loc[repeated, identity].iloc[0]
        named = ", ".join(f"{column} {first[column]}" for column in identity)
        raise MetadataError(
            f"{source}: {repeated.sum()} rows repeat a cell, e.g. {named}: give each cell one row (a repeated "
            "row weighs twice in its well)"
        )


def annotate_cells(cells: pd.DataFrame, source: str, notes: list | None = None) -> pd.DataFrame:
    """A per-cell table with its treatment: needs compound, concentration and moa (DMSO's may be empty); batch is
    the plate's week (the text before the first '_') unless given. Refused: a cell in two rows
    (refuse_repeated_cells). Noted (notes, where given): plates without '_' (each its own batch), the cells left out
    for want of an MoA (annotated_only)."""
    missing = [column for column in ("compound", "concentration", "moa") if column not in cells]
    if missing:
        raise MetadataError(
            f"{source}: per-cell table lacks column(s) {', '.join(missing)} (cellvae embed on a manifest with "
            "plate, well, compound, concentration_uM and moa writes them)"
        )
    refuse_repeated_cells(cells, source)
    cells = cells.copy()
    if "batch" not in cells:
        plates = cells["plate"].astype(str)
        cells["batch"] = cells["week"] if "week" in cells else plates.str.split("_").str[0]
        alone = plates[~plates.str.contains("_", regex=False)].unique()
        if "week" not in cells and len(alone) and notes is not None:
            notes.append(
                f"{source}: {len(alone)} plate name(s) without '_' (e.g. {alone[0]}) are each a batch of their own "
                "(a batch is the name's text before '_', BBBC021's week), so NSCB's other batch means another "
                "plate there; give a batch column to group plates"
            )
    cells.loc[cells["compound"] == CONTROL, "moa"] = CONTROL
    return annotated_only(cells, source, "cell", notes)


def is_metadata(column) -> bool:
    """Whether a column describes rows rather than measures them (never a feature unless asked for by name):
    WELL_KEYS, NOT_FEATURES, Metadata_*, Image_*, pandas' index column Unnamed: 0 (case-blind)."""
    name = str(column).casefold()
    return name in WELL_KEYS or name in NOT_FEATURES or name.startswith(METADATA_PREFIXES)


def _mostly_numbers(values: pd.Series) -> bool:
    """Whether most of a text column's values are numbers (a feature with some bad values, not a text column)."""
    given = values.dropna()
    return len(given) > 0 and bool(pd.to_numeric(given, errors="coerce").notna().mean() > 0.5)


def feature_columns(table: pd.DataFrame, source: str = "profiles", requested=None) -> list[str]:
    """The feature columns of a table as read: those requested (names, or globs such as Cells_*; never metadata),
    else the latent columns z0, z1, … where there are any, else the numeric columns that are not metadata
    (is_metadata). MetadataError naming the source: a request that matches no column, a feature that holds a
    non-number (numbers: its column and first bad value; a column of text is metadata unless requested)."""
    candidates = [column for column in table.columns if not is_metadata(column)]
    if requested:
        features = []
        for pattern in requested:
            if pattern in table.columns and is_metadata(pattern):  # pycytominer drops ImageNumber, ObjectNumber
                raise MetadataError(
                    f"{source}: --features {pattern} names a metadata column (is_metadata: plate, well, …, "
                    "Metadata_*, Image_*, ImageNumber, ObjectNumber, an index): copy it under another name to use it"
                )
            matched = [column for column in candidates if fnmatch.fnmatchcase(str(column), pattern)]
            if not matched:
                raise MetadataError(
                    f"{source}: no feature column matches --features {pattern} (columns: {preview(table.columns)})"
                )
            features += [column for column in matched if column not in features]
    else:
        features = [column for column in candidates if LATENT.fullmatch(str(column))]
        if not features:
            features = [
                column
                for column in candidates
                if _numeric_dtype(table[column]) or (table[column].dtype == object and _mostly_numbers(table[column]))
            ]
    for column in features:
        numbers(table[column], source, column)
    return features


def _numeric_dtype(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def preview(names, shown: int = 4) -> str:
    """The first names, and how many there are in all where there are more."""
    names = [str(name) for name in names]
    return ", ".join(names[:shown]) + (f", … ({len(names)} in all)" if len(names) > shown else "")


def features_note(table: pd.DataFrame, features: list, source: str) -> str:
    """One line: how many feature columns there are, and the numeric columns left out as metadata."""
    left_out = [
        column
        for column in table.columns
        if column not in features and column not in WELL_KEYS and _numeric_dtype(table[column])
    ]
    return f"{source}: {len(features)} feature column(s): {preview(features)}" + (
        f"; not features: {preview(left_out)}" if left_out else ""
    )
