"""Image inputs: folders and manifests of single-cell images -> an image table -> raw arrays -> composed uint8
cells (shards and the tf.data pipeline: cellvae.imaging.shards).

Folders may hold PNG, TIFF or .npy images (H×W×C). uint8 images are taken as already display-scaled
(range 0..255); other dtypes (the raw uint16 crops) are scaled by per-channel robust percentile ranges
over all cells, then resized and padded exactly as the PNG stage does (`cellvae.imaging.png`). The output RGB
order is always R = Tubulin, G = Actin, B = DAPI; `channel_order` names the channels of the input
(default: the PNG order for .png files, BBBC021's DAPI, Tubulin, Actin for .npy and TIFF).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

from cellvae.core.channels import RGB_STAINS, STAINS
from cellvae.core.config import defaults
from cellvae.core.files import check_crop_side, is_grey_png, read_csv, read_png, regular_file
from cellvae.imaging.png import channel_ranges, compose_cell

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".npy")
RGB_ORDER = tuple(stain.lower() for stain in RGB_STAINS)  # channel_order names: the PNGs' R, G, B
RAW_ORDER = tuple(stain.lower() for stain in STAINS)  # channel_order names: the raw TIFFs' and .npy crops'
UINT8_RANGES = np.array([[0.0, 255.0]] * 3)
NUMBER_KINDS = "biuf"  # numpy dtype kinds of pixel values: bool, integers, floats
KIND_WORDS = {"uint8": "uint8 images (display-scaled, e.g. PNGs)", "raw": "raw crops (not uint8, e.g. uint16)"}


def list_images(folder, pattern="*") -> list[Path]:
    """Image files in folder matching the glob pattern, sorted; an error if there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    paths = sorted(p for p in folder.glob(pattern) if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(f"no {'/'.join(IMAGE_SUFFIXES)} images matching {pattern!r} in {folder}")
    return paths


def resolve_manifest_paths(table: pd.DataFrame, manifest_csv: Path) -> list[str]:
    """The manifest's image paths (column path or file); relative ones are taken from the manifest's folder or
    the nearest folder above it where the first of them exists."""
    column = "path" if "path" in table.columns else "file" if "file" in table.columns else None
    if column is None:
        raise ValueError(f"manifest {manifest_csv} has no 'path' or 'file' column naming the images")
    empty = table[column].isna() | (table[column].astype(str).str.strip() == "")
    if empty.any():
        line = table.index[empty.to_numpy().argmax()] + 2  # the header is line 1
        raise ValueError(
            f"manifest {manifest_csv}, line {line}: the {column} cell is empty; name an image there or delete the row"
        )
    paths = [Path(value) for value in table[column].astype(str)]
    if not paths or paths[0].is_absolute():
        return [str(path) for path in paths]
    for base in [manifest_csv.parent, *manifest_csv.parent.parents]:
        if (base / paths[0]).is_file():
            return [str(base / path) for path in paths]
    raise FileNotFoundError(f"manifest {manifest_csv}: image {paths[0]} not found beside it or in a folder above it")


class RowFilterError(ValueError):
    """A row filter that cannot be applied (malformed, no such column, or a folder to filter): the caller says how
    the filter was given (the CLI: --where)."""


def filter_rows(table: pd.DataFrame, where: list[str], source) -> pd.DataFrame:
    """Rows matching every KEY=VALUE[,VALUE...] filter (numbers compared as numbers); a RowFilterError naming the
    filter and source when a filter is malformed or names no column."""
    for condition in where:
        key, separator, values = condition.partition("=")
        if not separator or key not in table.columns:
            raise RowFilterError(
                f"row filter {condition!r}: expected KEY=VALUE with KEY one of the columns of {source}: "
                f"{', '.join(table.columns)}"
            )
        wanted = values.split(",")
        column = table[key]
        if pd.api.types.is_numeric_dtype(column):
            try:
                wanted = [float(value) for value in wanted]
            except ValueError:
                raise RowFilterError(f"row filter {condition!r}: column {key} of {source} holds numbers") from None
        else:
            column = column.astype(str)
        table = table[column.isin(wanted)]
    return table


def image_table(sources, where=(), pattern="*") -> pd.DataFrame:
    """The images of several sources, one row each (column path, plus the manifest's columns): a source is
    a folder (images matching pattern) or a CSV manifest (rows matching every filter of where: filter_rows). A
    source given twice, an image reached twice (it would count every such cell twice), a filter of rows for a folder
    and a file pattern for a manifest are refused."""
    tables, given, reached = [], {}, {}
    for source in map(Path, sources):
        if source.resolve() in given:
            raise ValueError(f"{source} is given twice (also as {given[source.resolve()]}): give each source once")
        given[source.resolve()] = source
        if source.suffix.lower() == ".csv":
            if pattern not in (None, "*"):
                raise ValueError(
                    f"a file pattern ({pattern!r}) selects images in folders, but {source} is a manifest: "
                    "select its rows with --where instead"
                )
            table = filter_rows(read_csv(source, "image manifest"), list(where), source)
            if table.empty:
                raise ValueError(f"no rows of {source} match {' and '.join(where) or 'anything'}")
            table = table.assign(path=resolve_manifest_paths(table, source))
        else:
            if where:
                raise RowFilterError(f"row filters select manifest rows, but {source} is a folder: give a manifest")
            table = pd.DataFrame({"path": [str(path) for path in list_images(source, pattern)]})
        for path in table["path"]:
            key = Path(path).resolve()
            if key in reached:
                first, by = reached[key]
                where_from = f"listed twice in {source}" if by == source else f"reached twice: by {by} and by {source}"
                raise ValueError(f"image {first} is {where_from}; give each image once")
            reached[key] = (path, source)
        tables.append(table)
    table = pd.concat(tables, ignore_index=True)
    return table[["path", *[column for column in table.columns if column != "path"]]]


def default_channel_order(path) -> tuple:
    """The input channel order assumed when none is given."""
    return RGB_ORDER if Path(path).suffix.lower() == ".png" else RAW_ORDER


@functools.cache
def default_max_side() -> int:
    """config png.max_crop_side's default (config/config.schema.yaml)."""
    return defaults()["png"]["max_crop_side"]


def _checked_shape(path, shape, max_side) -> None:
    """Refuse, before the pixels are read, an image that is not H×W×3 (or 3×H×W) or larger than max_side."""
    if len(shape) != 3 or 3 not in (shape[0], shape[-1]):
        raise ValueError(f"image {path} has shape {tuple(shape)}; expected H×W×3")
    height, width = shape[:2] if shape[-1] == 3 else shape[1:]
    check_crop_side(path, height, width, max_side)


def _checked_dtype(path, dtype) -> None:
    if dtype.hasobject or dtype.names is not None or dtype.kind not in NUMBER_KINDS:
        raise ValueError(f"{path} is not a crop array: it holds {dtype} values, not pixel numbers")


def _read_npy(path, max_side) -> np.ndarray:
    """A .npy crop, its header checked before any pixel is read; never unpickled."""
    with open(path, "rb") as file:
        try:
            version = np.lib.format.read_magic(file)
            if version not in ((1, 0), (2, 0)):
                raise ValueError(f".npy format version {version}")
            read_header = (
                np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            )
            shape, _, dtype = read_header(file)
        except ValueError as error:
            raise ValueError(
                f"{path} is not a crop array: no readable NumPy header ({error}); give H×W×3 crops saved by numpy.save"
            ) from None
        _checked_dtype(path, dtype)
        _checked_shape(path, shape, max_side)
        file.seek(0)
        try:
            return np.lib.format.read_array(file, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise ValueError(f"unreadable image {path}: {error}") from None


def _read_tiff(path, max_side) -> np.ndarray:
    """A TIFF crop, its shape checked from the header before any pixel is read."""
    try:
        with tifffile.TiffFile(path) as tiff:
            series = tiff.series[0]
            _checked_dtype(path, series.dtype)
            _checked_shape(path, series.shape, max_side)
            return series.asarray()
    except (OSError, IndexError, tifffile.TiffFileError) as error:
        raise ValueError(f"unreadable image {path}: {error}") from None


def read_image(path, channel_order=None, max_side=None) -> np.ndarray:
    """One image as an H×W×3 array in RGB = (tubulin, actin, dapi) order, dtype as stored. Refused, naming the
    file: what is not a regular file, a .npy that is not an array of numbers, an image larger than max_side
    (default: config png.max_crop_side; checked from the header), non-finite pixels."""
    path = regular_file(path, "image")
    max_side = default_max_side() if max_side is None else max_side
    suffix = path.suffix.lower()
    if suffix == ".png":
        array = read_png(path, max_side)
    elif suffix == ".npy":
        array = _read_npy(path, max_side)
    else:
        array = _read_tiff(path, max_side)
    if array.ndim == 3 and array.shape[0] == 3 and array.shape[-1] != 3:
        array = np.moveaxis(array, 0, -1)  # channels-first TIFF
    if array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(f"image {path} has shape {array.shape}; expected H×W×3")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        count = array.size - np.count_nonzero(np.isfinite(array))
        raise ValueError(
            f"image {path} holds {count} non-finite pixel value(s) (NaN or inf): fix the file or leave it out"
        )
    order = [name.lower() for name in (channel_order or default_channel_order(path))]
    if sorted(order) != sorted(RGB_ORDER):
        raise ValueError(f"channel order {order} must name each of {', '.join(RAW_ORDER)} once")
    return array[..., [order.index(name) for name in RGB_ORDER]]


def _kind(array) -> str:
    return "uint8" if array.dtype == np.uint8 else "raw"


def _grey(path) -> bool:
    return Path(path).suffix.lower() == ".png" and is_grey_png(path)


def read_images(paths, channel_order=None, max_side=None, what="images", like=None) -> tuple[list, str]:
    """(H×W×3 arrays in RGB order, their kind: 'uint8' or 'raw'), read with `read_image`. Refused: a mix of uint8
    and raw images, or of grey (one-channel) PNGs and colour images (a grey image would stand for all three
    stains; a set of grey PNGs only is read, each into R, G and B); like=(kind, example path): the training
    images, which these (what, e.g. 'validation images') must match in kind and greyness."""
    paths = [str(path) for path in paths]
    arrays = [read_image(path, channel_order, max_side) for path in paths]
    kinds = [_kind(array) for array in arrays]
    if len(set(kinds)) > 1:
        raw = paths[kinds.index("raw")]
        raise ValueError(
            f"{what}: mixes uint8 images (e.g. {paths[kinds.index('uint8')]}) with raw (e.g. uint16) ones "
            f"(e.g. {raw}); give one kind"
        )
    grey = [_grey(path) for path in paths]
    if any(grey) and not all(grey):
        raise ValueError(
            f"{paths[grey.index(True)]} is a grey (one-channel) PNG among colour ones (e.g. "
            f"{paths[grey.index(False)]}): its one channel would stand for all three stains; convert it or leave it out"
        )
    if like is not None and paths:
        kind, example = like
        if kinds[0] != kind:
            raise ValueError(
                f"{what} are {KIND_WORDS[kinds[0]]} such as {paths[0]}, but the training images are "
                f"{KIND_WORDS[kind]} such as {example}: give {what} of the training images' kind"
            )
        if grey[0] != _grey(example):
            shades = {True: "grey (one-channel) PNGs", False: "colour images"}
            raise ValueError(
                f"{what} are {shades[grey[0]]} such as {paths[0]}, but the training images are "
                f"{shades[_grey(example)]} such as {example}: give {what} of the training images' kind"
            )
    return arrays, kinds[0] if kinds else "uint8"


def compose_arrays(raw, size, percentiles, scale=None, ranges=None, names=None) -> tuple[np.ndarray, np.ndarray]:
    """H×W×3 arrays in RGB order -> (uint8 cells N×size×size×3, the per-channel ranges used); scale: one
    resize factor for all (None: each fills the canvas), as `cellvae.imaging.png.compose_cell`. names: each
    array's file, named in the error of a cell that does not fit the canvas.

    ranges: reuse given ranges (e.g. the training set's for held-out cells); otherwise uint8
    inputs keep 0..255 and others get `channel_ranges` over all these cells, as in the PNG stage.
    """
    if ranges is None:
        ranges = UINT8_RANGES if all(cell.dtype == np.uint8 for cell in raw) else channel_ranges(raw, percentiles)
    cells = np.empty((len(raw), size, size, 3), np.uint8)
    for index, cell in enumerate(raw):
        try:
            cells[index] = compose_cell(cell, np.asarray(ranges, dtype=np.float64), size, scale)
        except ValueError as error:
            if names is None:
                raise
            raise ValueError(f"{names[index]}: {error}: give crops that fit, or a model of a larger canvas") from None
    return cells, np.asarray(ranges, dtype=np.float64)
