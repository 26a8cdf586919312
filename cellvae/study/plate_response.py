"""Response of held-out plates to a compound, measured on any per-cell features: a cross-plate LDA's balanced
accuracy (control vs treated) and, per plate, each concentration's Mahalanobis distance from the plate's control
cells beside the within-well null (cellvae.profiling.separation), each averaged over feature sets (seeds) with a
delete-one-field jackknife interval (response_scores) and tabulated in markdown (response_table); and a small
whole-window classic feature set."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from skimage import filters, measure
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from cellvae.data.metadata import CONTROL
from cellvae.profiling.separation import mahalanobis_distance, within_well_null

N_CLASSIC_FEATURES = 12


def classic_features(raw: np.ndarray) -> np.ndarray:
    """Per-cell features of a raw window (RGB = Tubulin, Actin, DAPI): the connected component of an Otsu mask
    of the summed channels nearest the centre — area, per-channel mean and integrated intensity, nucleus
    area (Otsu on DAPI inside it), eccentricity, solidity, perimeter, major axis length; NaN without one."""
    image = raw.astype(np.float64)
    total = image.sum(axis=-1)
    labels = measure.label(total > filters.threshold_otsu(total))
    centre = np.array(labels.shape) // 2
    regions = measure.regionprops(labels, intensity_image=image)
    if not regions:
        return np.full(N_CLASSIC_FEATURES, np.nan)
    cell = min(regions, key=lambda r: np.linalg.norm(np.array(r.centroid) - centre))
    inside = labels == cell.label
    dapi = image[..., 2]
    nucleus_area = float((inside & (dapi > filters.threshold_otsu(dapi[inside]))).sum())
    means = cell.intensity_mean
    return np.array(
        [
            cell.area,
            *means,
            *(means * cell.area),
            nucleus_area,
            cell.eccentricity,
            cell.solidity,
            cell.perimeter,
            cell.axis_major_length,
        ]
    )


def cross_plate_accuracy(features: np.ndarray, treated: np.ndarray, cells: pd.DataFrame, plates: list) -> float:
    """Balanced accuracy of a shrinkage LDA (control vs treated) trained on one plate and tested on the other,
    the mean of both directions."""
    accuracies = []
    for train_plate, test_plate in [(plates[0], plates[1]), (plates[1], plates[0])]:
        train = (cells["plate"] == train_plate).to_numpy()
        test = (cells["plate"] == test_plate).to_numpy()
        lda = make_pipeline(StandardScaler(), LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto"))
        lda.fit(features[train], treated[train])
        accuracies.append(balanced_accuracy_score(treated[test], lda.predict(features[test])))
    return float(np.mean(accuracies))


def plate_scores(features: np.ndarray, cells: pd.DataFrame, plates: list, in_half_a: np.ndarray, null=True) -> dict:
    """lda_accuracy (cross_plate_accuracy of the first two plates); per plate, the Mahalanobis distance of each
    concentration from its control cells (<plate>_<concentration>uM, features standardised on the control
    cells; the control cells split for cross-fitting by in_half_a, one boolean per row) and, with null, its
    within-well null (<plate>_dmso_null).
    cells: plate, well, site, compound and concentration_uM of each row of features."""
    treated = (cells["compound"] != CONTROL).to_numpy()
    scores = {"lda_accuracy": cross_plate_accuracy(features, treated, cells, plates)}
    for plate in plates:
        on_plate = (cells["plate"] == plate).to_numpy()
        scale = StandardScaler().fit(features[on_plate & ~treated])
        control = scale.transform(features[on_plate & ~treated])
        if null:
            wells = cells.loc[on_plate & ~treated, "well"].to_numpy()
            sites = cells.loc[on_plate & ~treated, "site"].to_numpy()
            scores[f"{plate}_dmso_null"] = within_well_null(control, wells, sites, seed=0)
        for concentration in sorted(cells.loc[on_plate & treated, "concentration_uM"].unique()):
            chosen = on_plate & treated & (cells["concentration_uM"] == concentration).to_numpy()
            shifted = scale.transform(features[chosen])
            split = in_half_a[on_plate & ~treated]
            scores[f"{plate}_{concentration:g}uM"] = mahalanobis_distance(control, shifted, 0, split)
    return scores


def concentration_keys(keys, plate: str) -> list:
    """The plate's distance keys (<plate>_<concentration>uM) among keys, in order of concentration."""
    chosen = [k for k in keys if k.startswith(f"{plate}_") and k.endswith("uM")]
    return sorted(chosen, key=lambda k: float(k[len(plate) + 1 : -2]))


def distances_increase(scores: dict, plates: list) -> bool:
    """Whether each plate's distances grow with concentration."""
    return all(np.all(np.diff([scores[k] for k in concentration_keys(scores, plate)]) > 0) for plate in plates)


