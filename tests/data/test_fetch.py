import functools
import http.server
import json
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path

import pandas as pd
import pytest

from cellvae.data.fetch import (
    FETCH_MARKER,
    FetchError,
    FetchSettings,
    archive_name,
    coalesce,
    fetch_metadata,
    fetch_plate,
    is_verified,
    safe_member_name,
)
from cellvae.data.metadata import read_image_table
from cellvae.data.sources import HttpSource, S3Source, open_source
from cellvae.data.synthetic import generate_mini_bbbc021, source_files
from cellvae.testing.nginx import Nginx
from cellvae.testing.workflow import REPO

PLATE = "Week4_27481"
ARCHIVE = archive_name(PLATE)
SETTINGS = {
    "seed": 7,
    "plates": [PLATE],
    "treated": {"compound": "taxol", "concentration": 0.3, "moa": "MS"},
    "wells_per_compound": 6,
    "sites_per_well": 3,
    "width": 160,
    "height": 128,
    "cells_per_field": 6,
}
FAST = FetchSettings(connections=4, coalesce_gap=4096, retries=1, backoff_s=0.01, timeout_s=10)
FILES = {
    f"{PLATE}/B02_s1_w{channel}{channel * 7}AB.tif": random.Random(channel).randbytes(5000) + b"tail"
    for channel in (1, 2, 4)
}
OTHER = {f"{PLATE}/C02_s1_w{channel}X.tif": b"not needed" * 1000 for channel in (1, 2, 4)}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(nginx, synthetic BBBC021 folder it serves at /bbbc021/)."""
    root = tmp_path_factory.mktemp("www")
    generate_mini_bbbc021(SETTINGS, **source_files(root / "bbbc021", SETTINGS["plates"]))
    with Nginx(root, tmp_path_factory.mktemp("nginx")) as server:
        yield server, root / "bbbc021"


def _select(source_dir: Path, out_csv: Path, wells: list[str]) -> Path:
    """A selection table of the given wells (every site) of the synthetic plate."""
    table = read_image_table(source_dir / "BBBC021_v1_image.csv")
    table[table["well"].isin(wells)].to_csv(out_csv, index=False)
    return out_csv


def _extents(archive_path: Path) -> dict[str, tuple[int, int, zipfile.ZipInfo]]:
    """Each member's [start, end) in the archive (local header to the next member) and its info."""
    with zipfile.ZipFile(archive_path) as archive:
        infos = sorted(archive.infolist(), key=lambda info: info.header_offset)
        ends = [info.header_offset for info in infos[1:]] + [archive.start_dir]
    return {info.filename: (info.header_offset, end, info) for info, end in zip(infos, ends)}


def _member_bytes(archive_path: Path, names: list[str]) -> dict[str, bytes]:
    with zipfile.ZipFile(archive_path) as archive:
        return {name.split("/")[1]: archive.read(name) for name in names}


def _images(folder: Path) -> dict[str, bytes]:
    """The images a fetch left in its output folder (each file but its marker, which names the plate)."""
    assert (folder / FETCH_MARKER).read_text() == PLATE
    return {path.name: path.read_bytes() for path in folder.iterdir() if path.name != FETCH_MARKER}


def _wanted(selected: Path) -> list[str]:
    table = pd.read_csv(selected)
    return [f"{PLATE}/{name}" for column in ("file_dapi", "file_tubulin", "file_actin") for name in table[column]]


def _ranges(requests, uri: str) -> list[tuple[int, int]]:
    """[start, end) of the explicit byte ranges asked of uri (not the suffix probe of the archive's end)."""
    spans = []
    for path, _, _, wanted in requests:
        if path == uri and wanted.startswith("bytes=") and not wanted.startswith("bytes=-"):
            first, _, last = wanted[len("bytes=") :].partition("-")
            spans.append((int(first), int(last) + 1 if last else 1 << 62))
    return spans


def _overlapping(ranges, extents) -> list[tuple[int, int]]:
    return [
        (start, end)
        for start, end in ranges
        if any(start < extent_end and extent_start < end for extent_start, extent_end in extents)
    ]


