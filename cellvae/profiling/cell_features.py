"""Cheap per-cell feature sets, the baselines a learned profile must beat: a thumbnail, window statistics and
classic measurements of the centre cell (a small CellProfiler-like set, scikit-image).

Crops are H×W×3 arrays in acquisition order (DAPI, Tubulin, Actin), the centre cell in the middle.
classic: the nucleus is the Otsu-thresholded DAPI object under (or nearest) the centre; the cell grows from the
nuclei by watershed on the Otsu-thresholded tubulin + actin; then shape, intensities per channel in nucleus,
cell and cytoplasm, and Haralick textures (grey-level co-occurrence) of each channel in the cell.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage import feature, filters, measure, morphology, segmentation, transform

CHANNELS = ("dapi", "tubulin", "actin")
SHAPE = ("area", "perimeter", "eccentricity", "solidity", "extent", "axis_major_length", "axis_minor_length")
TEXTURES = ("contrast", "homogeneity", "correlation", "energy")
GREY_LEVELS = 32  # grey levels of the co-occurrence matrices
MIN_NUCLEUS_PX = 20  # smaller DAPI objects are noise


def thumbnail(crop: np.ndarray, side: int) -> np.ndarray:
    """The crop resized (anti-aliased) to side × side, flattened."""
    return transform.resize(crop.astype(np.float64), (side, side, crop.shape[2]), anti_aliasing=True).ravel()


def window_statistics(crop: np.ndarray) -> dict:
    """Per channel: mean, sd, 10/50/90/99th percentiles, the fraction above its Otsu threshold, centre mean."""
    height, width = crop.shape[:2]
    centre = crop[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4]
    values = {}
    for index, name in enumerate(CHANNELS):
        channel = crop[..., index].astype(np.float64)
        p10, p50, p90, p99 = np.percentile(channel, [10, 50, 90, 99])
        bright = (channel > filters.threshold_otsu(channel)).mean() if np.ptp(channel) > 0 else 0.0
        values.update(
            {
                f"{name}_mean": channel.mean(),
                f"{name}_sd": channel.std(),
                f"{name}_p10": p10,
                f"{name}_p50": p50,
                f"{name}_p90": p90,
                f"{name}_p99": p99,
                f"{name}_bright_fraction": bright,
                f"{name}_centre_mean": centre[..., index].mean(),
            }
        )
    return values


def _foreground(image: np.ndarray) -> np.ndarray:
    smooth = filters.gaussian(image, sigma=1)
    if np.ptp(smooth) == 0:
        return np.zeros(image.shape, bool)
    return ndimage.binary_fill_holes(smooth > filters.threshold_otsu(smooth))


def segment_centre_cell(crop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(nucleus mask, cell mask) of the centre cell; a disk at the centre where no nucleus is found."""
    height, width = crop.shape[:2]
    centre = np.array([height // 2, width // 2])
    dapi = crop[..., 0].astype(np.float64)
    nuclei = measure.label(morphology.remove_small_objects(_foreground(dapi), max_size=MIN_NUCLEUS_PX))
    if nuclei.max() == 0:
        rows, cols = np.ogrid[:height, :width]
        nucleus = (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= (min(height, width) // 8) ** 2
        nuclei = nucleus.astype(int)
    label = nuclei[tuple(centre)]
    if label == 0:  # the nucleus nearest the centre
        distances = ndimage.distance_transform_edt(nuclei == 0, return_indices=True)[1]
        label = nuclei[tuple(distances[:, centre[0], centre[1]])]
    cytoplasm = sum(crop[..., i].astype(np.float64) / max(np.percentile(crop[..., i], 99), 1e-9) for i in (1, 2))
    mask = _foreground(cytoplasm) | (nuclei > 0)
    cells = segmentation.watershed(-filters.gaussian(cytoplasm, sigma=1), nuclei, mask=mask)
    return nuclei == label, cells == label


def _shape(mask: np.ndarray, prefix: str) -> dict:
    region = measure.regionprops(mask.astype(np.uint8))[0]
    values = {f"{prefix}_{name}": float(getattr(region, name)) for name in SHAPE}
    values[f"{prefix}_form_factor"] = 4 * np.pi * region.area / max(region.perimeter, 1.0) ** 2
    return values


def _textures(channel: np.ndarray, mask: np.ndarray, name: str) -> dict:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    box = channel[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    inside = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    low, high = np.percentile(channel[mask], [1, 99])
    levels = np.clip((box - low) / max(high - low, 1e-9) * (GREY_LEVELS - 1), 0, GREY_LEVELS - 1).astype(np.uint8)
    levels = np.where(inside, levels + 1, 0).astype(np.uint8)  # 0: outside the cell, left out below
    matrix = feature.graycomatrix(levels, [1], [0, np.pi / 4, np.pi / 2, 3 * np.pi / 4], GREY_LEVELS + 1)
    matrix = matrix[1:, 1:].astype(np.float64)
    return {f"{name}_{texture}": float(feature.graycoprops(matrix, texture).mean()) for texture in TEXTURES}


def classic_measurements(crop: np.ndarray) -> dict:
    """Shape, intensity and texture features of the centre cell (see the module docstring)."""
    nucleus, cell = segment_centre_cell(crop)
    cytoplasm = cell & ~nucleus
    values = {**_shape(nucleus, "nucleus"), **_shape(cell, "cell")}
    values["nucleus_cell_area_ratio"] = nucleus.sum() / cell.sum()
    for index, name in enumerate(CHANNELS):
        channel = crop[..., index].astype(np.float64)
        for part, mask in (("nucleus", nucleus), ("cell", cell), ("cytoplasm", cytoplasm)):
            pixels = channel[mask] if mask.any() else np.zeros(1)
            values[f"{part}_{name}_mean"] = pixels.mean()
            values[f"{part}_{name}_sd"] = pixels.std()
            values[f"{part}_{name}_integrated"] = pixels.sum()
        values.update(_textures(channel, cell, f"cell_{name}"))
    return values
