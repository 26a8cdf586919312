"""Training inputs: image folders composed as the PNG stage does, .npy shards, the tf.data pipeline."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tifffile  # noqa: E402
from PIL import Image  # noqa: E402

from cellvae.inputs import (  # noqa: E402
    cell_dataset,
    compose_arrays,
    list_images,
    read_image,
    read_images,
    shard_info,
    write_shard,
)
from cellvae.png import channel_ranges, compose_cell  # noqa: E402

SMALL = {"shuffle_buffer": 100, "cache_bytes": 0, "parallel_reads": 2}  # tf.data settings for a few cells


def compose_files(paths, size, percentiles, channel_order=None):
    """Image files composed as `cellvae train` composes them: read_images, then compose_arrays."""
    return compose_arrays(read_images(paths, channel_order)[0], size, percentiles)


def raw_cells(n=6, seed=0):
    """uint16 H×W×3 crops in BBBC021 order (DAPI, Tubulin, Actin) with distinct channel levels."""
    rng = np.random.default_rng(seed)
    return [
        (rng.integers(0, 1000, (20 + i, 16, 3)) + np.array([30000, 2000, 10000])).astype(np.uint16) for i in range(n)
    ]


def test_npy_and_tiff_are_composed_exactly_as_the_png_stage(tmp_path):
    cells = raw_cells()
    for i, cell in enumerate(cells):
        np.save(tmp_path / f"c{i}.npy", cell)
        tifffile.imwrite(tmp_path / f"c{i}.tif", cell)
    rgb = [cell[..., [1, 2, 0]] for cell in cells]  # -> tubulin, actin, dapi
    ranges = channel_ranges(rgb, (0.5, 99.8))
    expected = np.stack([compose_cell(cell, ranges, 32) for cell in rgb])
    for pattern in ("*.npy", "*.tif"):
        composed, used = compose_files(list_images(tmp_path, pattern), 32, (0.5, 99.8))
        np.testing.assert_array_equal(composed, expected)
        np.testing.assert_allclose(used, ranges)
    reordered, _ = compose_files(
        list_images(tmp_path, "*.npy"), 32, (0.5, 99.8), channel_order=("tubulin", "actin", "dapi")
    )
    assert not np.array_equal(reordered, expected)


def test_uint8_png_keeps_its_scale_and_is_only_resized(tmp_path):
    image = np.random.default_rng(1).integers(1, 256, (16, 16, 3)).astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "a.png")
    composed, ranges = compose_files(list_images(tmp_path), 16, (0.5, 99.8))
    np.testing.assert_array_equal(composed[0], image)
    np.testing.assert_array_equal(ranges, [[0, 255]] * 3)
    assert read_image(tmp_path / "a.png").dtype == np.uint8


def test_input_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        list_images(tmp_path / "absent")
    with pytest.raises(ValueError, match="no .* images matching"):
        list_images(tmp_path)
    np.save(tmp_path / "flat.npy", np.zeros((8, 8), np.uint16))
    with pytest.raises(ValueError, match="flat.npy has shape"):
        read_image(tmp_path / "flat.npy")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="unreadable PNG .*broken.png"):
        read_image(tmp_path / "broken.png")
    np.save(tmp_path / "ok.npy", np.zeros((8, 8, 3), np.uint16))
    with pytest.raises(ValueError, match="must name each of"):
        read_image(tmp_path / "ok.npy", ("dapi", "dapi", "actin"))


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
