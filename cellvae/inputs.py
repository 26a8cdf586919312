"""Training inputs: folders of single-cell images -> composed uint8 cells -> .npy shards -> tf.data batches.

Folders may hold PNG, TIFF or .npy images (H×W×C). uint8 images are taken as already display-scaled
(range 0..255); other dtypes (the raw uint16 crops) are scaled by per-channel robust percentile ranges
over all cells, then resized and padded exactly as the PNG stage does (`cellvae.png`). The output RGB
order is always R = Tubulin, G = Actin, B = DAPI; `channel_order` names the channels of the input
(default: the PNG order for .png files, BBBC021's DAPI, Tubulin, Actin for .npy and TIFF).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

from cellvae.channels import RGB_STAINS, STAINS
from cellvae.config import defaults
from cellvae.files import atomic_write, check_crop_side, is_grey_png, read_csv, read_png, regular_file
from cellvae.png import channel_ranges, compose_cell

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


def filter_rows(table: pd.DataFrame, where: list[str], source) -> pd.DataFrame:
    """Rows matching every KEY=VALUE[,VALUE...] filter (numbers compared as numbers)."""
    for condition in where:
        key, separator, values = condition.partition("=")
        if not separator or key not in table.columns:
            raise ValueError(
                f"--where {condition!r}: expected KEY=VALUE with KEY one of the columns of {source}: "
                f"{', '.join(table.columns)}"
            )
        wanted = values.split(",")
        column = table[key]
        if pd.api.types.is_numeric_dtype(column):
            try:
                wanted = [float(value) for value in wanted]
            except ValueError:
                raise ValueError(f"--where {condition!r}: column {key} of {source} holds numbers") from None
        else:
            column = column.astype(str)
        table = table[column.isin(wanted)]
    return table


def image_table(sources, where=(), pattern="*") -> pd.DataFrame:
    """The images of several sources, one row each (column path, plus the manifest's columns): a source is
    a folder (images matching pattern) or a CSV manifest (rows matching every --where filter). A source given
    twice, or an image reached twice, is refused (it would count every such cell twice)."""
    tables, given, reached = [], {}, {}
    for source in map(Path, sources):
        if source.resolve() in given:
            raise ValueError(f"{source} is given twice (also as {given[source.resolve()]}): give each source once")
        given[source.resolve()] = source
        if source.suffix.lower() == ".csv":
            table = filter_rows(read_csv(source, "image manifest"), list(where), source)
            if table.empty:
                raise ValueError(f"no rows of {source} match {' and '.join(where) or 'anything'}")
            table = table.assign(path=resolve_manifest_paths(table, source))
        else:
            if where:
                raise ValueError(f"--where filters manifest rows, but {source} is a folder; pass a manifest .csv")
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


def compose_arrays(raw, size, percentiles, scale=None, ranges=None) -> tuple[np.ndarray, np.ndarray]:
    """H×W×3 arrays in RGB order -> (uint8 cells N×size×size×3, the per-channel ranges used); scale: one
    resize factor for all (None: each fills the canvas), as `cellvae.png.compose_cell`.

    ranges: reuse given ranges (e.g. the training set's for held-out cells); otherwise uint8
    inputs keep 0..255 and others get `channel_ranges` over all these cells, as in the PNG stage.
    """
    if ranges is None:
        ranges = UINT8_RANGES if all(cell.dtype == np.uint8 for cell in raw) else channel_ranges(raw, percentiles)
    cells = np.empty((len(raw), size, size, 3), np.uint8)
    for index, cell in enumerate(raw):
        cells[index] = compose_cell(cell, np.asarray(ranges, dtype=np.float64), size, scale)
    return cells, np.asarray(ranges, dtype=np.float64)


def write_shard(path, cells: np.ndarray) -> None:
    """Write uint8 cells (N×S×S×3) as a .npy shard, atomically; an identical existing shard is kept
    (so its modification time, part of a training checkpoint's fingerprint, stays)."""
    path = Path(path)
    cells = np.ascontiguousarray(cells, dtype=np.uint8)
    if path.is_file():
        existing = np.load(path, mmap_mode="r")
        if existing.shape == cells.shape and np.array_equal(existing, cells):
            return
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda temporary: np.save(temporary, cells))


def shard_info(path) -> tuple[int, int, int]:
    """(number of cells, image side, header bytes) of a uint8 .npy shard."""
    array = np.load(path, mmap_mode="r")
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[1] != array.shape[2] or array.shape[3] != 3:
        raise ValueError(f"shard {path} holds {array.dtype} {array.shape}; expected uint8 N×S×S×3")
    return array.shape[0], array.shape[1], array.offset


def shards_summary(shards) -> tuple[int, int, list[int]]:
    """(total cells, common image side, header bytes per shard); an error if sides differ."""
    infos = [shard_info(path) for path in shards]
    sides = {side for count, side, _ in infos if count}
    if len(sides) != 1:
        raise ValueError(f"shards {list(map(str, shards))} hold cells of sides {sorted(sides)}; expected one")
    return sum(count for count, _, _ in infos), sides.pop(), [header for _, _, header in infos]


def dihedral_augment(batch, seed):
    """Each image of a uint8 batch (B×S×S×3) in one of its 8 flips/rotations (a cell has no canonical
    orientation), chosen by a stateless draw from seed (a shape-[2] int tensor): the same on every run."""
    import tensorflow as tf

    variants = []
    for image in (batch, tf.image.flip_left_right(batch)):
        variants += [tf.image.rot90(image, k) for k in range(4)]
    choice = tf.random.stateless_uniform([tf.shape(batch)[0]], seed, 0, 8, dtype=tf.int32)
    return tf.gather(tf.stack(variants, axis=1), choice, axis=1, batch_dims=1)


def shard_records(shards: list, headers: list, record_bytes: int, parallel_reads: int):
    """tf.data of the shards' cells as fixed-length records (bounded memory): shard by shard in order
    (parallel_reads 0), or parallel_reads shards at once, interleaved deterministically."""
    import tensorflow as tf

    files = tf.data.Dataset.from_tensor_slices((shards, tf.constant(headers, tf.int64)))

    def read(path, header):
        return tf.data.FixedLengthRecordDataset(path, record_bytes, header_bytes=header, buffer_size=1 << 20)

    if not parallel_reads:
        return files.flat_map(read)
    return files.interleave(
        read,
        cycle_length=max(1, min(parallel_reads, len(shards))),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )


def epoch_batches(records, decode, epoch_seed, batch_size: int, shuffle_buffer: int, augment: bool):
    """One epoch of decoded batches: records shuffled through a buffer with epoch_seed; augment: each cell in a
    random one of its 8 flips/rotations, drawn from (epoch_seed, batch index)."""
    import tensorflow as tf

    batches = records.shuffle(shuffle_buffer, seed=epoch_seed, reshuffle_each_iteration=False)
    batches = batches.batch(batch_size).map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if not augment:
        return batches

    @tf.autograph.experimental.do_not_convert
    def augment_batch(index, batch):
        return dihedral_augment(batch, tf.stack([epoch_seed, index]))

    return batches.enumerate().map(augment_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def cell_dataset(
    shards,
    batch_size,
    *,
    shuffle=False,
    seed=0,
    first_epoch=0,
    epochs=1,
    augment=False,
    shuffle_buffer: int,
    cache_bytes: int,
    parallel_reads: int,
):
    """tf.data batches of uint8 cells streamed from .npy shards (the VAE scales them to [0, 1] itself,
    on the accelerator: a quarter of the bytes of float32 to move, and no host-side conversion).

    Shards are read as fixed-length records (bounded memory; in parallel, interleaved, when
    shuffling, else in order), cached in memory when
    they fit in cache_bytes, and shuffled through a buffer with a seed derived from (seed, epoch),
    so an epoch's order does not depend on how many epochs ran before in this process. With
    shuffle, the dataset holds epochs first_epoch..epochs-1 back to back, each ending in its own
    (possibly short) batch; otherwise one pass. augment (with shuffle only): each training cell in a random
    one of its 8 flips/rotations, drawn from (seed, epoch, batch).
    """
    import tensorflow as tf

    shards = [str(path) for path in shards]
    n_cells, side, headers = shards_summary(shards)
    record_bytes = side * side * 3
    records = shard_records(shards, headers, record_bytes, parallel_reads if shuffle else 0)
    if n_cells * record_bytes <= cache_bytes:
        records = records.cache()

    @tf.autograph.experimental.do_not_convert
    def decode(batch):
        return tf.reshape(tf.io.decode_raw(batch, tf.uint8), (-1, side, side, 3))

    if shuffle:

        @tf.autograph.experimental.do_not_convert
        def one_epoch(epoch):
            return epoch_batches(records, decode, seed * 1_000_003 + epoch, batch_size, shuffle_buffer, augment)

        batches = tf.data.Dataset.range(first_epoch, epochs).flat_map(one_epoch)
    else:
        batches = records.batch(batch_size).map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return batches.prefetch(tf.data.AUTOTUNE)
