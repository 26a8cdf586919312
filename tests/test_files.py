"""Atomic writes, PNG and table reading: one way each, errors naming the file."""

import json
import os

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cellvae.files import (
    atomic_write,
    read_png,
    read_pngs,
    read_table,
    refuse_overwriting_inputs,
    write_csv,
    write_json,
)


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


def test_read_table_names_an_empty_or_unreadable_csv_and_reads_only_regular_files(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match=r"cell table .*empty.csv is empty: expected a header row"):
        read_table(tmp_path / "empty.csv", ["path"], "cell table")
    (tmp_path / "ragged.csv").write_text("a,b\n1,2\n1,2,3,4\n")
    with pytest.raises(ValueError, match=r"cell table .*ragged.csv is not a readable CSV table \(Error tokenizing"):
        read_table(tmp_path / "ragged.csv", ["a"], "cell table")
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(ValueError, match="cell table .*folder.csv is not a regular file"):
        read_table(tmp_path / "folder.csv", ["a"], "cell table")


def test_an_output_that_is_one_of_the_inputs_by_any_name_is_refused(tmp_path, monkeypatch):
    model = tmp_path / "run" / "model.keras"
    model.parent.mkdir()
    model.write_text("weights")
    os.link(model, tmp_path / "hardlink.keras")
    os.symlink(model.parent, tmp_path / "alias")
    monkeypatch.chdir(tmp_path)
    for out in (
        model,
        "run/model.keras",
        tmp_path / "alias" / "model.keras",
        "hardlink.keras",
        "run/../run/model.keras",
    ):
        with pytest.raises(ValueError, match=f"--out {out} is an input of this command .*; give another path"):
            refuse_overwriting_inputs(out, [tmp_path / "images", model])
    refuse_overwriting_inputs(tmp_path / "run" / "embedding.csv", [tmp_path / "images", model])
    with pytest.raises(ValueError, match="--record manifest.csv is an input"):
        refuse_overwriting_inputs("manifest.csv", [tmp_path / "manifest.csv"], "--record")
