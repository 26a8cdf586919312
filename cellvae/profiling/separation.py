"""Separation of each treatment from DMSO (the response stage's separation.csv): a well-grouped cross-validated
linear classifier and a cross-fitted Mahalanobis distance, with the within-well DMSO null beside it.

Why not the centroid distance in units of DMSO spread (the former distance_to_dmso): with features standardized
by the DMSO cells it equals |shift| / sqrt(d), so it falls as features are added even when they carry nothing
(PCA-16 padded with 59 pure-noise columns scored about half). The Mahalanobis distance measures the shift in
DMSO standard deviations along the shift itself; features without a shift add nothing to it (on the shared
crops, Week4_27801 at 5 µM: PCA-16 4.64, padded with 59 noise columns 4.64, PCA-75 5.14). Chosen over copairs
mAP between fields: a rank score bounded by 1 saturates for strong treatments, so it cannot say that 50 µM moves
cells farther than 5 µM. The within-well null (dmso_null) says what field-to-field variation alone gives.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from cellvae.data.metadata import CONTROL


def lda_cv_accuracy(
    control: np.ndarray, treated: np.ndarray, control_wells, treated_wells, folds: int, seed: int
) -> float:
    """Balanced accuracy of a shrinkage linear discriminant (scikit-learn, Ledoit-Wolf shrinkage),
    cross-validated with folds grouped by well (no well on both sides of a split) and stratified by class;
    NaN where a class has fewer than 2 wells."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict

    n_splits = min(folds, len(set(control_wells)), len(set(treated_wells)))
    if n_splits < 2:
        return math.nan
    data = np.concatenate([control, treated])
    labels = np.r_[np.zeros(len(control), bool), np.ones(len(treated), bool)]
    groups = np.r_[np.asarray(control_wells, str), np.asarray(treated_wells, str)]
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    predicted = cross_val_predict(
        LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto"), data, labels, groups=groups, cv=splitter
    )
    return float(balanced_accuracy_score(labels, predicted))


def _precision(cells: np.ndarray) -> np.ndarray:
    """Inverse covariance of (standardized) DMSO cells. With at least 2 cells per feature: the inverse sample
    covariance times (n - d - 2) / (n - 1), unbiased for Gaussian cells whatever the number of features d (the
    plain inverse grows with d/n). With fewer, or a singular covariance: scikit-learn's Ledoit-Wolf shrinkage
    estimate, stable but pulled towards the identity by an amount that grows with d (an added pure-noise
    column then lowers the distance of correlated features a little)."""
    from sklearn.covariance import LedoitWolf

    n, d = cells.shape
    if n >= 2 * d:
        covariance = np.atleast_2d(np.cov(cells, rowvar=False))
        if np.linalg.matrix_rank(covariance) == d:
            return np.linalg.inv(covariance) * (n - d - 2) / (n - 1)
    return LedoitWolf().fit(cells).precision_


def _squared_shift(whitening: np.ndarray, reference: np.ndarray, treated: np.ndarray) -> float:
    """Unbiased estimate of the squared Mahalanobis distance between the means of treated and reference cells,
    whitened by the covariance of other DMSO cells (`whitening`, `_precision`): the squared distance of the
    sample means less the part their own sampling noise adds (trace of precision times each mean's covariance),
    i.e. the mean over pairs of different cells (a U-statistic), so no cell's noise multiplies itself."""
    scale = whitening.std(axis=0)
    scale[scale == 0] = 1.0
    precision = _precision(whitening / scale)
    treated, reference = treated / scale, reference / scale
    shift = treated.mean(axis=0) - reference.mean(axis=0)
    noise = sum(
        np.trace(precision @ np.atleast_2d(np.cov(cells, rowvar=False))) / len(cells) for cells in (treated, reference)
    )
    return float(shift @ precision @ shift - noise)


