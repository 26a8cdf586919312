"""Mechanism-of-action (MoA) accuracy of well profiles: the BBBC021 benchmark of Ljosa et al. 2013.

Wells → normalized against DMSO → one profile per treatment (compound, concentration) → 1-nearest
neighbour by cosine similarity among the other treatments. NSC never matches the same compound; NSCB
also never a treatment imaged in the same batch (the plate's week) and leaves out the MoAs whose
treatments all come from one batch. DMSO is the reference, never a treatment.

Features that are non-finite in any well, or constant over all wells, are dropped before anything else
(the count is reported). In plate-dmso, a feature constant among one plate's DMSO wells is scaled by
its DMSO spread pooled over all plates instead.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cellvae.metadata import CONTROL, MetadataError

NORMALIZATIONS = ("none", "plate-dmso", "tvn")
AGGREGATIONS = ("mean", "median")
META_COLUMNS = ["plate", "well", "compound", "concentration", "moa", "batch"]
EIGENVALUE_FLOOR = 1e-6  # tvn: DMSO principal components below this fraction of the largest are dropped
PLATE_WELL_ALIASES = {"Image_Metadata_Plate": "plate", "Image_Metadata_Well": "well"}


def clean_features(features: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Features without non-finite values and with some variance over all wells; also the dropped names."""
    values = features.to_numpy(dtype=np.float64)
    keep = np.isfinite(values).all(axis=0)
    keep[keep] = np.ptp(values[:, keep], axis=0) > 0
    return features.loc[:, keep], list(features.columns[~keep])


def _dmso_mask(wells: pd.DataFrame) -> np.ndarray:
    mask = (wells["compound"] == CONTROL).to_numpy()
    if not mask.any():
        raise ValueError(f"no {CONTROL} well among the profiles: normalization needs {CONTROL} controls")
    return mask


def plate_dmso(wells: pd.DataFrame, values: np.ndarray) -> np.ndarray:
    """Each feature standardized per plate by the mean and standard deviation of that plate's DMSO wells."""
    dmso = _dmso_mask(wells)
    plates = wells["plate"].to_numpy()
    centred = np.empty_like(values)
    spreads = {}
    for plate in np.unique(plates):
        rows, controls = plates == plate, (plates == plate) & dmso
        if not controls.any():
            raise ValueError(
                f"plate {plate} has no {CONTROL} well: plate-dmso normalization needs one per "
                "plate (use --normalize none, or select its DMSO fields)"
            )
        centred[rows] = values[rows] - values[controls].mean(axis=0)
        spreads[plate] = values[controls].std(axis=0)
    pooled = centred[dmso].std(axis=0)
    pooled[pooled == 0] = 1.0
    for plate, spread in spreads.items():
        rows = plates == plate
        centred[rows] /= np.where(spread > 0, spread, pooled)
    return centred


def tvn(wells: pd.DataFrame, values: np.ndarray) -> np.ndarray:
    """Typical variation normalization: plate-dmso, then whitening by the principal axes of all DMSO wells."""
    standardized = plate_dmso(wells, values)
    controls = standardized[_dmso_mask(wells)]
    mean = controls.mean(axis=0)
    _, singular, axes = np.linalg.svd(controls - mean, full_matrices=False)
    variances = singular**2 / max(len(controls) - 1, 1)
    keep = variances > EIGENVALUE_FLOOR * variances[0]
    return (standardized - mean) @ axes[keep].T / np.sqrt(variances[keep])


def normalize(wells: pd.DataFrame, values: np.ndarray, method: str) -> np.ndarray:
    """Well profiles normalized by method (one of NORMALIZATIONS)."""
    if method == "none":
        return values.astype(np.float64)
    if method == "plate-dmso":
        return plate_dmso(wells, values)
    if method == "tvn":
        return tvn(wells, values)
    raise ValueError(f"unknown normalization {method!r}: choose one of {', '.join(NORMALIZATIONS)}")


def aggregate_treatments(wells: pd.DataFrame, values: np.ndarray, method: str = "mean"):
    """One profile per treatment (compound, concentration) with an MoA, DMSO excluded.

    Returns (table with compound, concentration, moa, batches (frozenset of weeks), n_wells; matrix).
    """
    if method not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {method!r}: choose one of {', '.join(AGGREGATIONS)}")
    treated = (wells["compound"] != CONTROL).to_numpy() & wells["moa"].notna().to_numpy()
    rows, profiles = [], []
    for (compound, concentration), group in wells[treated].groupby(["compound", "concentration"], sort=True):
        block = values[wells.index.get_indexer(group.index)]
        profiles.append(block.mean(axis=0) if method == "mean" else np.median(block, axis=0))
        rows.append(
            {
                "compound": compound,
                "concentration": concentration,
                "moa": group["moa"].iloc[0],
                "batches": frozenset(group["batch"]),
                "n_wells": len(group),
            }
        )
    table = pd.DataFrame(rows, columns=["compound", "concentration", "moa", "batches", "n_wells"])
    return table, np.array(profiles).reshape(len(rows), values.shape[1])


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


def _score(treatments: pd.DataFrame, matches: list) -> dict:
    """Accuracy, counts and per-MoA breakdown of matches; accuracy None when nothing was matched."""
    moas = treatments["moa"].to_numpy()
    evaluated = [(query, match) for query, match in enumerate(matches) if match is not None]
    correct = [moas[query] == moas[match] for query, match in evaluated]
    per_moa = {}
    for moa in sorted(set(moas)):
        hits = [ok for (query, _), ok in zip(evaluated, correct) if moas[query] == moa]
        per_moa[moa] = {"n": len(hits), "correct": int(sum(hits)), "accuracy": float(np.mean(hits)) if hits else None}
    return {
        "accuracy": float(np.mean(correct)) if correct else None,
        "n_evaluated": len(evaluated),
        "n_correct": int(sum(correct)),
        "per_moa": per_moa,
    }


