"""Paired comparison of feature sets' MoA scores on the same treatments, with intervals that resample compounds.

Treatments are not independent: BBBC021's 103 are 38 compounds at 1-7 doses, so every interval here resamples
compounds (a cluster bootstrap), not treatments. Each treatment's hit (NSC, NSCB: its nearest neighbour has its
MoA) or average precision (mAP) comes from cellvae.profiling.moa.score's matches; seeds of one model are averaged per
treatment first (seed_average), so the seed-averaged figure has an interval of its own.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

METRICS = ("nsc", "nscb", "map")
TREATMENT = ["compound", "concentration"]


def treatment_scores(result: dict) -> pd.DataFrame:
    """Per treatment (compound, concentration): nsc and nscb hits (1.0/0.0) and map (average precision); NaN where
    a treatment is not scored (no allowed neighbour, its MoA left out of NSCB, no other compound of its MoA) or the
    score is undefined for all (a single MoA)."""
    rows = []
    for match in result["matches"]:
        row = {"compound": match["compound"], "concentration": match["concentration"], "moa": match["moa"]}
        for key in ("nsc", "nscb"):
            found = match[f"{key}_match_moa"]
            undefined = match[f"{key}_match"] is None or result[key]["value"] is None  # e.g. a single MoA
            row[key] = np.nan if undefined else float(found == match["moa"])
        row["map"] = np.nan if match["average_precision"] is None else match["average_precision"]
        rows.append(row)
    return pd.DataFrame(rows).set_index(TREATMENT)


def seed_average(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """The mean of several runs' treatment_scores per treatment (the treatments must be the same)."""
    first = tables[0]
    if any(not table.index.equals(first.index) for table in tables[1:]):
        raise ValueError("the runs scored different treatments: compare runs on the same cells")
    stacked = np.stack([table[list(METRICS)].to_numpy(float) for table in tables])
    counts = np.isfinite(stacked).sum(axis=0)
    values = np.where(counts > 0, np.nansum(stacked, axis=0) / np.maximum(counts, 1), np.nan)
    return pd.DataFrame(values, index=first.index, columns=list(METRICS)).assign(moa=first["moa"])


def _compound_weights(compounds: np.ndarray, bootstrap: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(each treatment's compound index, bootstrap × compounds counts of each compound drawn)."""
    names, index = np.unique(compounds, return_inverse=True)
    rng = np.random.default_rng(seed)
    return index, rng.multinomial(len(names), np.full(len(names), 1 / len(names)), size=bootstrap)


def _resampled_means(values: np.ndarray, index: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The mean of values (NaN left out) over each bootstrap sample of compounds."""
    defined = np.isfinite(values)
    sums = np.bincount(index, np.where(defined, values, 0.0), minlength=weights.shape[1])
    counts = np.bincount(index, defined.astype(float), minlength=weights.shape[1])
    with np.errstate(invalid="ignore", divide="ignore"):
        return (weights @ sums) / (weights @ counts)


def _summary(value: float, resampled: np.ndarray) -> dict:
    finite = resampled[np.isfinite(resampled)]
    if not np.isfinite(value) or finite.size == 0:
        return {"value": None, "ci": [None, None]}
    low, high = np.percentile(finite, [2.5, 97.5])
    return {"value": float(value), "ci": [float(low), float(high)]}


def compound_intervals(scores: pd.DataFrame, bootstrap: int, seed: int) -> dict:
    """Each metric's mean over treatments with a 95% interval from resampling compounds."""
    index, weights = _compound_weights(scores.index.get_level_values("compound").to_numpy(), bootstrap, seed)
    result = {}
    for metric in METRICS:
        values = scores[metric].to_numpy(float)
        mean = np.nanmean(values) if np.isfinite(values).any() else np.nan
        result[metric] = _summary(mean, _resampled_means(values, index, weights))
    return result


def paired_difference(first: pd.DataFrame, second: pd.DataFrame, bootstrap: int, seed: int) -> dict:
    """first minus second in each metric over the treatments both score, with a paired 95% interval from
    resampling compounds (the same compounds for both, so what the two share cancels)."""
    if not first.index.equals(second.index):
        raise ValueError("the two tables hold different treatments: compare feature sets of the same cells")
    index, weights = _compound_weights(first.index.get_level_values("compound").to_numpy(), bootstrap, seed)
    result = {"n_treatments": len(first), "n_compounds": int(first.index.get_level_values("compound").nunique())}
    for metric in METRICS:
        a, b = first[metric].to_numpy(float), second[metric].to_numpy(float)
        both = np.isfinite(a) & np.isfinite(b)
        a, b = np.where(both, a, np.nan), np.where(both, b, np.nan)
        difference = np.nanmean(a - b) if both.any() else np.nan
        resampled = _resampled_means(a, index, weights) - _resampled_means(b, index, weights)
        result[metric] = {
            "first": float(np.nanmean(a)) if both.any() else None,
            "second": float(np.nanmean(b)) if both.any() else None,
            "n_treatments": int(both.sum()),
            "difference": _summary(difference, resampled),
        }
    return result