def mahalanobis_distance(control: np.ndarray, treated: np.ndarray, seed: int, in_half_a=None) -> float:
    """Cross-fitted Mahalanobis distance of the treated cells' mean from the DMSO cells' mean, in DMSO
    standard deviations along the shift: the DMSO cells are split at random into halves A and B; the shift
    from B's mean is whitened by the covariance of A (`_precision`), then A and B swap, and the two unbiased
    squared distances (`_squared_shift`) are averaged. Reported as sign × sqrt(|squared distance|):
    about 0 (either sign) where there is no shift, and unchanged by added features that carry no shift (the
    centroid distance in DMSO spreads fell as 1/sqrt(d)). in_half_a (boolean per DMSO cell) fixes the split
    instead, so that the figure of a subset of the cells moves only with the cells (a jackknife). NaN with fewer
    than 4 DMSO or 2 treated cells."""
    control, treated = np.asarray(control, np.float64), np.asarray(treated, np.float64)
    if len(control) < 4 or len(treated) < 2:
        return math.nan
    if in_half_a is None:
        in_half_a = np.zeros(len(control), bool)
        in_half_a[np.random.default_rng(seed).permutation(len(control))[: len(control) // 2]] = True
    in_half_a = np.asarray(in_half_a, bool)
    if min(in_half_a.sum(), (~in_half_a).sum()) < 2:
        return math.nan
    half_a, half_b = control[in_half_a], control[~in_half_a]
    squared = (_squared_shift(half_a, half_b, treated) + _squared_shift(half_b, half_a, treated)) / 2
    return float(math.copysign(math.sqrt(abs(squared)), squared))


def within_well_null(control: np.ndarray, control_wells, control_fields, seed: int) -> float:
    """The distance pure noise and field-to-field variation give: per DMSO well with at least 2 fields, the
    `mahalanobis_distance` between its fields split in two (alternate fields, in order), averaged over wells;
    NaN where no well has 2 fields."""
    wells, fields = np.asarray(control_wells, str), np.asarray(control_fields, str)
    distances = []
    for well in sorted(set(wells)):
        names = sorted(set(fields[wells == well]))
        if len(names) < 2:
            continue
        first = (wells == well) & np.isin(fields, names[0::2])
        second = (wells == well) & np.isin(fields, names[1::2])
        distances.append(mahalanobis_distance(control[second], control[first], seed))
    distances = [distance for distance in distances if not math.isnan(distance)]
    return float(np.mean(distances)) if distances else math.nan


def separation(
    control: np.ndarray,
    treated: np.ndarray,
    control_wells,
    treated_wells,
    folds: int,
    seed: int,
    control_fields=None,
) -> dict:
    """Treated vs control latent means: well-grouped cross-validated balanced accuracy of a linear classifier,
    the cross-fitted Mahalanobis distance (`mahalanobis_distance`), its within-well DMSO null
    (`within_well_null` over control_fields; NaN without them) and the number of wells on each side."""
    return {
        "accuracy": lda_cv_accuracy(control, treated, control_wells, treated_wells, folds, seed),
        "mahalanobis_to_dmso": mahalanobis_distance(control, treated, seed),
        "dmso_null": math.nan
        if control_fields is None
        else within_well_null(control, control_wells, control_fields, seed),
        "n_wells": len(set(treated_wells)),
        "n_dmso_wells": len(set(control_wells)),
    }


SEPARATION_COLUMNS = [
    "compound",
    "concentration",
    "moa",
    "n_cells",
    "n_dmso_cells",
    "dmso_reference",
    "n_wells",
    "n_dmso_wells",
    "accuracy",
    "mahalanobis_to_dmso",
    "dmso_null",
]


def separation_table(cells: pd.DataFrame, mu: np.ndarray, folds: int, max_cells: int, seed: int) -> pd.DataFrame:
    """`separation` of each treatment from the DMSO cells of its plates (at most max_cells sampled per class),
    with dmso_null, the same distance between the fields of one DMSO well (`within_well_null`).

    DMSO reference cells come from wells the model was not trained on (dataset split validation, or not in
    the dataset) where those plates have at least 2 such wells; otherwise from all DMSO wells, and the column
    dmso_reference says that they include training cells of the model."""
    rng = np.random.default_rng(seed)

    def sample(index):
        return index if len(index) <= max_cells else rng.choice(index, max_cells, replace=False)

    wells = (cells["plate"] + "/" + cells["well"]).to_numpy()
    fields = wells + "/" + cells["site"].astype(str).to_numpy()
    rows = []
    treated = cells[cells["compound"] != CONTROL]
    for (compound, concentration), group in treated.groupby(["compound", "concentration"], sort=True):
        dmso = cells["plate"].isin(group["plate"].unique()) & (cells["compound"] == CONTROL)
        unseen = dmso & cells["split"].isin(["validation", "none"])
        if len(set(wells[unseen])) >= 2:
            control, reference = np.flatnonzero(unseen), "wells not used in training"
        else:
            known = not (cells.loc[dmso, "split"] == "unknown").all()
            control = np.flatnonzero(dmso)
            reference = "includes training cells" if known else "training split unknown"
        control = sample(control)
        chosen = sample(group.index.to_numpy())
        if len(control) < folds or len(chosen) < folds:
            continue
        rows.append(
            {
                "compound": compound,
                "concentration": concentration,
                "moa": group["moa"].iloc[0],
                "n_cells": len(group),
                "n_dmso_cells": len(control),
                "dmso_reference": reference,
                **separation(
                    mu[control], mu[chosen], wells[control], wells[chosen], folds, seed, control_fields=fields[control]
                ),
            }
        )
    return pd.DataFrame(rows, columns=SEPARATION_COLUMNS)
