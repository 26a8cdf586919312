"""Response of held-out plates on per-cell features, and the whole-window classic features."""

import numpy as np
import pandas as pd

from cellvae.metadata import CONTROL
from cellvae.plate_response import N_CLASSIC_FEATURES, classic_features, response_scores


def plates_of_cells(shifts: dict, n: int = 40, dims: int = 4, seed: int = 0) -> tuple[np.ndarray, pd.DataFrame]:
    """Two plates of control cells (two wells of two fields each) and treated cells shifted by shifts[dose]."""
    rng = np.random.default_rng(seed)
    rows, features = [], []
    for plate in ("P1", "P2"):
        for index in range(n):
            rows.append(
                dict(plate=plate, well=f"W{index % 2}", site=index % 4 // 2, compound=CONTROL, concentration_uM=0.0)
            )
            features.append(rng.standard_normal(dims))
        for dose, shift in shifts.items():
            for index in range(n // 2):
                rows.append(dict(plate=plate, well=f"T{dose}", site=index % 2, compound="drug", concentration_uM=dose))
                features.append(rng.standard_normal(dims) + shift)
    return np.array(features), pd.DataFrame(rows)


def test_a_dose_response_separates_across_plates_and_grows_with_dose():
    features, cells = plates_of_cells({1.0: 1.0, 10.0: 3.0})
    scores = response_scores(features, cells, ["P1", "P2"])
    assert scores["lda_accuracy"] > 0.8
    assert scores["distances_increase"]
    for plate in ("P1", "P2"):
        assert 0 < scores[f"{plate}_1uM"] < scores[f"{plate}_10uM"]
        assert abs(scores[f"{plate}_dmso_null"]) < scores[f"{plate}_1uM"]


def test_no_response_is_near_chance_and_does_not_grow():
    features, cells = plates_of_cells({1.0: 0.0, 10.0: 0.0}, seed=1)
    scores = response_scores(features, cells, ["P1", "P2"])
    assert scores["lda_accuracy"] < 0.7
    assert abs(scores["P1_10uM"]) < 1.0


def test_classic_features_measure_the_centre_object():
    yy, xx = np.mgrid[:40, :40]
    window = np.zeros((40, 40, 3), np.uint16)
    cell, nucleus, corner = (
        (yy - 20) ** 2 + (xx - 20) ** 2 <= 100,
        (yy - 20) ** 2 + (xx - 20) ** 2 <= 16,
        (yy < 4) & (xx < 4),
    )
    window[cell] = (1000, 2000, 500)
    window[nucleus, 2] = 1500
    window[corner] = (1000, 1000, 1000)  # another object, away from the centre
    values = classic_features(window)
    assert len(values) == N_CLASSIC_FEATURES
    assert values[0] == cell.sum()  # area of the centre object
    assert values[7] == nucleus.sum()  # its bright DAPI part
