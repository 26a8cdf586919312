"""How a synthetic BBBC021 field looks: MCF7-like cells rendered per stain (DAPI, Tubulin, Actin), then seen
through a per-plate uneven illumination and a camera (offset, shot and read noise). cellvae.data.synthetic lays the
fields out as the real data set and writes them."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from scipy import ndimage as ndi

from cellvae.core.channels import STAINS

CAMERA_OFFSET = 200.0
BACKGROUND = np.array([110.0, 160.0, 120.0], np.float32)[:, None, None]  # per channel, counts
GAIN = 2.0  # counts per photo-electron: shot noise variance = GAIN * signal
READ_NOISE = 3.0
FIBRE_ANGLES, FIBRE_RADII = 256, 48  # polar texture grid of the tubulin fibres
NOISE_TILE = 256  # side of the seamless noise tiles repeated over a field
ANGLE_BINS = 256  # angular resolution of the per-cell outline and nucleus-lobe tables


def illumination(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """(3, h, w) smooth gains: off-centre vignetting times a tilt, max 1, min 0.6-0.8."""
    y = np.linspace(-1, 1, height, dtype=np.float32)[:, None] * (height / max(height, width))
    x = np.linspace(-1, 1, width, dtype=np.float32)[None, :] * (width / max(height, width))
    fields = []
    for _ in STAINS:
        cy, cx = rng.uniform(-0.3, 0.3, 2)
        tilt = rng.uniform(0, 2 * np.pi)
        shape = (1 - rng.uniform(0.5, 1) * ((y - cy) ** 2 + (x - cx) ** 2) / 2) * (
            1 + rng.uniform(0.1, 0.3) * (y * np.sin(tilt) + x * np.cos(tilt))
        )
        unit = (shape - shape.min()) / (shape.max() - shape.min())
        drop = rng.uniform(0.2, 0.4)
        fields.append(1 - drop + drop * unit)
    return np.stack(fields).astype(np.float32)


def acquire(signal: np.ndarray, illumination: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Camera model: illuminated (signal + background), shot and read noise, offset, uint16."""
    light = illumination * (signal + BACKGROUND)
    noise = rng.standard_normal(light.shape, np.float32)
    noise *= np.sqrt(GAIN * light + READ_NOISE**2)
    light += noise + CAMERA_OFFSET
    return np.clip(np.rint(light, out=light), 0, 65535, out=light).astype(np.uint16)


def place_cells(rng: np.random.Generator, count: int, height: int, width: int, min_distance: float) -> np.ndarray:
    """Up to `count` nucleus centres (y, x), uniform over the field, at least min_distance apart."""
    centres = np.empty((count, 2))
    placed = 0
    for candidate in rng.uniform((0, 0), (height - 1, width - 1), size=(60 * count, 2)):
        if placed and np.min(((centres[:placed] - candidate) ** 2).sum(1)) < min_distance**2:
            continue
        centres[placed] = candidate
        placed += 1
        if placed == count:
            break
    return centres[:placed]


def smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma) -> np.ndarray:
    """Gaussian-filtered white noise rescaled to unit standard deviation."""
    noise = ndi.gaussian_filter(rng.standard_normal(shape, np.float32), sigma, mode="wrap", truncate=2.5)
    return noise / noise.std()


def angle_bin(angle: np.ndarray) -> np.ndarray:
    """Index into ANGLE_BINS of angles in radians."""
    return np.rint(angle * (ANGLE_BINS / (2 * np.pi))).astype(np.int32) % ANGLE_BINS