@pytest.mark.range
def test_nginx_fetch_moves_little_more_than_the_selected_members(served, tmp_path):
    server, source_dir = served
    selected = _select(source_dir, tmp_path / "selected.csv", ["C02", "F11"])  # 1 in 6 wells, not adjacent
    since = server.log_size()
    record = fetch_plate(PLATE, selected, server.url + "bbbc021/", tmp_path / "images", tmp_path / "fetch.json", FAST)
    server.wait_idle()
    served_bytes = sum(sent for uri, _, sent, _ in server.requests(since) if uri.endswith(ARCHIVE))
    extents, names = _extents(source_dir / ARCHIVE), _wanted(selected)
    needed = sum(extents[name][2].compress_size for name in names)
    assert record["bytes_needed"] == needed and record["bytes_transferred"] == served_bytes
    assert record["mode"] == "ranges" and record["members"] == record["members_fetched"] == len(names) == 18
    assert served_bytes / needed <= 1.1, served_bytes / needed
    expected = _member_bytes(source_dir / ARCHIVE, names)
    assert _images(tmp_path / "images") == expected
    assert json.loads((tmp_path / "fetch.json").read_text()) == record

    since = server.log_size()
    again = fetch_plate(PLATE, selected, server.url + "bbbc021/", tmp_path / "images", tmp_path / "fetch.json", FAST)
    server.wait_idle()
    members = [extents[name][:2] for name in names]
    assert again["members_fetched"] == 0
    assert not _overlapping(_ranges(server.requests(since), f"/bbbc021/{ARCHIVE}"), members)


@pytest.mark.range
def test_sigkill_at_ten_points_then_rerun_matches_a_clean_fetch(served, tmp_path):
    server, source_dir = served
    selected = _select(source_dir, tmp_path / "selected.csv", ["B02", "D02", "E11", "G11"])
    extents, names = _extents(source_dir / ARCHIVE), _wanted(selected)

    def run(out: Path, kill_at: tuple[int, float] | None = None) -> subprocess.Popen:
        """Fetch in a subprocess; kill_at=(n, delay): SIGKILL it `delay` s after its n-th request is served."""
        command = [
            sys.executable,
            "-m",
            "cellvae",
            "fetch",
            "--plate",
            PLATE,
            "--selected",
            str(selected),
            "--source",
            server.url + "slow/bbbc021/",
            "--out",
            str(out / "images"),
            "--record",
            str(out / "fetch.json"),
            "--coalesce-gap",
            "4096",
            "--connections",
            "3",
            "--max-request-bytes",
            "65536",
        ]
        since = server.log_size()
        process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if kill_at is not None:
            deadline = time.monotonic() + 60
            while process.poll() is None and len(server.requests(since)) < kill_at[0] < 1000:
                assert time.monotonic() < deadline, "the fetch made no progress"
                time.sleep(0.01)
            time.sleep(kill_at[1])
            process.send_signal(signal.SIGKILL)
        process.errors = process.communicate(timeout=120)[1].decode()
        server.wait_idle()
        return process

    clean = run(tmp_path / "clean")
    assert clean.returncode == 0, clean.errors
    reference = _images(tmp_path / "clean" / "images")
    assert reference == _member_bytes(source_dir / ARCHIVE, names)

    out, uri = tmp_path / "killed", f"/slow/bbbc021/{ARCHIVE}"
    staging = out / ".images.partial"
    rng = random.Random(3)
    for kill_at in [(rng.randint(1, 4), rng.uniform(0, 0.3)) for _ in range(10)]:
        folder = staging if staging.exists() else out / "images"
        verified = [extents[name][:2] for name in names if is_verified(folder / name.split("/")[1], extents[name][2])]
        since = server.log_size()
        killed = run(out, kill_at)
        assert killed.returncode in (0, -signal.SIGKILL)
        if (out / "fetch.json").exists():  # marked complete only when complete
            assert all(is_verified(out / "images" / name.split("/")[1], extents[name][2]) for name in names)
        assert not _overlapping(_ranges(server.requests(since), uri), verified)  # verified: never asked again
    final = run(out)
    assert final.returncode == 0, final.errors
    assert _images(out / "images") == reference
    assert not staging.exists() and json.loads((out / "fetch.json").read_text())["members"] == len(names)


