"""Shards and the tf.data pipeline: composed uint8 cells (cellvae.imaging.images) written as .npy shards, streamed back
as batches (seeded shuffles per epoch, the 8 flips/rotations as augmentation) for training."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cellvae.core.files import atomic_write


def write_shard(path, cells: np.ndarray) -> None:
    """Write uint8 cells (N×S×S×3, or ×4: RGB + the cell's mask, cellvae.core.files.read_pngs(mask=True)) as a .npy
    shard, atomically; an identical existing shard is kept
    (so its modification time, part of a training checkpoint's fingerprint, stays)."""
    path = Path(path)
    cells = np.ascontiguousarray(cells, dtype=np.uint8)
    if path.is_file():
        try:
            existing = np.load(path, mmap_mode="r")
        except (ValueError, OSError):  # truncated or not a .npy: written anew
            existing = None
        if existing is not None and existing.shape == cells.shape and np.array_equal(existing, cells):
            return
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda temporary: np.save(temporary, cells))


def shard_info(path) -> tuple[int, int, int]:
    """(number of cells, image side, header bytes) of a uint8 .npy shard."""
    array = shard_array(path)
    return array.shape[0], array.shape[1], array.offset


def shard_array(path) -> np.ndarray:
    """A uint8 .npy shard, memory-mapped: N×S×S×3, or ×4 with the cells' masks; ValueError for another."""
    array = np.load(path, mmap_mode="r")
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[1] != array.shape[2] or array.shape[3] not in (3, 4):
        raise ValueError(f"shard {path} holds {array.dtype} {array.shape}; expected uint8 N×S×S×3 (or ×4 with masks)")
    return array


def shard_channels(shards) -> int:
    """The channels the shards' cells have in common: 3 (RGB) or 4 (RGB + the cell mask); an error if they differ."""
    channels = {shard_array(path).shape[3] for path in shards}
    if len(channels) != 1:
        raise ValueError(f"shards {list(map(str, shards))} hold cells of {sorted(channels)} channels; expected one")
    return channels.pop()


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
    """tf.data batches of uint8 cells streamed from .npy shards (4-channel shards: RGB + the cell mask, which the VAE
    splits off for likelihood_support: cell; the VAE scales them to [0, 1] itself,
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
    channels = shard_channels(shards)  # 4: each cell's mask travels as its 4th channel, flipped and rotated with it
    record_bytes = side * side * channels
    records = shard_records(shards, headers, record_bytes, parallel_reads if shuffle else 0)
    if n_cells * record_bytes <= cache_bytes:
        records = records.cache()

    @tf.autograph.experimental.do_not_convert
    def decode(batch):
        return tf.reshape(tf.io.decode_raw(batch, tf.uint8), (-1, side, side, channels))

    if shuffle:

        @tf.autograph.experimental.do_not_convert
        def one_epoch(epoch):
            return epoch_batches(records, decode, seed * 1_000_003 + epoch, batch_size, shuffle_buffer, augment)

        batches = tf.data.Dataset.range(first_epoch, epochs).flat_map(one_epoch)
    else:
        batches = records.batch(batch_size).map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return batches.prefetch(tf.data.AUTOTUNE)
