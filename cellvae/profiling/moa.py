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

import numpy as np
import pandas as pd

from cellvae.data.metadata import CONTROL

NORMALIZATIONS = ("none", "standardize", "plate-dmso", "tvn")
AGGREGATIONS = ("mean", "median")
WELL_KEYS = ["plate", "well", "compound", "concentration", "moa", "batch"]
TREATMENT_KEYS = ["compound", "concentration", "moa"]
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
