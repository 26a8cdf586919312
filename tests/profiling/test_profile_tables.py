"""moa-eval's reading of tables (issue 31): metadata never a feature, --features, repeated cells, one well one
name, undefined NSC/NSCB with one MoA, and one-line errors naming the file and what to fix for tables it cannot
use; small hand-made tables (the real manifest where ../shared has it)."""

import gzip
import json
import os
import threading

import numpy as np
import pandas as pd
import pytest

from cellvae.cli import main as cli
from cellvae.profiling import moa, profile_tables

FAST = ["--normalize", "none", "--bootstrap", "20"]


def cells_frame():
    """Two MoAs × two compounds (A1, B1 in Week1, A2, B2 in Week2), one well of three cells each, and a DMSO well
    on each plate; features f0, f1 (not constant)."""
    rows = []
    for index, (moa_name, direction) in enumerate((("A", (1.0, 0.0)), ("B", (0.0, 1.0)))):
        for number in (1, 2):
            for cell in range(3):
                f0, f1 = direction[0] + 0.01 * cell, direction[1] + 0.02 * cell
                well = f"B0{2 * index + number}"
                rows.append((f"Week{number}_1", well, f"{moa_name}{number}", 1.0, moa_name, f0, f1))
    rows += [("Week1_1", "B11", "DMSO", 0.0, "", 0.1, 0.1), ("Week2_1", "B11", "DMSO", 0.0, "", 0.0, 0.0)]
    columns = ["plate", "well", "compound", "concentration_uM", "moa", "f0", "f1"]
    return pd.DataFrame(rows, columns=columns)


def moa_eval(path, capsys, *options) -> tuple[int, dict | None, str]:
    """(exit code, the JSON result or None, stderr) of moa-eval --cells path."""
    code = cli(["moa-eval", "--cells", str(path), *FAST, *options])
    out, err = capsys.readouterr()
    return code, json.loads(out) if code == 0 else None, err