def _serve_ignoring_ranges(directory: Path):
    """Python's http.server: it ignores Range and always answers 200 with the whole file."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.range
def test_server_ignoring_ranges_gets_one_whole_archive_download(served, tmp_path, capfd):
    _, source_dir = served
    selected = _select(source_dir, tmp_path / "selected.csv", ["C02"])
    server = _serve_ignoring_ranges(source_dir)
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/"
        record = fetch_plate(PLATE, selected, base, tmp_path / "images", tmp_path / "fetch.json", FAST)
        assert record["mode"] == "whole archive"
        assert record["bytes_transferred"] == (source_dir / ARCHIVE).stat().st_size
        expected = _member_bytes(source_dir / ARCHIVE, _wanted(selected))
        assert _images(tmp_path / "images") == expected
        assert sorted(path.name for path in tmp_path.iterdir()) == ["fetch.json", "images", "selected.csv"]
        assert "ignores byte ranges" in capfd.readouterr().err

        partial = tmp_path / "partial.zip"  # a killed download cannot be continued
        partial.write_bytes((source_dir / ARCHIVE).read_bytes()[:5000])
        (tmp_path / "partial.zip.validator").write_text("whatever")
        open_source(base, FAST).download(ARCHIVE, partial)
        assert partial.read_bytes() == (source_dir / ARCHIVE).read_bytes()
        assert "restarting it from byte 0, discarding 5000 bytes" in capfd.readouterr().out
    finally:
        server.shutdown()


@pytest.mark.range
def test_partial_download_continues_where_the_server_serves_ranges(served, tmp_path):
    server, source_dir = served
    remote, whole = open_source(server.url + "bbbc021/", FAST), (source_dir / ARCHIVE).read_bytes()
    partial = tmp_path / "partial.zip"
    remote.download(ARCHIVE, partial)  # records the server's validator (ETag)
    partial.write_bytes(whole[:100_000])  # as if killed after 100 kB
    remote.bytes_received = 0
    remote.download(ARCHIVE, partial)
    assert partial.read_bytes() == whole and remote.bytes_received == len(whole) - 100_000


class FlakyProxy(http.server.BaseHTTPRequestHandler):
    """Relays GETs to nginx, but answers every third request with a 503 and drops every third+1 connection
    mid-body (a reset), so that the fetch must retry its way through."""

    upstream, count = "", 0

    def do_GET(self):
        FlakyProxy.count += 1
        if FlakyProxy.count % 3 == 0:
            self.send_error(503)
            return
        headers = {key: value for key, value in self.headers.items() if key in ("Range", "If-Range")}
        request = urllib.request.Request(self.upstream + self.path, headers=headers)
        try:
            with urllib.request.urlopen(request) as response:
                status, reply, body = response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            status, reply, body = error.code, error.headers, error.read()
        self.send_response(status)
        for key in ("Content-Range", "Content-Type", "ETag", "Last-Modified"):
            if key in reply:
                self.send_header(key, reply[key])
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body if FlakyProxy.count % 3 != 1 else body[: len(body) // 2])
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.mark.range
def test_retries_ride_out_5xx_and_dropped_connections(served, tmp_path):
    server, source_dir = served
    FlakyProxy.upstream, FlakyProxy.count = server.url.rstrip("/"), 1
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FlakyProxy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        selected = _select(source_dir, tmp_path / "selected.csv", ["C02", "F11"])
        settings = FetchSettings(
            connections=1, coalesce_gap=4096, max_request_bytes=65536, retries=2, backoff_s=0.01, timeout_s=10
        )
        record = fetch_plate(
            PLATE,
            selected,
            f"http://127.0.0.1:{proxy.server_address[1]}/bbbc021/",
            tmp_path / "images",
            tmp_path / "fetch.json",
            settings,
        )
    finally:
        proxy.shutdown()
    assert FlakyProxy.count > 6 and record["members_fetched"] == 18
    expected = _member_bytes(source_dir / ARCHIVE, _wanted(selected))
    assert _images(tmp_path / "images") == expected


def _write_zip(directory: Path, members: dict[str, bytes]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(directory / ARCHIVE, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return directory / ARCHIVE


def _small_selection(path: Path) -> Path:
    names = [name.split("/")[1] for name in FILES]
    pd.DataFrame(
        [
            {
                "plate": PLATE,
                "well": "B02",
                "site": 1,
                "file_dapi": names[0],
                "file_tubulin": names[1],
                "file_actin": names[2],
            }
        ]
    ).to_csv(path, index=False)
    return path


def _written(folder: Path) -> list[str]:
    files = folder.rglob("*")
    return sorted(path.name for path in files if path.is_file() and path.suffix != ".csv" and path.name != FETCH_MARKER)


@pytest.mark.range
@pytest.mark.parametrize("damage", ["flipped byte", "truncated", "zip-slip", "missing plate", "503"])
def test_bad_archives_fail_clearly_and_leave_nothing_complete(served, tmp_path, damage):
    server, _ = served
    folder = server.root / f"damaged-{damage.replace(' ', '-')}"
    archive = _write_zip(folder, {**FILES, **OTHER} if damage != "zip-slip" else {**FILES, "../evil.tif": b"x"})
    member = list(FILES)[1]
    if damage == "flipped byte":
        raw = bytearray(archive.read_bytes())
        start, _, info = _extents(archive)[member]
        raw[start + 30 + len(info.filename) + 40] ^= 0xFF
        archive.write_bytes(bytes(raw))
    elif damage == "truncated":
        archive.write_bytes(archive.read_bytes()[:-300])
    elif damage == "missing plate":
        archive.unlink()
    base = server.url + ("failing/" if damage == "503" else f"{folder.name}/")
    url = base + ARCHIVE
    expected = {
        "flipped byte": rf"plate {PLATE}: member {member} of {url} is corrupt \(CRC-32 or size",
        "truncated": rf"plate {PLATE}: {url} is not a readable zip archive .*truncated",
        "zip-slip": rf"plate {PLATE}: unsafe member name '../evil.tif'.*refusing",
        "missing plate": rf"plate {PLATE}: archive {url} not found .*HTTP 404",
        "503": rf"{url}: failed after 2 tries \(HTTP 503\)",
    }[damage]
    out = tmp_path / "out"
    with pytest.raises(FetchError, match=expected):
        fetch_plate(PLATE, _small_selection(tmp_path / "selected.csv"), base, out / "images", out / "fetch.json", FAST)
    assert not (out / "images").exists() and not (out / "fetch.json").exists()
    # only members verified before the failure are kept (in the staging folder, for a rerun)
    assert _written(tmp_path) == ([member.split("/")[1] for member in FILES][:1] if damage == "flipped byte" else [])


def metadata_files(folder):
    """fetch_metadata's output arguments in a folder, named as the workflow names them."""
    return {"image_csv": folder / "BBBC021_v1_image.csv", "moa_csv": folder / "BBBC021_v1_moa.csv"}


