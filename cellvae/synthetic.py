"""A deterministic synthetic mini BBBC021 (MCF7 cells; DAPI, Tubulin, Actin) in the real layout.

`generate_mini_bbbc021` writes BBBC021_v1_image.csv, BBBC021_v1_moa.csv and one
BBBC021_v1_images_<Plate>.zip per plate, named and formatted like the Broad originals. Fields are
rendered from random per-cell shapes and textures, then seen through a per-plate, per-channel
uneven illumination with a camera offset and shot/read noise. The treated compound gets a
taxol-like phenotype whatever its name: larger, rounder cells, bright peripheral tubulin bundles,
more mitotic and multi-lobed nuclei.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import re
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage as ndi

from cellvae.channels import STAINS, WAVELENGTHS
from cellvae.fetch import archive_name
from cellvae.metadata import IMAGE_CSV, MOA_CSV

SETTINGS_KEYS = (
    "seed",
    "plates",
    "treated",
    "wells_per_compound",
    "sites_per_well",
    "width",
    "height",
    "cells_per_field",
)
DMSO_WELLS = ("B02", "C02", "D02", "E11", "F11", "G11")  # the real BBBC021 DMSO positions
TREATED_WELLS = tuple(f"{row}{col:02d}" for col in range(3, 11) for row in "BCDEFG")
WEEK_PREFIXES = {
    1: "Week1_150607_",
    2: "Week2_180607_",
    3: "Week3_290607_",
    4: "",
    5: "Week5_130707_",
    6: "Week6_200607_",
    8: "Week8_4sites_",
    9: "Week9_090907_",
    10: "Week10_200907_",
}
WEEK7_PREFIXES = {
    "34341": "Week7_230707_",
    "34381": "Week7_230707_",
    "34641": "Week7_7__",
    "34661": "Week7_7__",
    "34681": "Week7_7__",
}
IMAGE_CSV_HEADER = (
    'TableNumber,ImageNumber,"Image_FileName_DAPI","Image_PathName_DAPI",'
    '"Image_FileName_Tubulin","Image_PathName_Tubulin","Image_FileName_Actin",'
    '"Image_PathName_Actin","Image_Metadata_Plate_DAPI","Image_Metadata_Well_DAPI",'
    'Replicate,"Image_Metadata_Compound",Image_Metadata_Concentration'
)
MOA_CSV_HEADER = '"compound",concentration,"moa"'
ZIP_DATE_TIME = (2007, 6, 15, 0, 0, 0)
CAMERA_OFFSET = 200.0
BACKGROUND = np.array([110.0, 160.0, 120.0], np.float32)[:, None, None]  # per channel, counts
GAIN = 2.0  # counts per photo-electron: shot noise variance = GAIN * signal
READ_NOISE = 3.0
FIBRE_ANGLES, FIBRE_RADII = 256, 48  # polar texture grid of the tubulin fibres
NOISE_TILE = 256  # side of the seamless noise tiles repeated over a field
ANGLE_BINS = 256  # angular resolution of the per-cell outline and nucleus-lobe tables


@dataclass(frozen=True)
class Field:
    """One imaged site: a row of BBBC021_v1_image.csv and three TIFFs."""

    plate: str
    week: int
    prefix: str
    replicate: int
    well: str
    site: int
    compound: str
    concentration: float
    treated: bool

    def file_names(self, seed: int) -> list[str]:
        """DAPI, Tubulin, Actin file names, e.g. Week1_150607_B02_s1_w1<UUID>.tif."""
        return [
            f"{self.prefix}{self.well}_s{self.site}_w{wave}"
            f"{_file_uuid(seed, self.plate, self.well, self.site, wave)}.tif"
            for wave in WAVELENGTHS.values()
        ]


def source_files(folder, plates) -> dict:
    """generate_mini_bbbc021's output arguments for a folder in the real source layout (the names fetch reads)."""
    folder = Path(folder)
    return {
        "image_csv": folder / IMAGE_CSV,
        "moa_csv": folder / MOA_CSV,
        "archives": {plate: folder / archive_name(plate) for plate in plates},
    }