def draw_cells(rng: np.random.Generator, centres: np.ndarray, treated: bool) -> SimpleNamespace:
    """Each cell's random make-up: nucleus shape and DAPI level, outline, stain levels, fibre and stress-fibre
    texture; and how far from its nucleus it can reach."""
    n = len(centres)
    mitotic = rng.random(n) < (0.15 if treated else 0.04)
    lobed = treated & ~mitotic & (rng.random(n) < 0.35)
    cell = SimpleNamespace(centres=centres)
    cell.nuc_a = rng.uniform(12.0, 17.0, n) * (1.15 if treated else 1.0) * np.where(mitotic, 0.8, 1.0)
    cell.nuc_b = cell.nuc_a * np.where(mitotic, 0.92, rng.uniform(0.72, 0.95, n))
    cell.nuc_angle = rng.uniform(0, np.pi, n)
    lobe_amp = np.where(lobed, rng.uniform(0.25, 0.4, n), rng.uniform(0, 0.05, n))
    lobe_k = np.where(lobed, rng.integers(2, 4, n), 3)
    lobe_phase = rng.uniform(0, 2 * np.pi, n)
    cell.dapi_level = rng.lognormal(np.log(1900), 0.2, n) * np.where(mitotic, 1.6, 1.0)
    cell.radius = (rng.uniform(36, 46, n) if treated else rng.uniform(28, 38, n)) * np.where(mitotic, 0.65, 1.0)
    harmonics = np.array([2, 3, 5])[:, None]
    shape_amp = rng.uniform(0, 1, (n, 3, 1)) * [[0.12], [0.08], [0.05]] * (0.4 if treated else 1)
    shape_phase = rng.uniform(0, 2 * np.pi, (n, 3, 1))
    shift = rng.uniform(0, 0.15, n) * cell.radius
    shift_angle = rng.uniform(0, 2 * np.pi, n)
    cell.y = centres[:, 0] + shift * np.sin(shift_angle)
    cell.x = centres[:, 1] + shift * np.cos(shift_angle)
    cell.reach = cell.radius * (1 + shape_amp.sum((1, 2))) + shift + 3  # no cell pixel lies farther out
    bins = np.arange(ANGLE_BINS) * (2 * np.pi / ANGLE_BINS)  # radius factors by cell and angle:
    cell.outlines = 1 + (shape_amp * np.cos(harmonics * bins + shape_phase)).sum(1)
    cell.lobes = 1 + lobe_amp[:, None] * np.cos(lobe_k[:, None] * bins + lobe_phase[:, None])
    cell.tubulin_level = rng.lognormal(np.log(1400), 0.25, n) * (1.4 if treated else 1.0)
    cell.actin_level = rng.lognormal(np.log(700), 0.25, n)
    cell.fibre_offset = rng.integers(0, FIBRE_ANGLES, n)
    cell.swirl = rng.uniform(-0.6, 0.6, n)
    cell.stress_angle = rng.uniform(0, np.pi, n)
    cell.stress_phase = rng.uniform(0, 2 * np.pi, n)
    return cell


