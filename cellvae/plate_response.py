"""Response of held-out plates to a compound, measured on any per-cell features: a cross-plate LDA's balanced
accuracy (control vs treated) and, per plate, each concentration's Mahalanobis distance from the plate's control
cells beside the within-well null (cellvae.separation); and a small whole-window classic feature set."""

from __future__ import annotations

import numpy as np
import pandas as pd
from skimage import filters, measure
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from cellvae.metadata import CONTROL
from cellvae.separation import mahalanobis_distance, within_well_null

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


def response_scores(features: np.ndarray, cells: pd.DataFrame, plates: list) -> dict:
    """lda_accuracy (cross_plate_accuracy of the first two plates); per plate, the Mahalanobis distance of each
    concentration from its control cells (<plate>_<concentration>uM, features standardised on the control
    cells) and its within-well null (<plate>_dmso_null); distances_increase: whether they grow with concentration on
    every plate.
    cells: plate, well, site, compound and concentration_uM of each row of features."""
    treated = (cells["compound"] != CONTROL).to_numpy()
    scores = {"lda_accuracy": cross_plate_accuracy(features, treated, cells, plates)}
    ordered = True
    for plate in plates:
        on_plate = (cells["plate"] == plate).to_numpy()
        scale = StandardScaler().fit(features[on_plate & ~treated])
        control = scale.transform(features[on_plate & ~treated])
        wells = cells.loc[on_plate & ~treated, "well"].to_numpy()
        sites = cells.loc[on_plate & ~treated, "site"].to_numpy()
        scores[f"{plate}_dmso_null"] = within_well_null(control, wells, sites, seed=0)
        distances = []
        for concentration in sorted(cells.loc[on_plate & treated, "concentration_uM"].unique()):
            chosen = on_plate & treated & (cells["concentration_uM"] == concentration).to_numpy()
            distance = mahalanobis_distance(control, scale.transform(features[chosen]), seed=0)
            scores[f"{plate}_{concentration:g}uM"] = distance
            distances.append(distance)
        ordered &= bool(np.all(np.diff(distances) > 0))
    scores["distances_increase"] = ordered
    return scores