@pytest.mark.range
def test_metadata_is_validated_before_it_is_written(served, tmp_path):
    server, source_dir = served
    records = fetch_metadata(server.url + "bbbc021/", **metadata_files(tmp_path / "good"), settings=FAST)
    assert [record["file"] for record in records] == [
        "BBBC021_v1_image.csv",
        "BBBC021_v1_moa.csv",
        "BBBC021_v1_compound.csv",
    ]
    image = records[0]
    assert image["bytes"] == (source_dir / image["file"]).stat().st_size and len(image["sha256"]) == 64
    assert records[2]["present"] is False  # optional, absent here
    assert (tmp_path / "good" / "BBBC021_v1_image.csv").read_bytes() == (source_dir / image["file"]).read_bytes()
    assert sorted(path.name for path in (tmp_path / "good").iterdir()) == ["BBBC021_v1_image.csv", "BBBC021_v1_moa.csv"]

    bad = server.root / "bad-metadata"
    bad.mkdir(exist_ok=True)
    table = pd.read_csv(source_dir / "BBBC021_v1_image.csv").drop(columns="Image_Metadata_Compound")
    table.to_csv(bad / "BBBC021_v1_image.csv", index=False)
    (bad / "BBBC021_v1_moa.csv").write_bytes((source_dir / "BBBC021_v1_moa.csv").read_bytes())
    (bad / "BBBC021_v1_compound.csv").write_text('"compound","smiles"\n"taxol","CC"\n')
    with pytest.raises(FetchError, match=r"BBBC021_v1_image.csv: .*missing column\(s\) Image_Metadata_Compound"):
        fetch_metadata(server.url + "bad-metadata/", **metadata_files(tmp_path / "bad"), settings=FAST)
    assert not [path for path in (tmp_path / "bad").rglob("*") if path.is_file()]


def test_local_fetch_extracts_only_the_selection_and_resumes(tmp_path):
    _write_zip(tmp_path / "src", {**FILES, **OTHER})
    selected, out = _small_selection(tmp_path / "selected.csv"), tmp_path / "images"
    record = fetch_plate(PLATE, selected, str(tmp_path / "src"), out, tmp_path / "fetch.json")
    assert sorted(_images(out)) == sorted(name.split("/")[1] for name in FILES)
    for name, data in FILES.items():
        assert (out / name.split("/")[1]).read_bytes() == data
    assert record["members"] == record["members_fetched"] == 3 and record["bytes_needed"] > 0
    again = fetch_plate(PLATE, selected, str(tmp_path / "src"), out, tmp_path / "fetch.json")
    assert again["members_fetched"] == 0 and sorted(_images(out)) == sorted(name.split("/")[1] for name in FILES)


