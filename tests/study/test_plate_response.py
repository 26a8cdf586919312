"""Response of held-out plates on per-cell features, and the whole-window classic features."""

import numpy as np
import pandas as pd

from cellvae.data.metadata import CONTROL
from cellvae.study.plate_response import N_CLASSIC_FEATURES, classic_features, response_scores


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
    scores = response_scores([features], cells, ["P1", "P2"])
    assert scores["lda_accuracy"] > 0.8
    assert scores["distances_increase"]
    for plate in ("P1", "P2"):
        assert 0 < scores[f"{plate}_1uM"] < scores[f"{plate}_10uM"]
        assert abs(scores[f"{plate}_dmso_null"]) < scores[f"{plate}_1uM"]
        for dose in (1, 10):
            assert scores[f"{plate}_{dose}uM_low"] < scores[f"{plate}_{dose}uM"] < scores[f"{plate}_{dose}uM_high"]


def test_no_response_is_near_chance_and_does_not_grow():
    features, cells = plates_of_cells({1.0: 0.0, 10.0: 0.0}, seed=1)
    scores = response_scores([features], cells, ["P1", "P2"])
    assert scores["lda_accuracy"] < 0.7
    assert abs(scores["P1_10uM"]) < 1.0


def test_the_interval_covers_the_true_distance_and_widens_with_field_to_field_variation():
    true_distance = 1.0 * 2  # a shift of 1 in each of 4 dimensions of unit variance
    features, cells = plates_of_cells({1.0: 1.0}, n=120, seed=2)
    scores = response_scores([features], cells, ["P1", "P2"])
    assert scores["P1_1uM_low"] < true_distance < scores["P1_1uM_high"]
    field_offsets = np.random.default_rng(3).standard_normal((8, 4)) * 0.5
    fields = pd.factorize(cells["plate"] + cells["well"] + cells["site"].astype(str))[0]
    uneven = response_scores([features + field_offsets[fields % 8]], cells, ["P1", "P2"])
    width = scores["P1_1uM_high"] - scores["P1_1uM_low"]
    assert uneven["P1_1uM_high"] - uneven["P1_1uM_low"] > 2 * width


def test_seeds_are_averaged_and_their_spread_reported():
    features, cells = plates_of_cells({1.0: 1.0, 10.0: 3.0})
    other = features + np.random.default_rng(4).standard_normal(features.shape) * 0.3
    one, two, both = (response_scores(sets, cells, ["P1", "P2"]) for sets in ([features], [other], [features, other]))
    assert np.isclose(both["P2_10uM"], (one["P2_10uM"] + two["P2_10uM"]) / 2)
    assert np.isclose(both["P2_10uM_seed_sd"], abs(one["P2_10uM"] - two["P2_10uM"]) / np.sqrt(2))
    assert "P2_10uM_seed_sd" not in one


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
