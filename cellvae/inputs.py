"""Training inputs: folders of single-cell images -> composed uint8 cells -> .npy shards -> tf.data batches.

Folders may hold PNG, TIFF or .npy images (H×W×C). uint8 images are taken as already display-scaled
(range 0..255); other dtypes (the raw uint16 crops) are scaled by per-channel robust percentile ranges
over all cells, then resized and padded exactly as the PNG stage does (`cellvae.png`). The output RGB
order is always R = Tubulin, G = Actin, B = DAPI; `channel_order` names the channels of the input
(default: the PNG order for .png files, BBBC021's DAPI, Tubulin, Actin for .npy and TIFF).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from cellvae.png import CHANNELS, channel_ranges, compose_cell

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".npy")
RAW_CHANNEL_ORDER = ("dapi", "tubulin", "actin")     # BBBC021 wavelengths w1, w2, w4 (the shared .npy crops)
UINT8_RANGES = np.array([[0.0, 255.0]] * 3)


def list_images(folder, pattern="*") -> list[Path]:
    """Image files in folder matching the glob pattern, sorted; an error if there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    paths = sorted(p for p in folder.glob(pattern) if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(f"no {'/'.join(IMAGE_SUFFIXES)} images matching {pattern!r} in {folder}")
    return paths


def default_channel_order(path) -> tuple:
    """The input channel order assumed when none is given."""
    return tuple(CHANNELS) if Path(path).suffix.lower() == ".png" else RAW_CHANNEL_ORDER


def read_image(path, channel_order=None) -> np.ndarray:
    """One image as an H×W×3 array in RGB = (tubulin, actin, dapi) order, dtype as stored."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".npy":
            array = np.load(path, allow_pickle=False)
        elif path.suffix.lower() == ".png":
            with Image.open(path) as image:
                array = np.asarray(image.convert("RGB") if image.mode in ("P", "RGBA", "L") else image)
        else:
            array = tifffile.imread(path)
    except (OSError, ValueError, tifffile.TiffFileError) as error:
        raise ValueError(f"unreadable image {path}: {error}") from None
    if array.ndim == 3 and array.shape[0] == 3 and array.shape[-1] != 3:
        array = np.moveaxis(array, 0, -1)                 # channels-first TIFF
    if array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(f"image {path} has shape {array.shape}; expected H×W×3")
    order = [name.lower() for name in (channel_order or default_channel_order(path))]
    if sorted(order) != sorted(CHANNELS):
        raise ValueError(f"channel order {order} must name each of {CHANNELS} once")
    return array[..., [order.index(name) for name in CHANNELS]]


def compose_cells(paths, size, channel_order=None, percentiles=(0.5, 99.8), upscale=True,
                  ranges=None) -> tuple[np.ndarray, np.ndarray]:
    """Images -> (uint8 cells N×size×size×3, the per-channel ranges used).

    ranges: reuse given ranges (e.g. the training set's for held-out cells); otherwise uint8
    inputs keep 0..255 and others get `channel_ranges` over all these cells, as in the PNG stage.
    """
    raw = [read_image(path, channel_order) for path in paths]
    if ranges is None:
        ranges = UINT8_RANGES if all(cell.dtype == np.uint8 for cell in raw) else channel_ranges(raw, percentiles)
    cells = np.empty((len(raw), size, size, 3), np.uint8)
    for index, cell in enumerate(raw):
        cells[index] = compose_cell(cell, np.asarray(ranges, dtype=np.float64), size, upscale)
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
    temporary = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(temporary, "wb") as handle:
            np.save(handle, cells)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


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


def cell_dataset(shards, batch_size, *, shuffle=False, seed=0, first_epoch=0, epochs=1,
                 shuffle_buffer=10_000, cache_bytes=2 << 30, parallel_reads=4):
    """tf.data batches of uint8 cells streamed from .npy shards (the VAE scales them to [0, 1] itself,
    on the accelerator: a quarter of the bytes of float32 to move, and no host-side conversion).

    Shards are read as fixed-length records (bounded memory; in parallel, interleaved, when
    shuffling, else in order), cached in memory when
    they fit in cache_bytes, and shuffled through a buffer with a seed derived from (seed, epoch),
    so an epoch's order does not depend on how many epochs ran before in this process. With
    shuffle, the dataset holds epochs first_epoch..epochs-1 back to back, each ending in its own
    (possibly short) batch; otherwise one pass.
    """
    import tensorflow as tf

    shards = [str(path) for path in shards]
    n_cells, side, headers = shards_summary(shards)
    record_bytes = side * side * 3
    files = tf.data.Dataset.from_tensor_slices((shards, tf.constant(headers, tf.int64)))

    def read(path, header):
        return tf.data.FixedLengthRecordDataset(path, record_bytes, header_bytes=header, buffer_size=1 << 20)

    if shuffle:
        records = files.interleave(read, cycle_length=max(1, min(parallel_reads, len(shards))),
                                   num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    else:
        records = files.flat_map(read)                     # shard by shard, in order
    if n_cells * record_bytes <= cache_bytes:
        records = records.cache()

    def decode(batch):
        return tf.reshape(tf.io.decode_raw(batch, tf.uint8), (-1, side, side, 3))

    if shuffle:
        def one_epoch(epoch):
            return records.shuffle(shuffle_buffer, seed=seed * 1_000_003 + epoch,
                                   reshuffle_each_iteration=False).batch(batch_size)
        batches = tf.data.Dataset.range(first_epoch, epochs).flat_map(one_epoch)
    else:
        batches = records.batch(batch_size)
    return batches.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)
