"""Mechanism-of-action (MoA) accuracy of profiles: the BBBC021 benchmark of Ljosa et al. 2013, from cells or wells.

Rows (cells or wells) → normalized per plate against controls (pycytominer.normalize) → wells → one profile per
treatment (compound, concentration; pycytominer.aggregate) → scores, each with a 95% bootstrap interval over
treatments:
- NSC: the nearest treatment (cosine) of another compound has the same MoA; NSCB: also from another batch (the
  plate's week), leaving out the MoAs whose treatments all come from one batch;
- mAP: mean average precision of retrieving the same-MoA treatments of other compounds among all treatments of
  other MoAs (copairs, cosine).
A score is None, with the reason, where it is undefined: no treatment to score, or (NSC, NSCB) one MoA.
DMSO is the reference, never a treatment. Features that are non-finite anywhere or constant are dropped first.

plate-dmso standardizes each plate by its DMSO rows where it has at least min_controls of them, else by its
batch's DMSO rows (same rule), else by all the plate's rows; the result says how many plates took each reference.
tvn then whitens by all DMSO rows (pycytominer's ZCA spherize).
"""

from __future__ import annotations

import fnmatch
import re
import zlib

import numpy as np
import pandas as pd

from cellvae.files import regular_file
from cellvae.metadata import CONTROL, MetadataError

NORMALIZATIONS = ("none", "standardize", "plate-dmso", "tvn")
AGGREGATIONS = ("mean", "median")
WELL_KEYS = ["plate", "well", "compound", "concentration", "moa", "batch"]
TREATMENT_KEYS = ["compound", "concentration", "moa"]
ALIASES = {"Image_Metadata_Plate": "plate", "Image_Metadata_Well": "well", "concentration_uM": "concentration"}
NOT_FEATURES = {  # compared case-blind, beside WELL_KEYS and METADATA_PREFIXES
    *("n_cells", "site", "replicate", "week", "label", "size_bytes", "scale", "split", "path", "file", "object"),
    *("imagenumber", "objectnumber", "tablenumber", "image_number", "object_number", "table_number"),
}
METADATA_PREFIXES = ("unnamed:", "metadata_", "image_")  # pandas' index column; CellProfiler's metadata
LATENT = re.compile(r"z\d+")  # cellvae embed's feature names: z0, z1, …
WELL_NAME = re.compile(r"([A-Za-z]+)0*(\d+)")
SITE_COLUMNS = ("TableNumber", "ImageNumber", "site", "Metadata_Site", "Image_Metadata_Site")
OBJECT_COLUMNS = ("ObjectNumber", "object", "object_number", "Metadata_ObjectNumber")
REFERENCE = "_reference"  # the rows a plate is standardized by (a column pycytominer queries)