def test_zip64_members_are_read(tmp_path):
    (tmp_path / "src").mkdir()
    with zipfile.ZipFile(tmp_path / "src" / ARCHIVE, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in {**OTHER, **FILES}.items():
            with archive.open(name, "w", force_zip64=True) as member:
                member.write(data)
    record = fetch_plate(
        PLATE,
        _small_selection(tmp_path / "selected.csv"),
        str(tmp_path / "src"),
        tmp_path / "images",
        tmp_path / "fetch.json",
    )
    assert record["members"] == 3
    assert _images(tmp_path / "images") == {name.split("/")[1]: data for name, data in FILES.items()}


def test_missing_member_is_named(tmp_path):
    _write_zip(tmp_path / "src", dict(list(FILES.items())[:2]))
    with pytest.raises(FetchError, match=r"member .*_w4.* not in"):
        fetch_plate(
            PLATE,
            _small_selection(tmp_path / "selected.csv"),
            str(tmp_path / "src"),
            tmp_path / "images",
            tmp_path / "fetch.json",
        )


def test_coalesce_merges_close_neighbours_within_the_cap():
    extents = [(0, 100), (300, 400), (105, 200), (1000, 1100), (1100, 5000)]
    assert coalesce(extents, gap=10, cap=10_000) == [(0, 200, [0, 2]), (300, 400, [1]), (1000, 5000, [3, 4])]
    assert coalesce(extents, gap=10, cap=1000) == [
        (0, 200, [0, 2]),
        (300, 400, [1]),
        (1000, 1100, [3]),
        (1100, 5000, [4]),
    ]


@pytest.mark.parametrize("name", ["/etc/passwd", "../../evil.tif", f"{PLATE}/../../evil.tif"])
def test_zip_slip_names_are_refused(name):
    with pytest.raises(FetchError, match="unsafe member name"):
        safe_member_name(name, PLATE)


def test_crc_of_verified_members(tmp_path):
    _write_zip(tmp_path, FILES)
    with zipfile.ZipFile(tmp_path / ARCHIVE) as archive:
        info = archive.infolist()[0]
    target = tmp_path / "member.tif"
    target.write_bytes(FILES[info.filename])
    assert is_verified(target, info) and zlib.crc32(target.read_bytes()) == info.CRC
    target.write_bytes(FILES[info.filename][:-1] + b"X")
    assert not is_verified(target, info)


@pytest.mark.range
def test_s3_source_through_boto3(served, tmp_path, monkeypatch):
    moto = pytest.importorskip("moto", reason="moto (envs/requirements.txt) provides an in-process S3")
    _, source_dir = served
    for key, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    with moto.mock_aws():
        import boto3

        client = boto3.client("s3")
        client.create_bucket(Bucket="cells")
        for path in source_dir.iterdir():
            client.upload_file(str(path), "cells", f"mirror/bbbc021/{path.name}")
        selected = _select(source_dir, tmp_path / "selected.csv", ["C02"])
        record = fetch_plate(
            PLATE, selected, "s3://cells/mirror/bbbc021", tmp_path / "images", tmp_path / "fetch.json", FAST
        )
        records = fetch_metadata("s3://cells/mirror/bbbc021/", **metadata_files(tmp_path / "metadata"), settings=FAST)
        other = tmp_path / "other.csv"
        pd.read_csv(selected).assign(plate="Week1_22123").to_csv(other, index=False)
        with pytest.raises(FetchError, match=r"plate Week1_22123: archive s3://cells/mirror/bbbc021/.* not found"):
            fetch_plate("Week1_22123", other, "s3://cells/mirror/bbbc021", tmp_path / "x", tmp_path / "x.json", FAST)
    expected = _member_bytes(source_dir / ARCHIVE, _wanted(selected))
    assert _images(tmp_path / "images") == expected
    assert record["mode"] == "ranges" and record["bytes_transferred"] / record["bytes_needed"] < 1.1
    assert records[0]["bytes"] == (source_dir / "BBBC021_v1_image.csv").stat().st_size


class CountingHttpSource(HttpSource):
    """The real HttpSource, counting its requests (each try opens one)."""

    def _open(self, url, headers):
        self.attempts = getattr(self, "attempts", 0) + 1
        return super()._open(url, headers)


def _closed_port() -> int:
    """A local port nothing listens on: connecting is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# a retry would wait backoff_s (10 s) first, so a fast failure also shows that nothing was retried
PATIENT = FetchSettings(retries=5, backoff_s=10.0, timeout_s=10)


@pytest.mark.parametrize(
    "base, problem",
    [
        ("http://127.0.0.1:{port}/bbbc021/", "connection refused"),
        ("http://cellvae-test.invalid/bbbc021/", "cannot resolve the host name"),
    ],
)
def test_refused_connection_or_unknown_host_fails_at_once_naming_the_url(base, problem):
    source = CountingHttpSource(base.format(port=_closed_port()), PATIENT)
    started = time.monotonic()
    with pytest.raises(FetchError) as error:
        source.read_all("BBBC021_v1_image.csv")
    assert time.monotonic() - started < 5 and source.attempts == 1
    message = str(error.value)
    assert message.startswith(f"{source.locate('BBBC021_v1_image.csv')}: {problem}")
    assert "check the config key source" in message


def test_the_metadata_stage_and_the_plate_fetch_fail_at_once_on_a_refused_source(tmp_path):
    base = f"http://127.0.0.1:{_closed_port()}/bbbc021/"
    started = time.monotonic()
    with pytest.raises(FetchError, match=rf"{base}BBBC021_v1_image.csv: connection refused"):
        fetch_metadata(base, **metadata_files(tmp_path / "metadata"), settings=PATIENT)
    selected = tmp_path / "selected.csv"
    pd.DataFrame(
        {
            "plate": [PLATE],
            "path": [PLATE],
            "file_dapi": ["a_w1.tif"],
            "file_tubulin": ["a_w2.tif"],
            "file_actin": ["a_w4.tif"],
        }
    ).to_csv(selected, index=False)
    command = [
        sys.executable,
        "-m",
        "cellvae",
        "fetch",
        "--plate",
        PLATE,
        "--selected",
        str(selected),
        "--source",
        base,
        "--out",
        str(tmp_path / "images"),
        "--record",
        str(tmp_path / "fetch.json"),
        "--backoff-s",
        "10",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and f"{base}{ARCHIVE}: connection refused" in result.stderr
    assert time.monotonic() - started < 10


def test_a_silent_server_is_still_retried(tmp_path):
    """A timeout can heal: it is retried (retries + 1 tries), unlike a refused connection."""
    with socket.socket() as silent:  # accepts (the kernel does) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        source = CountingHttpSource(
            f"http://127.0.0.1:{silent.getsockname()[1]}/", FetchSettings(retries=2, backoff_s=0.01, timeout_s=0.3)
        )
        with pytest.raises(FetchError, match=r"failed after 3 tries .*timed out"):
            source.read_all("BBBC021_v1_image.csv")
    assert source.attempts == 3


def test_s3_endpoint_refusing_connections_fails_at_once(monkeypatch):
    for key, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{_closed_port()}",
    }.items():
        monkeypatch.setenv(key, value)
    source = S3Source("s3://cells/bbbc021", PATIENT)
    started = time.monotonic()
    with pytest.raises(FetchError, match=r"s3://cells/bbbc021/BBBC021_v1_image.csv: connection refused"):
        source.read_all("BBBC021_v1_image.csv")
    assert time.monotonic() - started < 5


def test_fetch_records_are_summed_for_the_report(tmp_path):
    from cellvae.data.fetch import summarize_records

    paths = []
    for index, (needed, transferred) in enumerate([(100, 110), (300, 300)]):
        path = tmp_path / f"{index}.json"
        path.write_text(
            json.dumps(
                {
                    "plate": f"P{index}",
                    "members": 3,
                    "bytes_needed": needed,
                    "bytes_transferred": transferred,
                    "seconds": 1.5,
                    "mode": "ranged",
                }
            )
        )
        paths.append(path)
    table = summarize_records(paths, tmp_path / "summary.csv")
    total = table.set_index("plate").loc["total"]
    assert total["bytes_needed"] == 400 and total["bytes_transferred"] == 410 and total["members"] == 6
    assert total["transferred_per_needed"] == 1.025 and (tmp_path / "summary.csv").exists()