def generate_mini_bbbc021(settings: dict, *, image_csv, moa_csv, archives: dict) -> None:
    """Write the synthetic image table, MoA table and one zip per plate (archives: plate -> path, for each of
    settings' plates); same settings, same bytes."""
    _validate(settings)
    if sorted(archives) != sorted(settings["plates"]):
        raise ValueError(f"archives given for plates {sorted(archives)}, but synthetic.plates is {settings['plates']}")
    seed, fields = settings["seed"], _fields(settings)
    staged: list[tuple[Path, Path]] = []
    try:
        for plate in settings["plates"]:
            staged.append(_stage(Path(archives[plate])))
            _write_plate_zip(staged[-1][0], [f for f in fields if f.plate == plate], settings)
        staged.append(_stage(Path(moa_csv)))
        staged[-1][0].write_bytes(_moa_csv(settings["treated"]).encode())
        staged.append(_stage(Path(image_csv)))
        staged[-1][0].write_bytes(_image_csv(fields, seed).encode())
        for temporary, final in staged:
            os.replace(temporary, final)
    finally:
        for temporary, _ in staged:
            temporary.unlink(missing_ok=True)


def plate_week_and_prefix(plate: str) -> tuple[int, str]:
    """Week number and file-name prefix of a real BBBC021 plate name such as 'Week4_27481'."""
    match = re.fullmatch(r"Week([1-9]|10)_(\d+)", plate) if isinstance(plate, str) else None
    if match is None or (match[1] == "7" and match[2] not in WEEK7_PREFIXES):
        raise ValueError(
            f"unknown BBBC021 plate {plate!r}: expected Week<1-10>_<digits> such as "
            f"'Week4_27481' (Week7: {', '.join(WEEK7_PREFIXES)})"
        )
    week = int(match[1])
    return week, WEEK7_PREFIXES[match[2]] if week == 7 else WEEK_PREFIXES[week]


def _validate(settings: dict) -> None:
    """Raise a one-line ValueError naming the first bad key."""
    missing = [key for key in SETTINGS_KEYS if key not in settings]
    if missing:
        raise ValueError(f"synthetic settings lack key(s): {', '.join(missing)}")
    _require_int(settings, "seed", 0)
    _require_int(settings, "wells_per_compound", 1, len(DMSO_WELLS))
    _require_int(settings, "sites_per_well", 1)
    _require_int(settings, "width", 64)
    _require_int(settings, "height", 64)
    _require_int(settings, "cells_per_field", 1)
    plates = settings["plates"]
    if not isinstance(plates, (list, tuple)) or not plates or len(set(plates)) != len(plates):
        raise ValueError(f"settings['plates'] must be a non-empty list of distinct plate names, got {plates!r}")
    for plate in plates:
        plate_week_and_prefix(plate)
    treated = settings["treated"]
    if not isinstance(treated, dict):
        raise ValueError(f"settings['treated'] must be a mapping, got {treated!r}")
    for key in ("compound", "moa"):
        value = treated.get(key)
        if not isinstance(value, str) or not value.strip() or value.strip().upper() == "DMSO":
            raise ValueError(f"settings['treated'][{key!r}] must be a non-empty name other than DMSO, got {value!r}")
    concentration = treated.get("concentration")
    if (
        isinstance(concentration, bool)
        or not isinstance(concentration, (int, float))
        or not math.isfinite(concentration)
        or concentration <= 0
    ):
        raise ValueError(f"settings['treated']['concentration'] must be a positive number, got {concentration!r}")


def _require_int(settings: dict, key: str, low: int, high: int | None = None) -> None:
    value = settings[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in {low}..{high}"
        raise ValueError(f"settings[{key!r}] must be an integer {bound}, got {value!r}")


def _fields(settings: dict) -> list[Field]:
    """All fields in CSV order: plate, DMSO then treated wells, site."""
    treated = settings["treated"]
    count = settings["wells_per_compound"]
    conditions = [
        ("DMSO", 0.0, False, DMSO_WELLS[:count]),
        (treated["compound"], float(treated["concentration"]), True, TREATED_WELLS[:count]),
    ]
    fields = []
    for plate_index, plate in enumerate(settings["plates"]):
        week, prefix = plate_week_and_prefix(plate)
        for compound, concentration, is_treated, wells in conditions:
            fields += [
                Field(plate, week, prefix, plate_index % 3 + 1, well, site, compound, concentration, is_treated)
                for well in wells
                for site in range(1, settings["sites_per_well"] + 1)
            ]
    return fields


def _file_uuid(seed: int, *key: object) -> str:
    digest = hashlib.sha256("/".join(map(str, (seed, *key))).encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4)).upper()