def clean_features(features: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Features without non-finite values and with some variance over all rows; also the dropped names."""
    values = features.to_numpy(dtype=np.float64)
    keep = np.isfinite(values).all(axis=0)
    keep[keep] = np.ptp(values[:, keep], axis=0) > 0
    return features.loc[:, keep], list(features.columns[~keep])


def _standardize(table: pd.DataFrame, features: list, samples: str = "all", method="standardize") -> pd.DataFrame:
    from pycytominer import normalize

    meta = [column for column in table.columns if column not in features]
    return normalize(table, features=features, meta_features=meta, samples=samples, method=method)[table.columns]


def plate_references(table: pd.DataFrame, min_controls: int) -> dict:
    """Each plate's reference: 'plate-dmso', 'batch-dmso' or 'plate-all' (see the module docstring)."""
    dmso = table["compound"] == CONTROL
    plate_dmso = table[dmso].groupby("plate").size()
    batch_dmso = table[dmso].groupby("batch").size()
    references = {}
    for plate, batch in table[["plate", "batch"]].drop_duplicates().itertuples(index=False):
        if plate_dmso.get(plate, 0) >= min_controls:
            references[plate] = "plate-dmso"
        elif batch_dmso.get(batch, 0) >= min_controls:
            references[plate] = "batch-dmso"
        else:
            references[plate] = "plate-all"
    return references


def capped_rows(table: pd.DataFrame, cap: int, seed: int) -> pd.Series:
    """Whether each row enters the normalization statistics: at most cap rows of each treatment (compound,
    concentration), a seeded sample, so that no large treatment (taxol 0.3 uM: 36% of the MoA crops) sets them."""
    order = pd.Series(np.random.default_rng(seed).permutation(len(table)), index=table.index)
    rank = order.groupby([table["compound"], table["concentration"]], dropna=False).rank(method="first")
    return rank <= cap


def plate_dmso(
    table: pd.DataFrame, features: list, min_controls: int, cap: int, seed: int
) -> tuple[pd.DataFrame, dict]:
    """Each plate standardized by its reference rows (plate_references; at most cap of each treatment, capped_rows);
    the table and the references."""
    table = table.copy()  # consolidated: assigning to a frame built column by column warns on every plate
    references = plate_references(table, min_controls)
    dmso = table["compound"] == CONTROL
    parts = []
    for plate, rows in table.groupby("plate", sort=False):
        reference = {
            "plate-dmso": lambda: rows[dmso[rows.index]],
            "batch-dmso": lambda: table[dmso & (table["batch"] == rows["batch"].iloc[0])],
            "plate-all": lambda: rows,
        }[references[plate]]()
        reference = reference[capped_rows(reference, cap, seed)]
        both = pd.concat([rows.assign(**{REFERENCE: False}), reference.assign(**{REFERENCE: True})])
        standardized = _standardize(both, features, f"`{REFERENCE}`").iloc[: len(rows)]
        parts.append(standardized.drop(columns=REFERENCE))
    return pd.concat(parts).loc[table.index], references


def normalize(
    table: pd.DataFrame, features: list, method: str, min_controls: int, *, reference_cap: int, seed: int
) -> tuple[pd.DataFrame, dict]:
    """Rows normalized by method (one of NORMALIZATIONS), their statistics from at most reference_cap rows of each
    treatment (capped_rows, seeded); also each plate's reference (empty unless per plate)."""
    if method == "none":
        return table, {}
    if method == "standardize":
        marked = table.assign(**{REFERENCE: capped_rows(table, reference_cap, seed)})
        return _standardize(marked, features, f"`{REFERENCE}`").drop(columns=REFERENCE), {}
    if method not in ("plate-dmso", "tvn"):
        raise ValueError(f"unknown normalization {method!r}: choose one of {', '.join(NORMALIZATIONS)}")
    if not (table["compound"] == CONTROL).any():
        raise ValueError(f"no {CONTROL} row among the profiles: {method} normalization needs {CONTROL} controls")
    standardized, references = plate_dmso(table, features, min_controls, reference_cap, seed)
    if method == "tvn":
        controls = int((table["compound"] == CONTROL).sum())
        if controls <= len(features):
            raise ValueError(
                f"tvn needs more {CONTROL} rows than features to whiten by their covariance ({controls} rows, "
                f"{len(features)} features): use plate-dmso"
            )
        standardized = _standardize(standardized, features, f"compound == '{CONTROL}'", "spherize")
    return standardized, references


def aggregate(table: pd.DataFrame, features: list, keys: list, method: str) -> pd.DataFrame:
    """One row per group of keys (pycytominer.aggregate) with its features and n, the rows it averages."""
    from pycytominer import aggregate as pycytominer_aggregate

    if method not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {method!r}: choose one of {', '.join(AGGREGATIONS)}")
    profiles = pycytominer_aggregate(table, strata=keys, features=features, operation=method)
    counts = table.groupby(keys, dropna=False).size().rename("n").reset_index()
    return profiles.merge(counts, on=keys, validate="one_to_one")


def treatment_profiles(wells: pd.DataFrame, features: list, method: str) -> pd.DataFrame:
    """One profile per treatment with an MoA, DMSO excluded; batches = the frozenset of its wells' batches."""
    treated = wells[(wells["compound"] != CONTROL) & wells["moa"].notna()]
    treatments = aggregate(treated, features, TREATMENT_KEYS, method).rename(columns={"n": "n_wells"})
    batches = treated.groupby(TREATMENT_KEYS)["batch"].agg(frozenset).rename("batches").reset_index()
    treatments = treatments.merge(batches, on=TREATMENT_KEYS, validate="one_to_one")
    return treatments.sort_values(["compound", "concentration"]).reset_index(drop=True)


def cosine_similarity(profiles: np.ndarray) -> np.ndarray:
    """Pairwise cosine similarity of rows (a zero row has similarity 0 to everything)."""
    norms = np.linalg.norm(profiles, axis=1, keepdims=True)
    unit = np.divide(profiles, norms, out=np.zeros_like(profiles, dtype=np.float64), where=norms > 0)
    return unit @ unit.T


def nearest_neighbours(treatments: pd.DataFrame, similarity: np.ndarray, exclude_batch: bool) -> list:
    """Index of each treatment's most similar allowed treatment, or None where none is allowed."""
    compounds = treatments["compound"].to_numpy()
    batches = treatments["batches"].tolist()
    matches = []
    for query in range(len(treatments)):
        allowed = compounds != compounds[query]
        if exclude_batch:
            allowed &= np.array([not (batch & batches[query]) for batch in batches], dtype=bool)
        matches.append(int(np.argmax(np.where(allowed, similarity[query], -np.inf))) if allowed.any() else None)
    return matches


def interval(values, bootstrap: int, seed: int) -> dict:
    """{'value': the mean, 'ci': [lo, hi]}: the 95% percentile bootstrap interval of the mean over the values."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return {"value": None, "ci": [None, None]}
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(bootstrap, values.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"value": float(values.mean()), "ci": [float(low), float(high)]}


def hits(treatments: pd.DataFrame, matches: list) -> tuple[np.ndarray, np.ndarray]:
    """(indices of the treatments that have a match, whether each match has the query's MoA)."""
    moas = treatments["moa"].to_numpy()
    queries = np.array([query for query, match in enumerate(matches) if match is not None], dtype=int)
    return queries, np.array([moas[query] == moas[matches[query]] for query in queries], dtype=bool)


def single_batch_moas(treatments: pd.DataFrame) -> list[str]:
    """MoAs whose treatments all come from one batch (left out of NSCB)."""
    batches = treatments.groupby("moa")["batches"].agg(lambda column: frozenset().union(*column))
    return sorted(batches[batches.map(len) < 2].index)


def average_precisions(treatments: pd.DataFrame, profiles: np.ndarray) -> np.ndarray:
    """Each treatment's average precision (copairs, cosine) of retrieving same-MoA treatments of other compounds
    among those and all treatments of other MoAs; NaN where its MoA has no other compound."""
    from copairs.map import average_precision
    from copairs.matching import UnpairedException

    meta = treatments[["compound", "moa"]].reset_index(drop=True)
    try:
        ap = average_precision(meta, profiles, ["moa"], ["compound"], [], ["moa"], progress_bar=False)
    except UnpairedException:  # no MoA with two compounds, or a single MoA
        return np.full(len(treatments), np.nan)
    return ap["average_precision"].to_numpy(dtype=np.float64)


def _matched_name(treatments: pd.DataFrame, index, column=None):
    if index is None:
        return None
    if column:
        return treatments.at[index, column]
    return f"{treatments.at[index, 'compound']} @ {treatments.at[index, 'concentration']:g}"


def score(treatments: pd.DataFrame, profiles: np.ndarray, bootstrap: int, seed: int) -> dict:
    """NSC, NSCB and mAP of treatment profiles with 95% bootstrap intervals, per-MoA NSC/NSCB and the matches.

    A score is None (with a reason) where no treatment can be scored, e.g. a single compound.
    """
    similarity = cosine_similarity(profiles)
    nsc_matches = nearest_neighbours(treatments, similarity, exclude_batch=False)
    left_out = single_batch_moas(treatments)
    kept = np.flatnonzero(~treatments["moa"].isin(left_out).to_numpy())
    subset = treatments.iloc[kept].reset_index(drop=True)
    nscb_subset = nearest_neighbours(subset, similarity[np.ix_(kept, kept)], exclude_batch=True)
    nscb_matches = [None] * len(treatments)
    for query, match in zip(kept, nscb_subset):
        nscb_matches[query] = None if match is None else int(kept[match])
    ap = average_precisions(treatments, profiles)
    result = {"n_treatments": len(treatments), "n_compounds": int(treatments["compound"].nunique())}
    result["n_moas"] = int(treatments["moa"].nunique())
    moas = treatments["moa"].to_numpy()
    per_moa = {moa: {} for moa in sorted(set(moas))}
    for key, matches, offset in (("nsc", nsc_matches, 0), ("nscb", nscb_matches, 1)):
        queries, correct = hits(treatments, matches)
        result[key] = interval(correct, bootstrap, seed + offset)
        result[f"{key}_evaluated"] = len(queries)
        for moa in per_moa:
            mine = correct[moas[queries] == moa]
            left = key == "nscb" and moa in left_out
            per_moa[moa][key] = None if left else {"n": len(mine), "correct": int(mine.sum()), "accuracy": _mean(mine)}
    scored = np.isfinite(ap)
    result["map"] = interval(ap[scored], bootstrap, seed + 2)
    result["map_evaluated"] = int(scored.sum())
    for moa in per_moa:
        per_moa[moa]["map"] = _mean(ap[scored & (moas == moa)])
    result["nscb_left_out_moas"] = left_out
    result["per_moa"] = per_moa
    named = {"nsc": nsc_matches, "nscb": nscb_matches}
    result["matches"] = [
        {
            "compound": row.compound,
            "concentration": float(row.concentration),
            "moa": row.moa,
            "batches": sorted(row.batches),
            "average_precision": None if np.isnan(ap[i]) else float(ap[i]),
            **{f"{key}_match": _matched_name(treatments, found[i]) for key, found in named.items()},
            **{f"{key}_match_moa": _matched_name(treatments, found[i], "moa") for key, found in named.items()},
        }
        for i, row in enumerate(treatments.itertuples())
    ]
    candidate_moas = {"nsc": sorted(set(moas)), "nscb": sorted(set(moas[kept]))}
    for key in ("nsc", "nscb"):
        if result[key]["value"] is not None and len(candidate_moas[key]) == 1:  # every neighbour is right
            result[key], result[f"{key}_evaluated"] = interval([], bootstrap, seed), 0
            per_moa[candidate_moas[key][0]][key] = None
            result[f"{key}_undefined"] = (
                f"one MoA ({candidate_moas[key][0]}) among the treatments"
                + (
                    " left in NSCB (each other MoA comes from one batch)"
                    if key == "nscb" and len(set(moas)) > 1
                    else ""
                )
                + ": every neighbour has it; needs treatments of two or more MoAs"
            )
        elif result[key]["value"] is None:
            result[f"{key}_undefined"] = (
                "no treatment has a neighbour of another compound"
                + (" from another batch" if key == "nscb" else "")
                + f" ({len(treatments)} treatment(s) of {treatments['compound'].nunique()} compound(s))"
            )
    return result


def _mean(values) -> float | None:
    return float(np.mean(values)) if len(values) else None


def evaluate_rows(table: pd.DataFrame, features: list, settings: dict, cells: bool) -> dict:
    """The whole benchmark from a table of WELL_KEYS + features, one row per cell (cells) or per well.

    settings: normalize, aggregate, min_controls, reference_cap, bootstrap, seed (config response.analysis).
    """
    table = table.reset_index(drop=True)
    cleaned, dropped = clean_features(table[features])
    if cleaned.shape[1] == 0:
        raise ValueError("no usable feature: every feature is non-finite in some row or constant")
    features = list(cleaned.columns)
    table = table[WELL_KEYS + features].astype({feature: np.float64 for feature in features})
    table.loc[table["compound"] == CONTROL, "moa"] = CONTROL
    normalized, references = normalize(
        table,
        features,
        settings["normalize"],
        settings["min_controls"],
        reference_cap=settings["reference_cap"],
        seed=settings["seed"],
    )
    wells = aggregate(normalized, features, WELL_KEYS, settings["aggregate"]) if cells else normalized
    treatments = treatment_profiles(wells, features, settings["aggregate"])
    result = score(treatments, treatments[features].to_numpy(np.float64), settings["bootstrap"], settings["seed"])
    return {
        "normalization": settings["normalize"],
        "aggregation": settings["aggregate"],
        "plate_references": {kind: list(references.values()).count(kind) for kind in sorted(set(references.values()))},
        "n_cells": len(table) if cells else None,
        "n_wells": len(wells),
        "n_features": len(features),
        "dropped_features": dropped,
        **result,
    }


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
    """A table of one profile per unit (well or cell) with plate and well columns (CellProfiler's
    Image_Metadata_* names and concentration_uM accepted), wells named as B02 (well_names). Refused in one line
    naming the file: not a regular file (a FIFO would block), empty, cut short, not comma-separated, a header
    that repeats a name (check_header), two names of one column, a concentration missing or not a number."""
    expected = (
        f"expected per-{unit} profiles: a header (plate, well, then one column per feature) and one row per {unit}"
    )
    path = regular_file(path, f"per-{unit} table")
    try:
        names = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False).iloc[0].tolist()
        table = pd.read_csv(path)
    except pd.errors.EmptyDataError as error:
        raise MetadataError(f"{path}: the file is empty; {expected}") from error
    except (EOFError, zlib.error) as error:
        raise MetadataError(f"{path}: the compressed file is cut short or damaged ({error}): copy it again") from error
    except pd.errors.ParserError as error:
        reason = " ".join(str(error).split())
        raise MetadataError(f"{path}: cannot read the profiles ({reason}): check the separator (commas)") from error
    except (OSError, UnicodeDecodeError) as error:
        raise MetadataError(f"{path}: cannot read the profiles ({error})") from error
    check_header(names, path)
    for alias, name in ALIASES.items():
        if alias in table and name in table:
            raise MetadataError(f"{path}: has both {alias} and {name}, two names of one column: keep one")
    given = {ALIASES.get(column, column): column for column in table.columns}
    table = table.rename(columns=ALIASES)
    if not {"plate", "well"} <= set(table.columns):
        raise MetadataError(f"{path}: needs plate and well columns (or Image_Metadata_Plate/Image_Metadata_Well)")
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
