"""Image inputs: folders and manifests of images, read and composed as the PNG stage does; row filters."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import tifffile  # noqa: E402
from PIL import Image  # noqa: E402

from cellvae.imaging.images import compose_arrays, filter_rows, list_images, read_image, read_images  # noqa: E402
from cellvae.imaging.png import channel_ranges, compose_cell  # noqa: E402


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


def test_row_filters_raise_naming_the_filter_and_the_source_and_print_nothing(capsys):
    """The library raises; what to call the filter (--where) is the command's to say."""
    table = pd.DataFrame({"plate": ["A", "B"], "site": [1, 2]})
    assert filter_rows(table, ["plate=B", "site=2"], "m.csv")["plate"].tolist() == ["B"]
    with pytest.raises(ValueError, match=r"^row filter 'well=1': expected KEY=VALUE .* columns of m.csv: plate, site$"):
        filter_rows(table, ["well=1"], "m.csv")
    with pytest.raises(ValueError, match="^row filter 'site=x': column site of m.csv holds numbers$"):
        filter_rows(table, ["site=x"], "m.csv")
    assert capsys.readouterr() == ("", "")