def field_names(cells: pd.DataFrame) -> np.ndarray:
    """Each row's field, plate/well/site."""
    return (cells["plate"].astype(str) + "/" + cells["well"].astype(str) + "/" + cells["site"].astype(str)).to_numpy()


def depends_on(key: str, cells: pd.DataFrame, plates: list) -> set:
    """The fields whose cells a plate_scores key is computed from: every field for lda_accuracy; for
    <plate>_<concentration>uM the plate's control fields and those of that concentration."""
    fields, treated = field_names(cells), (cells["compound"] != CONTROL).to_numpy()
    if key == "lda_accuracy":
        return set(fields)
    plate = next(p for p in plates if key.startswith(f"{p}_"))
    concentration = float(key[len(plate) + 1 : -2])
    on_plate = (cells["plate"] == plate).to_numpy()
    dose = treated & (cells["concentration_uM"] == concentration).to_numpy()
    return set(fields[on_plate & (~treated | dose)])


def response_scores(features: list, cells: pd.DataFrame, plates: list, level: float = 0.95, seed: int = 0) -> dict:
    """`plate_scores` of one or more feature sets of the same cells (e.g. one per training seed), averaged over
    them; with several, <key>_seed_sd. Each but the null with a `level` interval (<key>_low, <key>_high) from a
    delete-one-field jackknife of that average over the fields the key depends on (`depends_on`), with Student's
    t on (fields - 1) degrees of freedom: cells of one field are not independent, and a field bootstrap would
    repeat cells, which the distance's noise correction counts as independent (it biased resampled distances
    upwards). Each cell keeps its cross-fitting half (seed) in every deletion; a deletion that leaves a key
    undefined (the only field of a concentration) is left out of its jackknife. distances_increase: whether the
    averaged distances grow with concentration on every plate."""
    from scipy import stats

    in_half_a = np.random.default_rng(seed).permutation(len(cells)) % 2 == 0  # each cell's half, kept when deleting
    per_set = [plate_scores(values, cells, plates, in_half_a) for values in features]
    scores = {key: float(np.mean([s[key] for s in per_set])) for key in per_set[0]}
    if len(per_set) > 1:
        scores |= {f"{key}_seed_sd": float(np.std([s[key] for s in per_set], ddof=1)) for key in per_set[0]}
    fields = field_names(cells)
    deleted = {}
    for field in sorted(set(fields)):
        keep = fields != field
        sample = cells[keep].reset_index(drop=True)
        sets = [plate_scores(values[keep], sample, plates, in_half_a[keep], null=False) for values in features]
        deleted[field] = {key: float(np.mean([s[key] for s in sets])) for key in sets[0]}
    for key in [k for k in scores if k == "lda_accuracy" or k.endswith("uM")]:
        values = np.array([deleted[f].get(key, math.nan) for f in sorted(depends_on(key, cells, plates))])
        values = values[~np.isnan(values)]
        g = len(values)
        spread = math.sqrt((g - 1) / g * np.sum((values - values.mean()) ** 2)) if g > 1 else math.nan
        half = stats.t.ppf((1 + level) / 2, g - 1) * spread if g > 1 else math.nan
        scores[f"{key}_low"], scores[f"{key}_high"] = scores[key] - half, scores[key] + half
    scores["distances_increase"] = distances_increase(scores, plates)
    return scores


def response_table(rows: pd.DataFrame, plates: list) -> list:
    """Lines of a markdown table of response_scores rows (with features and sets, the number of feature sets
    averaged): LDA accuracy and each concentration's distance with their intervals, each plate's within-well
    null, and whether the distances grow with concentration."""
    columns = [(plate, key) for plate in plates for key in [f"{plate}_dmso_null", *concentration_keys(rows, plate)]]
    names = [
        f"{plate.split('_')[-1]} {'null' if key.endswith('_null') else key[len(plate) + 1 : -2] + ' µM [95%]'}"
        for plate, key in columns
    ]
    lines = [
        f"| features | sets | LDA [95%] | {' | '.join(names)} | grows |",
        "|---|---:|---|" + "---|" * len(columns) + "---|",
    ]
    for row in rows.to_dict("records"):
        cells = [f"{row['lda_accuracy']:.3f} [{row['lda_accuracy_low']:.3f}, {row['lda_accuracy_high']:.3f}]"]
        for _, key in columns:
            value = f"{row[key]:.2f}"
            cells.append(
                value if key.endswith("_null") else f"{value} [{row[key + '_low']:.2f}, {row[key + '_high']:.2f}]"
            )
        grows = "yes" if row["distances_increase"] else "no"
        lines.append(f"| {row['features']} | {row['sets']} | {' | '.join(cells)} | {grows} |")
    return lines
