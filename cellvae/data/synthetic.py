"""A deterministic synthetic mini BBBC021 (MCF7 cells; DAPI, Tubulin, Actin) in the real layout.

`generate_mini_bbbc021` writes BBBC021_v1_image.csv, BBBC021_v1_moa.csv and one
BBBC021_v1_images_<Plate>.zip per plate, named and formatted like the Broad originals, into a folder of its own:
one that is empty or absent, which it marks (MARKER lists what it wrote), or one it marked before. A folder holding
anything else (a real BBBC021 mirror) is refused before anything is written. Fields are
rendered from random per-cell shapes and textures, then seen through a per-plate, per-channel
uneven illumination with a camera offset and shot/read noise. The treated compound gets a
taxol-like phenotype whatever its name: larger, rounder cells, bright peripheral tubulin bundles,
more mitotic and multi-lobed nuclei.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from cellvae.core.channels import WAVELENGTHS
from cellvae.data.fetch import archive_name
from cellvae.data.metadata import CONTROL, IMAGE_CSV, MOA_CSV
from cellvae.data.synthetic_fields import acquire, illumination, render_field

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
MARKER = "cellvae-synthetic.json"  # in the generator's folder: the files it wrote there
ZIP_DATE_TIME = (2007, 6, 15, 0, 0, 0)


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
    names: dict[Path, list[str]] = {}
    for path in map(Path, [image_csv, moa_csv, *archives.values()]):
        names.setdefault(path.parent, []).append(path.name)
    for folder in names:
        check_own_folder(folder)
    marked = {folder: claim_folder(folder, files) for folder, files in names.items()}
    seed, fields = settings["seed"], _fields(settings)
    staged: list[tuple[Path, Path]] = []
    replaced = 0
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
            replaced += 1
    except BaseException:
        if not replaced:  # nothing written: each folder as it was, its marker too
            for folder, before in marked.items():
                _restore_marker(folder, before)
        raise
    finally:
        for temporary, _ in staged:
            temporary.unlink(missing_ok=True)


def foreign_entries(folder) -> list[str]:
    """The names in a folder that the generator did not write there (none for an absent or empty folder); a folder
    without MARKER holds only foreign entries."""
    folder = Path(folder)
    if not folder.is_dir():
        return [] if not folder.exists() else [folder.name]
    names = sorted(entry.name for entry in folder.iterdir())
    ours = set(_marked(folder))
    staged = {f".{name}.partial" for name in ours | {MARKER}}  # what an interrupted write left
    return [name for name in names if not (name in ours or name in staged or (name == MARKER and ours))]


def check_own_folder(folder, key: str = "synthetic output folder") -> None:
    """Raise a one-line ValueError where the folder is a file or holds anything the generator did not write."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ValueError(f"{key}: {os.path.abspath(folder)} is a file, not a folder: give a folder")
    foreign = foreign_entries(folder)
    if foreign:
        shown = ", ".join(foreign[:4]) + (f" and {len(foreign) - 4} more" if len(foreign) > 4 else "")
        raise ValueError(
            f"{key}: {os.path.abspath(folder)} holds {shown}, which the synthetic generator did not write (it writes "
            f"only into an empty folder or one it marked with {MARKER}): to use this data, set synthetic.enabled "
            "false (--config 'synthetic={enabled: false}'); for the demo, give an empty or new folder"
        )


def claim_folder(folder, names) -> bytes | None:
    """Mark a folder as the generator's before writing `names` there (MARKER, written first, lists them with what
    it wrote before); refuse a folder holding anything else. The marker it replaced (None: there was none)."""
    folder = Path(folder)
    check_own_folder(folder)
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / MARKER
    before = marker.read_bytes() if marker.is_file() else None
    files = sorted(set(_marked(folder)) | set(names))
    record = {"written_by": "cellvae.data.synthetic (the synthetic mini BBBC021)", "files": files}
    staged = folder / f".{MARKER}.partial"
    staged.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(staged, marker)
    return before


def _restore_marker(folder: Path, before: bytes | None) -> None:
    if before is None:
        (folder / MARKER).unlink(missing_ok=True)
    else:
        (folder / MARKER).write_bytes(before)


def _marked(folder: Path) -> list[str]:
    """The files MARKER lists (none without a readable marker)."""
    try:
        files = json.loads((folder / MARKER).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [name for name in files if isinstance(name, str) and "/" not in name] if isinstance(files, list) else []


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
        if not isinstance(value, str) or not value.strip() or value.strip().upper() == CONTROL:
            raise ValueError(
                f"settings['treated'][{key!r}] must be a non-empty name other than {CONTROL}, got {value!r}"
            )
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
        (CONTROL, 0.0, False, DMSO_WELLS[:count]),
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
    rows = [(CONTROL, 0.0, CONTROL), (treated["compound"], treated["concentration"], treated["moa"])]
    return "\n".join([MOA_CSV_HEADER] + [f"{_quote(c)},{float(x):f},{_quote(m)}" for c, x, m in rows]) + "\n"


def _stage(final: Path) -> tuple[Path, Path]:
    final.parent.mkdir(parents=True, exist_ok=True)
    return final.with_name(f".{final.name}.partial"), final


def _write_plate_zip(path: Path, fields: list[Field], settings: dict) -> None:
    """Render every field of one plate into <Plate>/<file>.tif members of a deflated zip."""
    seed, height, width = settings["seed"], settings["height"], settings["width"]
    plate = fields[0].plate
    gains = illumination(_rng(seed, "illumination", plate), height, width)
    with zipfile.ZipFile(path, "w") as archive:
        for field in fields:
            rng = _rng(seed, "field", plate, field.well, field.site)
            signal = render_field(rng, height, width, settings["cells_per_field"], field.treated)
            for name, image in zip(field.file_names(seed), acquire(signal, gains, rng)):
                info = zipfile.ZipInfo(f"{plate}/{name}", ZIP_DATE_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                archive.writestr(info, _tiff_bytes(image), compresslevel=1)


def _tiff_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, image, photometric="minisblack", metadata=None)
    return buffer.getvalue()
