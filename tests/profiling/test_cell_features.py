"""Cheap per-cell baselines: the centre cell's segmentation and measurements on drawn cells with known answers."""

import numpy as np
import pytest

from cellvae.profiling import cell_features


def disk(shape, centre, radius):
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    return (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius**2


def drawn_crop(side=68, nucleus=8, cell=16, neighbour=True):
    """DAPI disk of radius `nucleus` in a tubulin/actin disk of radius `cell` at the centre, and a neighbour cell
    touching it on the right; uint16 like the shared crops, with camera noise."""
    rng = np.random.default_rng(0)
    crop = rng.normal(200, 5, size=(side, side, 3))
    centre = (side // 2, side // 2)
    crop[disk(crop.shape, centre, cell), 1:] += 1000
    crop[disk(crop.shape, centre, nucleus), 0] += 3000
    if neighbour:
        other = (side // 2, side // 2 + 2 * cell)
        crop[disk(crop.shape, other, cell), 1:] += 1000
        crop[disk(crop.shape, other, nucleus), 0] += 3000
    return np.clip(crop, 0, 65535).astype(np.uint16)


def test_the_centre_cell_is_segmented_without_its_neighbour():
    nucleus, cell = cell_features.segment_centre_cell(drawn_crop())
    assert nucleus.sum() == pytest.approx(np.pi * 8**2, rel=0.15)
    assert cell.sum() == pytest.approx(np.pi * 16**2, rel=0.15)
    assert nucleus[34, 34] and cell[34, 34] and not cell[34, 34 + 32]  # the neighbour's centre is not ours
    assert (nucleus & ~cell).sum() == 0


def test_measurements_follow_size_and_intensity():
    small, large = (cell_features.classic_measurements(drawn_crop(cell=c, neighbour=False)) for c in (12, 18))
    assert large["cell_area"] > 2 * small["cell_area"]
    assert small["nucleus_area"] == pytest.approx(large["nucleus_area"], rel=0.1)
    assert small["nucleus_dapi_mean"] == pytest.approx(3200, rel=0.05)
    assert small["cytoplasm_tubulin_mean"] == pytest.approx(1200, rel=0.05)
    assert small["cell_form_factor"] == pytest.approx(1.0, abs=0.2)  # a disk
    assert all(np.isfinite(value) for value in small.values())


def test_a_crop_without_nucleus_still_gives_finite_features():
    blank = np.full((68, 68, 3), 100, np.uint16)
    values = cell_features.classic_measurements(blank)
    assert all(np.isfinite(value) for value in values.values())


def test_thumbnail_and_window_statistics():
    crop = drawn_crop()
    assert cell_features.thumbnail(crop, 16).shape == (16 * 16 * 3,)
    stats = cell_features.window_statistics(crop)
    assert stats["dapi_p10"] == pytest.approx(200, abs=20) and stats["dapi_p99"] > 3000
    assert stats["tubulin_centre_mean"] > stats["tubulin_mean"]
    assert 0 < stats["dapi_bright_fraction"] < 0.2


@pytest.mark.parametrize("measure", [cell_features.classic_measurements, cell_features.window_statistics])
def test_measurements_do_not_depend_on_the_cells_orientation(measure):
    """Why the profiles average the pixel baselines and the model over a cell's 8 flips/rotations but not these."""
    from cellvae.imaging.orientations import dihedral_variants

    crop = drawn_crop()
    crop[30:38, 20:30, 1] += 800  # a bright tubulin patch: the cell is not symmetric
    measured = [measure(view) for view in dihedral_variants(crop[None])]
    for name in measured[0]:
        values = [entry[name] for entry in measured]
        assert values == pytest.approx([values[0]] * 8, rel=1e-6, abs=1e-9), name
