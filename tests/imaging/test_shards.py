"""Shards and the tf.data pipeline: .npy shards kept when unchanged, seeded epochs, refusals."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from cellvae.imaging.shards import cell_dataset, shard_info, write_shard  # noqa: E402

SMALL = {"shuffle_buffer": 100, "cache_bytes": 0, "parallel_reads": 2}  # tf.data settings for a few cells


def shards(tmp_path, sizes=(10, 7), side=8):
    paths = []
    start = 0
    for index, size in enumerate(sizes):
        cells = np.zeros((size, side, side, 3), np.uint8)
        cells[:, 0, 0, 0] = np.arange(start, start + size)  # each cell's id in one pixel
        start += size
        paths.append(tmp_path / f"shard{index}.npy")
        write_shard(paths[-1], cells)
    return paths


def ids(batches):
    return [int(v) for batch in batches for v in batch.numpy()[:, 0, 0, 0]]


def test_shard_is_npy_and_kept_when_unchanged(tmp_path):
    path = shards(tmp_path, sizes=(5,))[0]
    assert shard_info(path)[:2] == (5, 8)
    before = path.stat().st_mtime_ns
    write_shard(path, np.load(path))
    assert path.stat().st_mtime_ns == before
    np.save(tmp_path / "float.npy", np.zeros((2, 8, 8, 3)))
    with pytest.raises(ValueError, match="expected uint8"):
        shard_info(tmp_path / "float.npy")


def test_a_truncated_shard_is_written_anew(tmp_path):
    """A shard cut short (a killed write outside atomic_write, a full disk) is replaced, not read."""
    cells = np.arange(4 * 8 * 8 * 3, dtype=np.uint8).reshape(4, 8, 8, 3)
    path = tmp_path / "train.npy"
    write_shard(path, cells)
    path.write_bytes(path.read_bytes()[:200])
    write_shard(path, cells)
    np.testing.assert_array_equal(np.load(path), cells)


@pytest.mark.parametrize("cache_bytes", [0, 1 << 20])
def test_each_epoch_is_a_seeded_permutation_independent_of_where_training_started(tmp_path, cache_bytes):
    paths = shards(tmp_path)
    full = list(
        cell_dataset(
            paths, 4, shuffle=True, seed=3, epochs=3, shuffle_buffer=100, cache_bytes=cache_bytes, parallel_reads=2
        )
    )
    batches_per_epoch = 5  # 3 of 4 cells + 1 of 3, + ... : ceil(17 / 4)
    epochs = [ids(full[e * batches_per_epoch : (e + 1) * batches_per_epoch]) for e in range(3)]
    for order in epochs:
        assert sorted(order) == list(range(17))
    assert epochs[0] != epochs[1] != epochs[2]
    resumed = list(
        cell_dataset(
            paths,
            4,
            shuffle=True,
            seed=3,
            first_epoch=2,
            epochs=3,
            shuffle_buffer=100,
            cache_bytes=cache_bytes,
            parallel_reads=2,
        )
    )
    assert ids(resumed) == epochs[2]
    other_seed = ids(cell_dataset(paths, 4, shuffle=True, seed=4, epochs=1, **SMALL))
    assert other_seed != epochs[0]


def test_unshuffled_pass_keeps_shard_order_and_delivers_uint8(tmp_path):
    batches = list(cell_dataset(shards(tmp_path), 6, **SMALL))
    assert ids(batches) == list(range(17))
    assert batches[0].dtype.name == "uint8" and batches[0].shape == (6, 8, 8, 3)


def test_shards_of_different_sides_are_refused(tmp_path):
    paths = shards(tmp_path, sizes=(3,), side=8) + [tmp_path / "big.npy"]
    write_shard(paths[-1], np.zeros((2, 16, 16, 3), np.uint8))
    with pytest.raises(ValueError, match="sides"):
        cell_dataset(paths, 2, **SMALL)