def only_error(err: str) -> str:
    """The one line of a failed command (no traceback, no usage)."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


# finding 4: metadata columns are not features; --features; how many features are used


def test_an_index_column_and_cellprofiler_metadata_are_not_features(tmp_path, capsys):
    table = cells_frame()
    table["Metadata_Site"] = np.arange(len(table)) % 4 + 1
    table["Metadata_Replicate"] = np.arange(len(table)) % 3 + 1
    table["ImageNumber"] = np.arange(len(table)) // 2 + 1
    table["ObjectNumber"] = np.arange(len(table)) % 2 + 1
    table["TableNumber"] = 1
    path = tmp_path / "cells.csv"
    table.to_csv(path)  # with pandas' index: the column Unnamed: 0
    code, result, err = moa_eval(path, capsys)
    assert code == 0, err
    assert result["n_features"] == 2 and result["dropped_features"] == []
    assert f"{path}: 2 feature column(s): f0, f1; not features: Unnamed: 0, Metadata_Site" in err


def test_features_option_names_the_features(tmp_path, capsys):
    table = cells_frame().assign(g0=np.linspace(0, 1, 14))
    path = tmp_path / "cells.csv"
    table.to_csv(path, index=False)
    code, result, err = moa_eval(path, capsys, "--features", "f*")
    assert code == 0 and result["n_features"] == 2 and "2 feature column(s): f0, f1; not features: g0" in err
    code, result, err = moa_eval(path, capsys, "--features", "f1", "g0")
    assert code == 0 and result["n_features"] == 2 and "2 feature column(s): f1, g0" in err
    code, _, err = moa_eval(path, capsys, "--features", "h*")
    assert code == 1 and f"{path}: no feature column matches --features h* (columns: plate," in only_error(err)


@pytest.mark.parametrize("column", ["ObjectNumber", "Metadata_Site", "plate"])
def test_features_option_refuses_a_metadata_column(tmp_path, capsys, column):
    path = tmp_path / "cells.csv"
    cells_frame().assign(ObjectNumber=1, Metadata_Site=1).to_csv(path, index=False)
    code, _, err = moa_eval(path, capsys, "--features", "f0", column)
    assert code == 1 and f"{path}: --features {column} names a metadata column" in only_error(err)


def test_latent_columns_win_over_other_numbers(tmp_path, capsys):
    table = cells_frame().rename(columns={"f0": "z0", "f1": "z1"}).assign(size_bytes=100, other=np.arange(14.0))
    path = tmp_path / "cells.csv"
    table.to_csv(path, index=False)
    code, result, err = moa_eval(path, capsys)
    assert code == 0 and result["n_features"] == 2
    assert "2 feature column(s): z0, z1; not features: size_bytes, other" in err


@pytest.mark.parametrize("bad", ["abc", "1.5.2"])
def test_a_feature_with_a_non_number_is_named(tmp_path, capsys, bad):
    table = cells_frame().astype({"f1": object})
    table.loc[4, "f1"] = bad
    path = tmp_path / "cells.csv"
    table.to_csv(path, index=False)
    code, _, err = moa_eval(path, capsys)
    assert code == 1
    assert f"{path}: column f1 holds '{bad}' (line 6), not a number" in only_error(err)


def test_a_text_column_is_metadata_unless_asked_for(tmp_path, capsys):
    path = tmp_path / "cells.csv"
    cells_frame().assign(shape="68x68x3").to_csv(path, index=False)
    assert moa_eval(path, capsys)[0] == 0
    code, _, err = moa_eval(path, capsys, "--features", "f0", "shape")
    assert code == 1 and "column shape holds '68x68x3' (line 2), not a number" in only_error(err)


# finding 5: a cell in two rows


@pytest.mark.parametrize(
    "identity, named",
    [
        ({"path": [f"crops/c{i}.npy" for i in range(13)] + ["crops/c4.npy"]}, "path crops/c4.npy"),
        ({"file": [f"c{i}.png" for i in range(13)] + ["c0.png"]}, "file c0.png"),
        (
            {"site": [1] * 14, "ObjectNumber": [1, 2, 3] * 4 + [1, 1]},
            None,  # every cell named once: plate, well, site and object differ
        ),
    ],
)
def test_a_repeated_cell_is_refused(tmp_path, capsys, identity, named):
    table = cells_frame().assign(**identity)
    path = tmp_path / "cells.csv"
    table.to_csv(path, index=False)
    code, _, err = moa_eval(path, capsys)
    if named is None:
        assert code == 0, err
    else:
        assert code == 1 and f"{path}: 2 rows repeat a cell, e.g. {named}: give each cell one row" in only_error(err)


def test_a_repeated_row_of_plate_well_site_and_object_is_refused(tmp_path, capsys):
    table = cells_frame().assign(ImageNumber=1, ObjectNumber=[1, 2, 3] * 4 + [1, 1])
    table = pd.concat([table, table.iloc[[7]]])  # B1's second cell again: it would count twice in its well
    path = tmp_path / "cells.csv"
    table.to_csv(path, index=False)
    code, _, err = moa_eval(path, capsys)
    assert code == 1
    assert "2 rows repeat a cell, e.g. plate Week1_1, well B03, ImageNumber 1, ObjectNumber 2" in only_error(err)


# finding 6: one MoA leaves NSC and NSCB undefined


def evaluate(rows):
    """moa.evaluate_rows on (plate, well, compound, concentration, moa, f0, f1) rows, as wells."""
    columns = ["plate", "well", "compound", "concentration", "moa", "f0", "f1"]
    table = pd.DataFrame(rows, columns=columns)
    table["batch"] = table["plate"].str.split("_").str[0]
    settings = {"normalize": "none", "aggregate": "mean", "min_controls": 2, "reference_cap": 1000}
    return moa.evaluate_rows(table, ["f0", "f1"], {**settings, "bootstrap": 50, "seed": 0}, cells=False)


def test_one_moa_leaves_nsc_and_nscb_undefined():
    rows = [
        ("Week1_1", "B02", "A1", 1.0, "A", 1.0, 0.0),
        ("Week2_1", "B02", "A2", 1.0, "A", 0.0, 1.0),
        ("Week1_1", "B11", "DMSO", 0.0, "DMSO", 0.5, 0.5),
    ]
    result = evaluate(rows)
    for key in ("nsc", "nscb", "map"):
        assert result[key] == {"value": None, "ci": [None, None]} and result[f"{key}_evaluated"] == 0
    assert result["nsc_undefined"] == (
        "one MoA (A) among the treatments: every neighbour has it; needs treatments of two or more MoAs"
    )
    assert result["per_moa"]["A"]["nsc"] is None and result["per_moa"]["A"]["nscb"] is None


def test_nscb_is_undefined_where_one_moa_is_left_in():
    # MoA B lives in Week3 alone: left out of NSCB, which would compare A with A only
    rows = [
        ("Week1_1", "B02", "A1", 1.0, "A", 1.0, 0.0),
        ("Week2_1", "B02", "A2", 1.0, "A", 0.9, 0.1),
        ("Week3_1", "B02", "B1", 1.0, "B", 0.0, 1.0),
        ("Week3_1", "B03", "B2", 1.0, "B", 0.1, 0.9),
    ]
    result = evaluate(rows)
    assert result["nsc"]["value"] == 1.0 and result["nscb"]["value"] is None
    assert result["nscb_left_out_moas"] == ["B"]
    assert result["nscb_undefined"].startswith("one MoA (A) among the treatments left in NSCB")


# finding 7: a missing concentration; rows without an MoA


def test_a_missing_concentration_is_refused(tmp_path, capsys):
    table = cells_frame()
    table.loc[[3, 4], "concentration_uM"] = np.nan
    path = tmp_path / "cells.csv"
    table.to_csv(path, index=False)
    code, _, err = moa_eval(path, capsys)
    assert code == 1
    assert f"{path}: 2 row(s) have no concentration_uM (the first on line 5): give every row" in only_error(err)


def test_a_concentration_with_a_unit_is_named(tmp_path, capsys):
    table = cells_frame().astype({"concentration_uM": object})
    table.loc[2, "concentration_uM"] = "0.3 uM"
    path = tmp_path / "cells.csv"
    table.to_csv(path, index=False)
    code, _, err = moa_eval(path, capsys)
    assert code == 1 and f"{path}: column concentration_uM holds '0.3 uM' (line 4), not a number" in only_error(err)


def test_cells_without_an_moa_are_counted(tmp_path, capsys):
    table = cells_frame()
    table.loc[[0, 1, 2], "moa"] = np.nan  # A1's cells
    path = tmp_path / "cells.csv"
    table.to_csv(path, index=False)
    code, result, err = moa_eval(path, capsys)
    assert code == 0 and result["n_cells"] == 11
    assert (
        f"{path}: left out 3 cell(s) of 1 treatment(s) without an MoA (e.g. A1 @ 1): only treatments with an MoA "
        "are scored" in err.splitlines()
    )


# finding 9: a manifest column named as a latent column


def test_embed_refuses_a_manifest_column_named_as_a_latent_one(tmp_path, capsys):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("file,plate,z0\na.png,Week1_1,3\n")
    assert cli(["embed", "--model", str(tmp_path / "run"), "--images", str(manifest), "--out", tmp_path / "z.csv"]) == 1
    assert only_error(capsys.readouterr().err) == (
        f"cellvae embed: manifest {manifest} has a column z0, the name embed gives a latent column (z0, z1, …): "
        "rename that column"
    )


def test_moa_eval_refuses_a_repeated_column_name(tmp_path, capsys):
    path = tmp_path / "cells.csv"
    table = cells_frame().rename(columns={"f0": "z0", "f1": "z1"})
    table.insert(5, "z0", 7.0, allow_duplicates=True)  # as embed wrote beside a manifest column z0
    table.to_csv(path, index=False)
    assert path.read_text().startswith("plate,well,compound,concentration_uM,moa,z0,z0,z1")
    code, _, err = moa_eval(path, capsys)
    assert code == 1 and f"{path}: the header names column z0 2 times: give each column its own name" in only_error(err)


# finding 10: one well, one name


def test_well_names_get_two_digits():
    wells = pd.Series(["B2", "b02", "B002", "B10", "AA7", " C3", "X", np.nan], dtype=object)
    assert profile_tables.well_names(wells).tolist()[:7] == ["B02", "B02", "B02", "B10", "AA07", "C03", "X"]
    assert pd.isna(profile_tables.well_names(wells).iloc[7])


def test_b2_and_b02_are_one_well(tmp_path, capsys):
    table = cells_frame()
    table.loc[0, "well"] = "B1"  # A1's well, B01 for its other cells
    path = tmp_path / "cells.csv"
    table.to_csv(path, index=False)
    code, result, err = moa_eval(path, capsys)
    assert code == 0 and result["n_wells"] == 6, err


# one-line errors for tables moa-eval cannot use


def test_both_names_of_the_concentration_are_refused(tmp_path, capsys):
    path = tmp_path / "cells.csv"
    cells_frame().assign(concentration=1.0).to_csv(path, index=False)
    code, _, err = moa_eval(path, capsys)
    assert code == 1
    assert only_error(err) == (
        f"cellvae moa-eval: {path}: has both concentration_uM and concentration, two names of one column: keep one"
    )


def test_a_truncated_gzip_is_named(tmp_path, capsys):
    path = tmp_path / "cells.csv.gz"
    body = gzip.compress(pd.concat([cells_frame()] * 200).to_csv(index=False).encode())
    path.write_bytes(body[: len(body) // 2])
    code, _, err = moa_eval(path, capsys)
    assert code == 1 and f"{path}: the compressed file is cut short or damaged" in only_error(err)


def test_a_fifo_is_refused_without_blocking(tmp_path, capsys):
    fifo = tmp_path / "cells.csv"
    os.mkfifo(fifo)
    outcome = []
    command = threading.Thread(target=lambda: outcome.append(cli(["moa-eval", "--cells", str(fifo)])), daemon=True)
    command.start()
    command.join(timeout=30)
    if command.is_alive():  # blocked on opening it: a writer lets it go on
        with open(fifo, "w"):
            pass
        command.join(timeout=30)
        pytest.fail("moa-eval --cells blocked on a FIFO")
    assert outcome == [1] and f"per-cell table {fifo} is not a regular file" in only_error(capsys.readouterr().err)


@pytest.mark.parametrize(
    "separator, problem",
    [
        (";", "the header reads 'plate;well;compound;concentration_uM;moa;f0;f1': check the separator"),
        ("\t", "the header reads 'plate\\twell\\tcompound\\tconcentration_uM\\tmoa\\tf0\\tf1': check the separator"),
        (", ", "column name ' well' has spaces around it: check the header"),
    ],
)
def test_another_separator_or_spaces_in_the_header_are_named(tmp_path, capsys, separator, problem):
    path = tmp_path / "cells.csv"
    table = cells_frame()
    lines = [separator.join(table.columns)] + [separator.join(map(str, row)) for row in table.itertuples(index=False)]
    path.write_text("\n".join(lines) + "\n")
    code, _, err = moa_eval(path, capsys)
    assert code == 1 and f"{path}: {problem}" in only_error(err)


def test_plates_without_underscore_are_said_to_be_their_own_batch(tmp_path, capsys):
    table = cells_frame()
    table["plate"] = table["plate"].str.replace("_", "-")
    path = tmp_path / "cells.csv"
    table.to_csv(path, index=False)
    code, result, err = moa_eval(path, capsys)
    assert code == 0 and result["nscb"]["value"] == 1.0
    assert f"{path}: 2 plate name(s) without '_' (e.g. Week1-1) are each a batch of their own" in err
    table.assign(batch="all").to_csv(path, index=False)
    assert "without '_'" not in moa_eval(path, capsys)[2]


def test_the_real_moa_manifest_reads_as_cells(shared_bbbc021, tmp_path, capsys):
    """The shared manifest (as embed writes it, with made-up z0, z1): its metadata columns are not features."""
    table = pd.read_csv(shared_bbbc021 / "images/single_cells_moa/manifest.csv")
    rng = np.random.default_rng(0)
    table[["z0", "z1"]] = rng.normal(size=(len(table), 2))
    path = tmp_path / "cells.csv"
    table.to_csv(path, index=False)
    code, result, err = moa_eval(path, capsys)
    assert code == 0 and result["n_cells"] == 1945 and result["n_features"] == 2 and result["n_treatments"] == 103
    assert "2 feature column(s): z0, z1; not features: size_bytes, site, replicate" in err
