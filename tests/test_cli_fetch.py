"""`cellvae fetch`'s transfer options and FetchSettings: values outside config/config.schema.yaml's bounds are
refused before anything is fetched, moved or deleted (a local source: no server needed)."""

import zipfile

import pandas as pd
import pytest

from cellvae.cli import main
from cellvae.fetch import FetchError, FetchSettings, archive_name

PLATE = "Week4_27481"
MEMBERS = {f"{PLATE}/B02_s1_w{channel}.tif": bytes([channel]) * 3000 for channel in (1, 2, 4)}


@pytest.fixture
def fetched(tmp_path, capsys):
    """(argv of a completed `cellvae fetch` from a local source, what its run left in tmp_path)."""
    (tmp_path / "src").mkdir()
    with zipfile.ZipFile(tmp_path / "src" / archive_name(PLATE), "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in MEMBERS.items():
            archive.writestr(name, data)
    names = [name.split("/")[1] for name in MEMBERS]
    row = {"plate": PLATE, "well": "B02", "site": 1, "file_dapi": names[0], "file_tubulin": names[1]}
    pd.DataFrame([row | {"file_actin": names[2]}]).to_csv(tmp_path / "selected.csv", index=False)
    argv = ["fetch", "--plate", PLATE, "--selected", tmp_path / "selected.csv", "--source", tmp_path / "src"]
    argv += ["--out", tmp_path / "images", "--record", tmp_path / "fetch.json"]
    assert main(argv) == 0
    capsys.readouterr()
    return argv, _files(tmp_path)


def _files(root) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


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
