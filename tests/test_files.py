"""Atomic writes, PNG and table reading: one way each, errors naming the file."""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cellvae.files import atomic_write, read_png, read_pngs, read_table, write_csv, write_json


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "table.csv"
    path.write_text("old\n")

    def half_then_fail(temporary):
        temporary.write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(path, half_then_fail)
    assert path.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["table.csv"]
    write_csv(pd.DataFrame({"a": [1]}), path)
    write_json({"b": 2}, tmp_path / "b.json")
    assert path.read_text() == "a\n1\n" and json.loads((tmp_path / "b.json").read_text()) == {"b": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.json", "table.csv"]


def test_read_pngs_reads_rgb_uint8_and_palette_and_grey_as_rgb(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    paths = [tmp_path / f"c{i}.png" for i in range(3)]
    for path, image in zip(paths, rgb):
        Image.fromarray(image).save(path)
    np.testing.assert_array_equal(read_pngs(paths), rgb)
    Image.fromarray(rgb[0, ..., 0]).save(tmp_path / "grey.png")
    assert read_png(tmp_path / "grey.png").shape == (16, 16, 3)


def test_read_pngs_names_unreadable_and_mismatched_files(tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(good)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(ValueError, match="unreadable PNG .*broken.png"):
        read_pngs([good, broken])
    with pytest.raises(ValueError, match="unreadable PNG .*missing.png"):
        read_pngs([tmp_path / "missing.png"])
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(small)
    with pytest.raises(ValueError, match="small.png"):
        read_pngs([good, small])


def test_read_table_names_the_file_and_the_missing_columns(tmp_path):
    with pytest.raises(FileNotFoundError, match="cell table not found: .*absent.csv"):
        read_table(tmp_path / "absent.csv", ["path"], "cell table")
    (tmp_path / "cells.csv").write_text("path,plate\na.png,P\n")
    with pytest.raises(ValueError, match=r"cells.csv lacks columns \['split'\]"):
        read_table(tmp_path / "cells.csv", ["path", "split"], "cell table")
    assert read_table(tmp_path / "cells.csv", ["path"], "cell table")["plate"].tolist() == ["P"]