def _rng(seed: int, *key: object) -> np.random.Generator:
    digest = hashlib.sha256("/".join(map(str, (seed, *key))).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _image_csv(fields: list[Field], seed: int) -> str:
    """BBBC021_v1_image.csv text; TableNumber is week % 10, as in the real file (Week10: 0)."""
    lines, numbers = [IMAGE_CSV_HEADER], {}
    for field in fields:
        table = field.week % 10
        numbers[table] = numbers.get(table, 0) + 1
        path = _quote(f"Week{field.week}/{field.plate}")
        files = [part for name in field.file_names(seed) for part in (_quote(name), path)]
        lines.append(
            ",".join(
                [
                    str(table),
                    str(numbers[table]),
                    *files,
                    _quote(field.plate),
                    _quote(field.well),
                    str(field.replicate),
                    _quote(field.compound),
                    f"{field.concentration:f}",
                ]
            )
        )
    return "\n".join(lines) + "\n"


def _moa_csv(treated: dict) -> str:
    rows = [("DMSO", 0.0, "DMSO"), (treated["compound"], treated["concentration"], treated["moa"])]
    return "\n".join([MOA_CSV_HEADER] + [f"{_quote(c)},{float(x):f},{_quote(m)}" for c, x, m in rows]) + "\n"


def _stage(final: Path) -> tuple[Path, Path]:
    final.parent.mkdir(parents=True, exist_ok=True)
    return final.with_name(f".{final.name}.partial"), final


def _write_plate_zip(path: Path, fields: list[Field], settings: dict) -> None:
    """Render every field of one plate into <Plate>/<file>.tif members of a deflated zip."""
    seed, height, width = settings["seed"], settings["height"], settings["width"]
    plate = fields[0].plate
    illumination = _illumination(_rng(seed, "illumination", plate), height, width)
    with zipfile.ZipFile(path, "w") as archive:
        for field in fields:
            rng = _rng(seed, "field", plate, field.well, field.site)
            signal = _render_field(rng, height, width, settings["cells_per_field"], field.treated)
            for name, image in zip(field.file_names(seed), _acquire(signal, illumination, rng)):
                info = zipfile.ZipInfo(f"{plate}/{name}", ZIP_DATE_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                archive.writestr(info, _tiff_bytes(image), compresslevel=1)


def _tiff_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, image, photometric="minisblack", metadata=None)
    return buffer.getvalue()


def _illumination(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
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


def _acquire(signal: np.ndarray, illumination: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Camera model: illuminated (signal + background), shot and read noise, offset, uint16."""
    light = illumination * (signal + BACKGROUND)
    noise = rng.standard_normal(light.shape, np.float32)
    noise *= np.sqrt(GAIN * light + READ_NOISE**2)
    light += noise + CAMERA_OFFSET
    return np.clip(np.rint(light, out=light), 0, 65535, out=light).astype(np.uint16)


def _place_cells(rng: np.random.Generator, count: int, height: int, width: int, min_distance: float) -> np.ndarray:
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


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma) -> np.ndarray:
    """Gaussian-filtered white noise rescaled to unit standard deviation."""
    noise = ndi.gaussian_filter(rng.standard_normal(shape, np.float32), sigma, mode="wrap", truncate=2.5)
    return noise / noise.std()


def _angle_bin(angle: np.ndarray) -> np.ndarray:
    """Index into ANGLE_BINS of angles in radians."""
    return np.rint(angle * (ANGLE_BINS / (2 * np.pi))).astype(np.int32) % ANGLE_BINS


def _render_field(rng: np.random.Generator, height: int, width: int, cells: int, treated: bool) -> np.ndarray:
    """(3, h, w) float32 DAPI/Tubulin/Actin signal of one field, before illumination and noise."""
    centres = _place_cells(rng, cells, height, width, 34.0 if treated else 30.0)
    n = len(centres)
    mitotic = rng.random(n) < (0.15 if treated else 0.04)
    lobed = treated & ~mitotic & (rng.random(n) < 0.35)
    nuc_a = rng.uniform(12.0, 17.0, n) * (1.15 if treated else 1.0) * np.where(mitotic, 0.8, 1.0)
    nuc_b = nuc_a * np.where(mitotic, 0.92, rng.uniform(0.72, 0.95, n))
    nuc_angle = rng.uniform(0, np.pi, n)
    lobe_amp = np.where(lobed, rng.uniform(0.25, 0.4, n), rng.uniform(0, 0.05, n))
    lobe_k = np.where(lobed, rng.integers(2, 4, n), 3)
    lobe_phase = rng.uniform(0, 2 * np.pi, n)
    dapi_level = rng.lognormal(np.log(1900), 0.2, n) * np.where(mitotic, 1.6, 1.0)
    radius = (rng.uniform(36, 46, n) if treated else rng.uniform(28, 38, n)) * np.where(mitotic, 0.65, 1.0)
    harmonics = np.array([2, 3, 5])[:, None]
    shape_amp = rng.uniform(0, 1, (n, 3, 1)) * [[0.12], [0.08], [0.05]] * (0.4 if treated else 1)
    shape_phase = rng.uniform(0, 2 * np.pi, (n, 3, 1))
    shift = rng.uniform(0, 0.15, n) * radius
    shift_angle = rng.uniform(0, 2 * np.pi, n)
    cell_y = centres[:, 0] + shift * np.sin(shift_angle)
    cell_x = centres[:, 1] + shift * np.cos(shift_angle)
    reach = radius * (1 + shape_amp.sum((1, 2))) + shift + 3  # no cell pixel lies farther out
    bins = np.arange(ANGLE_BINS) * (2 * np.pi / ANGLE_BINS)  # radius factors by cell and angle:
    outlines = 1 + (shape_amp * np.cos(harmonics * bins + shape_phase)).sum(1)
    lobes = 1 + lobe_amp[:, None] * np.cos(lobe_k[:, None] * bins + lobe_phase[:, None])
    tubulin_level = rng.lognormal(np.log(1400), 0.25, n) * (1.4 if treated else 1.0)
    actin_level = rng.lognormal(np.log(700), 0.25, n)
    fibre_offset = rng.integers(0, FIBRE_ANGLES, n)
    swirl = rng.uniform(-0.6, 0.6, n)
    stress_angle = rng.uniform(0, np.pi, n)
    stress_phase = rng.uniform(0, 2 * np.pi, n)

    # Each pixel belongs to its nearest nucleus (Voronoi), and only pixels within reach of it
    # are rendered, as flat arrays `index` with coordinates (y, x).
    iy, ix = np.rint(centres).astype(int).T
    seeds, seed_ids = np.ones((height, width), bool), np.zeros((height, width), np.int32)
    seeds[iy, ix], seed_ids[iy, ix] = False, np.arange(n)
    nearest = ndi.distance_transform_edt(seeds, return_distances=False, return_indices=True)
    owner_map = seed_ids[nearest[0], nearest[1]]
    rows, cols = np.indices((height, width), np.int32, sparse=True)
    near = (rows - nearest[0]) ** 2 + (cols - nearest[1]) ** 2 < reach[owner_map] ** 2
    index = np.flatnonzero(near)
    owner = owner_map.ravel()[index]
    row, col = np.divmod(index, width)
    y, x = row.astype(np.float32), col.astype(np.float32)

    def per_cell(values: np.ndarray) -> np.ndarray:
        return np.asarray(values, np.float32)[owner]

    dy, dx = y - per_cell(centres[:, 0]), x - per_cell(centres[:, 1])
    cos_a, sin_a = per_cell(np.cos(nuc_angle)), per_cell(np.sin(nuc_angle))
    u, v = dx * cos_a + dy * sin_a, dy * cos_a - dx * sin_a
    nuc_radius = np.sqrt((u / per_cell(nuc_a)) ** 2 + (v / per_cell(nuc_b)) ** 2)
    nuc_radius /= lobes.astype(np.float32)[owner, _angle_bin(np.arctan2(v, u))]
    nucleus = np.clip((1 - nuc_radius) * per_cell(nuc_a) / 1.5 + 0.5, 0, 1)

    cy, cx = y - per_cell(cell_y), x - per_cell(cell_x)
    distance, angle = np.hypot(cy, cx), np.arctan2(cy, cx)
    cell_radius = per_cell(radius) * outlines.astype(np.float32)[owner, _angle_bin(angle)]
    rel = distance / cell_radius  # 0 at the cell centre, 1 on its outline
    body = np.maximum(np.clip((cell_radius - distance) / 2, 0, 1), nucleus)

    labels = np.zeros(height * width, np.int32)
    labels[index] = np.where(body > 0.5, owner + 1, 0)
    labels = labels.reshape(height, width)
    edges = np.zeros((height, width), bool)  # cell outlines; the final blur makes them a cortex
    for axis in (0, 1):
        step = np.diff(labels, axis=axis) != 0
        edges[(slice(None),) * axis + (slice(1, None),)] |= step
        edges[(slice(None),) * axis + (slice(None, -1),)] |= step
    cortex = edges.ravel()[index] * body
    tile = (row % NOISE_TILE) * NOISE_TILE + col % NOISE_TILE
    fine = _smooth_noise(rng, (NOISE_TILE, NOISE_TILE), 1.2).ravel()[tile]
    coarse = _smooth_noise(rng, (NOISE_TILE, NOISE_TILE), 6.0).ravel()[tile]

    dapi = per_cell(dapi_level) * nucleus * (1 + 0.15 * fine + 0.1 * coarse + 0.25 * np.maximum(fine - 1.3, 0))

    texture = _smooth_noise(rng, (FIBRE_ANGLES, FIBRE_RADII), (2.5 if treated else 1.0, 10.0))
    angle_index = (
        (angle + per_cell(swirl) * rel + 0.15 * coarse) * (FIBRE_ANGLES / (2 * np.pi)) + per_cell(fibre_offset)
    ).astype(np.int32) % FIBRE_ANGLES
    radius_index = np.minimum(rel * (FIBRE_RADII - 1) / 1.2, FIBRE_RADII - 1).astype(np.int32)
    fibres = texture[angle_index, radius_index]
    if treated:  # stabilised microtubules: thick bright bundles, pushed to the cell periphery
        profile = 0.4 + 1.6 * rel**2 * np.maximum(fibres - 0.3, 0) + 0.6 * np.exp(-(((1 - rel) / 0.15) ** 2))
    else:  # fine network, densest around the nucleus
        profile = (0.55 + 0.45 * np.exp(-((rel / 0.6) ** 2))) * (1 + 0.18 * fibres + 0.1 * fine + 0.12 * coarse)
    tubulin = per_cell(tubulin_level) * body * np.maximum(profile, 0) * (1 - 0.45 * nucleus)

    along = x * per_cell(np.cos(stress_angle)) + y * per_cell(np.sin(stress_angle))
    stress = np.maximum(np.cos(along * (2 * np.pi / 7) + per_cell(stress_phase) + coarse), 0) ** 2
    stress *= stress * np.clip(0.3 * fine + 0.5 * coarse, 0, 1) * (0.3 if treated else 1.0)
    actin = per_cell(actin_level) * (body * (0.45 + 0.12 * fine + stress) + cortex)
    actin *= 1 - 0.3 * nucleus

    signal = np.zeros((3, height * width), np.float32)
    for channel, values in enumerate((dapi, tubulin, actin)):
        signal[channel, index] = values
    signal = signal.reshape(3, height, width)
    # Optical blur; DAPI is smooth already, and tubulin fibres and actin outlines need it.
    signal[1:] = ndi.gaussian_filter(signal[1:], (0, 0.8, 0.8), truncate=2.5)
    return np.maximum(signal, 0, out=signal)
