"""`cellvae fetch`'s transfer options and FetchSettings: values outside config/config.schema.yaml's bounds are
refused before anything is fetched, moved or deleted (a local source: no server needed); so are an --out or
--record at, around or inside an input, and an existing folder that no earlier fetch of the plate made."""

import zipfile

import pandas as pd
import pytest

from cellvae.cli import main
from cellvae.data.fetch import FetchError, FetchSettings, archive_name

PLATE = "Week4_27481"
MEMBERS = {f"{PLATE}/B02_s1_w{channel}.tif": bytes([channel]) * 3000 for channel in (1, 2, 4)}


def _inputs(tmp_path) -> list:
    """argv of `cellvae fetch` without --out and --record: a selection and a local source folder (the plate's
    archive and a file of the user's beside it)."""
    (tmp_path / "src").mkdir()
    with zipfile.ZipFile(tmp_path / "src" / archive_name(PLATE), "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in MEMBERS.items():
            archive.writestr(name, data)
    (tmp_path / "src" / "notes.txt").write_text("the user's own notes\n")
    names = [name.split("/")[1] for name in MEMBERS]
    row = {"plate": PLATE, "well": "B02", "site": 1, "file_dapi": names[0], "file_tubulin": names[1]}
    pd.DataFrame([row | {"file_actin": names[2]}]).to_csv(tmp_path / "selected.csv", index=False)
    return ["fetch", "--plate", PLATE, "--selected", tmp_path / "selected.csv", "--source", tmp_path / "src"]


@pytest.fixture
def fetched(tmp_path, capsys):
    """(argv of a completed `cellvae fetch` from a local source, what its run left in tmp_path)."""
    argv = [*_inputs(tmp_path), "--out", tmp_path / "images", "--record", tmp_path / "fetch.json"]
    assert main(argv) == 0
    capsys.readouterr()
    return argv, _files(tmp_path)


def _files(root) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder (None) under root, hidden ones included."""
    return {str(path.relative_to(root)): path.read_bytes() if path.is_file() else None for path in root.rglob("*")}


def _refused(argv, capsys) -> str:
    """The one error line of a `cellvae fetch` refused as a usage error (exit 2)."""
    with pytest.raises(SystemExit) as exit:
        main(argv)
    assert exit.value.code == 2
    return capsys.readouterr().err.splitlines()[-1]


@pytest.mark.parametrize(
    "out, how",
    [
        ("src", "is --source"),  # was: the source folder renamed to .src.partial, then a failure
        ("src/images", "lies inside --source"),
        ("", "contains --selected"),
        ("selected.csv", "is --selected"),
    ],
)
def test_out_at_or_around_an_input_is_refused_and_nothing_moves(tmp_path, capsys, out, how):
    argv = _inputs(tmp_path)
    before = _files(tmp_path)
    line = _refused([*argv, "--out", tmp_path / out, "--record", tmp_path / "fetch.json"], capsys)
    assert line.startswith(f"cellvae fetch: error: --out {tmp_path / out} {how} ")
    assert line.endswith("which fetch must leave untouched: give --out a path of its own, apart from it")
    assert _files(tmp_path) == before  # byte for byte, no folder moved, nothing written


@pytest.mark.parametrize(
    "record, wanted",
    [
        ("selected.csv", "is an input of this command"),  # was: the selection replaced by the JSON record
        (f"src/{archive_name(PLATE)}", "lies inside --source"),  # was: the archive deleted
        ("src/fetch.json", "lies inside --source"),
        ("images/fetch.json", "lies inside --out"),
    ],
)
def test_record_over_an_input_or_inside_an_output_is_refused(tmp_path, capsys, record, wanted):
    argv = _inputs(tmp_path)
    before = _files(tmp_path)
    line = _refused([*argv, "--out", tmp_path / "images", "--record", tmp_path / record], capsys)
    assert line.startswith(f"cellvae fetch: error: --record {tmp_path / record} {wanted}")
    assert _files(tmp_path) == before


def _user_folder(folder):
    folder.mkdir()
    (folder / "notes.txt").write_text("mine\n")
    (folder / list(MEMBERS)[0].split("/")[1]).write_bytes(b"the user's own image, named as a member")


def _other_plate_fetch(folder):
    folder.mkdir()
    (folder / ".cellvae-fetch").write_text("Week1_22123")
    (folder / "Week1_150607_B02.tif").write_bytes(b"another plate")


@pytest.mark.parametrize(
    "out, make, wanted",
    [
        ("mine", _user_folder, "--out {out} holds files that fetch did not write (2 entries, e.g. B02_s1_w1.tif)"),
        ("mine", lambda path: path.write_text("a file"), "--out {out} is not a folder"),
        (
            "mine",
            _other_plate_fetch,
            "--out {out} holds plate Week1_22123's fetch (2 entries, e.g. Week1_150607_B02",
        ),
        (
            "images",
            lambda path: _user_folder(path.with_name(".images.partial")),
            "the staging folder of --out {out} {staging} holds files that fetch did not write",
        ),
    ],
)
def test_an_existing_folder_fetch_did_not_make_is_refused_untouched(tmp_path, capsys, out, make, wanted):
    argv = _inputs(tmp_path)
    make(tmp_path / out)
    before = _files(tmp_path)
    line = _refused([*argv, "--out", tmp_path / out, "--record", tmp_path / "fetch.json"], capsys)
    staging = tmp_path / f".{out}.partial"
    assert line.startswith("cellvae fetch: error: " + wanted.format(out=tmp_path / out, staging=staging))
    assert line.endswith("give a new or empty folder, or move that one away") or "not a folder" in line
    assert _files(tmp_path) == before


def test_an_empty_folder_is_used_and_a_killed_fetch_resumed(tmp_path, capsys):
    argv = [*_inputs(tmp_path), "--out", tmp_path / "images", "--record", tmp_path / "fetch.json"]
    (tmp_path / "images").mkdir()
    assert main(argv) == 0
    done = _files(tmp_path)
    assert done["images/.cellvae-fetch"] == PLATE.encode()
    assert {name: done[f"images/{name.split('/')[1]}"] for name in MEMBERS} == MEMBERS
    # as if killed mid-rerun: staged, one member lost, an extraction's temporary left, the marker half written
    (tmp_path / "fetch.json").unlink()
    (tmp_path / "images").rename(tmp_path / ".images.partial")
    (tmp_path / ".images.partial" / list(MEMBERS)[1].split("/")[1]).unlink()
    (tmp_path / ".images.partial" / ".B02_s1_w4.tmp99.tif").write_bytes(b"half")
    (tmp_path / ".images.partial" / ".cellvae-fetch").write_text("")
    capsys.readouterr()
    assert main(argv) == 0
    assert "'members_fetched': 1" in capsys.readouterr().out
    assert _files(tmp_path).keys() == done.keys()
    assert {key: value for key, value in _files(tmp_path).items() if key != "fetch.json"} == {
        key: value for key, value in done.items() if key != "fetch.json"
    }


@pytest.mark.parametrize(
    "option, value, wanted",
    [
        ("--retries", "-1", "an integer >= 0 (config fetch.retries)"),
        ("--connections", "0", "an integer from 1 to 64 (config fetch.connections)"),
        ("--connections", "four", "an integer from 1 to 64 (config fetch.connections)"),
        ("--timeout-s", "0", "a finite number > 0 (config fetch.timeout_s)"),
        ("--timeout-s", "nan", "a finite number > 0 (config fetch.timeout_s)"),
        ("--backoff-s", "-1", "a finite number >= 0 (config fetch.backoff_s)"),
        ("--coalesce-gap", "-1", "an integer >= 0 (config fetch.coalesce_gap)"),
        ("--max-request-bytes", "1000", "an integer >= 65536 (config fetch.max_request_bytes)"),
    ],
)
def test_out_of_bounds_transfer_options_are_usage_errors_that_touch_nothing(
    fetched, tmp_path, capsys, option, value, wanted
):
    argv, before = fetched
    with pytest.raises(SystemExit) as exit:
        main([*argv, option, value])
    assert exit.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"cellvae fetch: error: argument {option}: expected {wanted}, got {value!r}"
    )
    assert _files(tmp_path) == before  # the complete fetch and its record stay as they were


def test_options_within_bounds_are_used(fetched, tmp_path, capsys):
    argv, before = fetched
    bounds = ["--retries", "0", "--connections", "1", "--backoff-s", "0", "--timeout-s", "0.5"]
    assert main([*argv, *bounds, "--coalesce-gap", "0", "--max-request-bytes", "65536"]) == 0
    assert _files(tmp_path).keys() == before.keys() and "'members': 3" in capsys.readouterr().out


@pytest.mark.parametrize(
    "field, value, wanted",
    [
        ("retries", -1, "an integer >= 0"),
        ("retries", 2.5, "an integer >= 0"),
        ("connections", 0, "an integer from 1 to 64"),
        ("connections", "4", "an integer from 1 to 64"),
        ("timeout_s", 0.0, "a finite number > 0"),
        ("backoff_s", float("inf"), "a finite number >= 0"),
    ],
)
def test_fetch_settings_outside_the_schema_are_refused(field, value, wanted):
    with pytest.raises(FetchError) as error:
        FetchSettings(**{field: value})
    assert str(error.value) == f"fetch settings: expected {wanted} (config fetch.{field}), got {value!r}"
