"""Atomic writes, PNG and table reading: one way each, errors naming the file."""

import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cellvae.core.files import (
    FIGURE_DPI,
    atomic_write,
    read_png,
    read_pngs,
    read_table,
    refuse_overwriting_inputs,
    save_figure,
    sha256,
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


def test_sha256_is_the_digest_of_the_whole_content_read_in_chunks(tmp_path):
    data = np.random.default_rng(0).integers(0, 256, 1000, dtype=np.uint8).tobytes()
    (tmp_path / "file").write_bytes(data)
    assert sha256(tmp_path / "file", chunk_bytes=7) == sha256(tmp_path / "file") == hashlib.sha256(data).hexdigest()


def test_save_figure_writes_a_png_at_the_package_dpi_and_no_temporary(tmp_path):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(2, 1))
    figure.add_subplot().plot([0, 1])
    save_figure(figure, tmp_path / "plot.png")
    with Image.open(tmp_path / "plot.png") as image:
        assert image.format == "PNG" and image.size == (2 * FIGURE_DPI, FIGURE_DPI)
    assert [path.name for path in tmp_path.iterdir()] == ["plot.png"]


def test_tables_figures_and_file_digests_are_written_only_by_cellvae_files():
    """One write_csv, one save_figure, one sha256: no other module of the package, its scripts or benchmarks writes
    a CSV, saves a figure or hashes a file's content its own way."""
    root = Path(__file__).resolve().parents[2]
    writes = re.compile(r"\.to_csv\(|\.savefig\(|def (write_csv|_?save_figure|file_digest)\b")
    hashes_a_file = re.compile(r"hashlib\.sha256\(\)[\s\S]*(open\(.*\"rb\"\)|read_bytes\(\))")
    modules = sorted(path for folder in ("cellvae", "scripts", "benchmarks") for path in (root / folder).rglob("*.py"))
    offenders = []
    for path in modules:
        if path == root / "cellvae" / "core" / "files.py":
            continue
        name, text = path.relative_to(root), path.read_text()
        offenders += [f"{name}:{n}" for n, line in enumerate(text.splitlines(), 1) if writes.search(line)]
        offenders += [f"{name}: hashes a file"] if hashes_a_file.search(text) else []
    assert offenders == []