def owned_pixels(centres: np.ndarray, reach: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(flat pixel indices, their cell): each pixel belongs to its nearest nucleus (Voronoi), and only pixels
    within reach of it are rendered."""
    iy, ix = np.rint(centres).astype(int).T
    seeds, seed_ids = np.ones((height, width), bool), np.zeros((height, width), np.int32)
    seeds[iy, ix], seed_ids[iy, ix] = False, np.arange(len(centres))
    nearest = ndi.distance_transform_edt(seeds, return_distances=False, return_indices=True)
    owner_map = seed_ids[nearest[0], nearest[1]]
    rows, cols = np.indices((height, width), np.int32, sparse=True)
    near = (rows - nearest[0]) ** 2 + (cols - nearest[1]) ** 2 < reach[owner_map] ** 2
    index = np.flatnonzero(near)
    return index, owner_map.ravel()[index]


def outlines(body: np.ndarray, index: np.ndarray, owner: np.ndarray, height: int, width: int) -> np.ndarray:
    """1 on the pixels where one cell's body meets another's or the background (the final blur makes a cortex)."""
    labels = np.zeros(height * width, np.int32)
    labels[index] = np.where(body > 0.5, owner + 1, 0)
    labels = labels.reshape(height, width)
    edges = np.zeros((height, width), bool)
    for axis in (0, 1):
        step = np.diff(labels, axis=axis) != 0
        edges[(slice(None),) * axis + (slice(1, None),)] |= step
        edges[(slice(None),) * axis + (slice(None, -1),)] |= step
    return edges.ravel()[index]


def render_field(rng: np.random.Generator, height: int, width: int, cells: int, treated: bool) -> np.ndarray:
    """(3, h, w) float32 DAPI/Tubulin/Actin signal of one field, before illumination and noise."""
    cell = draw_cells(rng, place_cells(rng, cells, height, width, 34.0 if treated else 30.0), treated)
    index, owner = owned_pixels(cell.centres, cell.reach, height, width)
    row, col = np.divmod(index, width)
    y, x = row.astype(np.float32), col.astype(np.float32)

    def per_cell(values: np.ndarray) -> np.ndarray:
        return np.asarray(values, np.float32)[owner]

    dy, dx = y - per_cell(cell.centres[:, 0]), x - per_cell(cell.centres[:, 1])
    cos_a, sin_a = per_cell(np.cos(cell.nuc_angle)), per_cell(np.sin(cell.nuc_angle))
    u, v = dx * cos_a + dy * sin_a, dy * cos_a - dx * sin_a
    nuc_radius = np.sqrt((u / per_cell(cell.nuc_a)) ** 2 + (v / per_cell(cell.nuc_b)) ** 2)
    nuc_radius /= cell.lobes.astype(np.float32)[owner, angle_bin(np.arctan2(v, u))]
    nucleus = np.clip((1 - nuc_radius) * per_cell(cell.nuc_a) / 1.5 + 0.5, 0, 1)

    cy, cx = y - per_cell(cell.y), x - per_cell(cell.x)
    distance, angle = np.hypot(cy, cx), np.arctan2(cy, cx)
    cell_radius = per_cell(cell.radius) * cell.outlines.astype(np.float32)[owner, angle_bin(angle)]
    rel = distance / cell_radius  # 0 at the cell centre, 1 on its outline
    body = np.maximum(np.clip((cell_radius - distance) / 2, 0, 1), nucleus)
    cortex = outlines(body, index, owner, height, width) * body
    tile = (row % NOISE_TILE) * NOISE_TILE + col % NOISE_TILE
    fine = smooth_noise(rng, (NOISE_TILE, NOISE_TILE), 1.2).ravel()[tile]
    coarse = smooth_noise(rng, (NOISE_TILE, NOISE_TILE), 6.0).ravel()[tile]

    dapi = per_cell(cell.dapi_level) * nucleus * (1 + 0.15 * fine + 0.1 * coarse + 0.25 * np.maximum(fine - 1.3, 0))

    texture = smooth_noise(rng, (FIBRE_ANGLES, FIBRE_RADII), (2.5 if treated else 1.0, 10.0))
    angle_index = (
        (angle + per_cell(cell.swirl) * rel + 0.15 * coarse) * (FIBRE_ANGLES / (2 * np.pi))
        + per_cell(cell.fibre_offset)
    ).astype(np.int32) % FIBRE_ANGLES
    radius_index = np.minimum(rel * (FIBRE_RADII - 1) / 1.2, FIBRE_RADII - 1).astype(np.int32)
    fibres = texture[angle_index, radius_index]
    if treated:  # stabilised microtubules: thick bright bundles, pushed to the cell periphery
        profile = 0.4 + 1.6 * rel**2 * np.maximum(fibres - 0.3, 0) + 0.6 * np.exp(-(((1 - rel) / 0.15) ** 2))
    else:  # fine network, densest around the nucleus
        profile = (0.55 + 0.45 * np.exp(-((rel / 0.6) ** 2))) * (1 + 0.18 * fibres + 0.1 * fine + 0.12 * coarse)
    tubulin = per_cell(cell.tubulin_level) * body * np.maximum(profile, 0) * (1 - 0.45 * nucleus)

    along = x * per_cell(np.cos(cell.stress_angle)) + y * per_cell(np.sin(cell.stress_angle))
    stress = np.maximum(np.cos(along * (2 * np.pi / 7) + per_cell(cell.stress_phase) + coarse), 0) ** 2
    stress *= stress * np.clip(0.3 * fine + 0.5 * coarse, 0, 1) * (0.3 if treated else 1.0)
    actin = per_cell(cell.actin_level) * (body * (0.45 + 0.12 * fine + stress) + cortex)
    actin *= 1 - 0.3 * nucleus

    signal = np.zeros((3, height * width), np.float32)
    for channel, values in enumerate((dapi, tubulin, actin)):
        signal[channel, index] = values
    signal = signal.reshape(3, height, width)
    # Optical blur; DAPI is smooth already, and tubulin fibres and actin outlines need it.
    signal[1:] = ndi.gaussian_filter(signal[1:], (0, 0.8, 0.8), truncate=2.5)
    return np.maximum(signal, 0, out=signal)