def _treatment_name(treatments: pd.DataFrame, index) -> str | None:
    return None if index is None else f"{treatments.compound[index]} @ {treatments.concentration[index]:g}"


def single_batch_moas(treatments: pd.DataFrame) -> list[str]:
    """MoAs whose treatments all come from one batch (left out of NSCB)."""
    batches = treatments.groupby("moa")["batches"].agg(lambda column: frozenset().union(*column))
    return sorted(batches[batches.map(len) < 2].index)


def evaluate(treatments: pd.DataFrame, profiles: np.ndarray) -> dict:
    """NSC and NSCB 1-NN MoA accuracy of treatment profiles, with per-MoA breakdowns and the matches.

    An accuracy is None (with a reason) where no treatment has an allowed neighbour, e.g. a single compound.
    """
    similarity = cosine_similarity(profiles)
    nsc_matches = nearest_neighbours(treatments, similarity, exclude_batch=False)
    nsc = _score(treatments, nsc_matches)
    left_out = single_batch_moas(treatments)
    kept = ~treatments["moa"].isin(left_out).to_numpy()
    subset = treatments[kept].reset_index(drop=True)
    nscb_matches = nearest_neighbours(subset, similarity[np.ix_(kept, kept)], exclude_batch=True)
    nscb = _score(subset, nscb_matches)
    kept_index = np.flatnonzero(kept)
    nscb_full = [None] * len(treatments)
    for query, match in zip(kept_index, nscb_matches):
        nscb_full[query] = None if match is None else int(kept_index[match])
    matches = [
        {
            "compound": row.compound,
            "concentration": float(row.concentration),
            "moa": row.moa,
            "batches": sorted(row.batches),
            "nsc_match": _treatment_name(treatments, nsc_matches[i]),
            "nsc_match_moa": None if nsc_matches[i] is None else treatments.moa[nsc_matches[i]],
            "nscb_match": _treatment_name(treatments, nscb_full[i]),
            "nscb_match_moa": None if nscb_full[i] is None else treatments.moa[nscb_full[i]],
        }
        for i, row in enumerate(treatments.itertuples())
    ]
    result = {
        "nsc": nsc["accuracy"],
        "nscb": nscb["accuracy"],
        "n_treatments": len(treatments),
        "n_compounds": int(treatments["compound"].nunique()),
        "n_moas": int(treatments["moa"].nunique()),
        "nsc_evaluated": nsc["n_evaluated"],
        "nscb_evaluated": nscb["n_evaluated"],
        "nscb_left_out_moas": left_out,
        "per_moa": {moa: {"nsc": nsc["per_moa"][moa], "nscb": nscb["per_moa"].get(moa)} for moa in nsc["per_moa"]},
        "matches": matches,
    }
    for key, score in (("nsc", nsc), ("nscb", nscb)):
        if score["accuracy"] is None:
            result[f"{key}_undefined"] = (
                "no treatment has a neighbour of another compound"
                + (" from another batch" if key == "nscb" else "")
                + f" ({len(treatments)} treatment(s) of "
                f"{treatments['compound'].nunique()} compound(s))"
            )
    return result


def evaluate_wells(wells: pd.DataFrame, features: pd.DataFrame, normalization: str, aggregation: str) -> dict:
    """The whole benchmark from well metadata (META_COLUMNS) and a well × feature table in the same order."""
    wells = wells.reset_index(drop=True)
    features, dropped = clean_features(features.reset_index(drop=True))
    if features.shape[1] == 0:
        raise ValueError("no usable feature: every feature is non-finite in some well or constant")
    values = normalize(wells, features.to_numpy(dtype=np.float64), normalization)
    treatments, profiles = aggregate_treatments(wells, values, aggregation)
    result = evaluate(treatments, profiles)
    return {
        "normalization": normalization,
        "aggregation": aggregation,
        "n_wells": len(wells),
        "n_features": features.shape[1],
        "dropped_features": dropped,
        **result,
    }


def annotate_wells(profiles: pd.DataFrame, images: pd.DataFrame, moa: pd.DataFrame, source: str) -> pd.DataFrame:
    """Plate/well profiles joined with compound, concentration, batch (week) and MoA; unannotated wells dropped."""
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
    keep = joined["moa"].notna() | (joined["compound"] == CONTROL)
    return joined[keep].reset_index(drop=True)


def read_well_profiles(path: str) -> pd.DataFrame:
    """A per-well profile table with plate and well columns (CellProfiler Image_Metadata_* names accepted)."""
    expected = "expected per-well profiles: a header (plate, well, then one column per feature) and one row per well"
    try:
        table = pd.read_csv(path).rename(columns=PLATE_WELL_ALIASES)
    except pd.errors.EmptyDataError as error:
        raise MetadataError(f"{path}: the file is empty; {expected}") from error
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise MetadataError(f"{path}: cannot read the well profiles ({error})") from error
    if not {"plate", "well"} <= set(table.columns):
        raise MetadataError(f"{path}: needs plate and well columns (or Image_Metadata_Plate/Image_Metadata_Well)")
    if table.empty:
        raise MetadataError(f"{path}: has a header but no rows; {expected}")
    return table


def feature_columns(table: pd.DataFrame) -> list[str]:
    """Numeric columns that are not metadata."""
    meta = set(META_COLUMNS) | {"n_cells", "site", "replicate", "week"}
    return [column for column in table.columns if column not in meta and pd.api.types.is_numeric_dtype(table[column])]
