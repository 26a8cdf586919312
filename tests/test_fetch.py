import functools
import http.server
import json
import threading
import zipfile

import pandas as pd
import pytest

from cellvae.fetch import FetchError, copy_source_file, fetch_plate, safe_member_name

PLATE = "Week4_27481"
FILES = {f"{PLATE}/B02_s1_w{channel}{channel * 7}AB.tif": bytes([channel]) * 5000 + b"tail"
         for channel in (1, 2, 4)}
OTHER = {f"{PLATE}/C02_s1_w{channel}X.tif": b"not needed" * 1000 for channel in (1, 2, 4)}


def _write_source(root, members):
    root.mkdir(exist_ok=True)
    with zipfile.ZipFile(root / f"BBBC021_v1_images_{PLATE}.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    names = [name.split("/")[1] for name in FILES]
    selected = pd.DataFrame([{"plate": PLATE, "well": "B02", "site": 1, "file_dapi": names[0],
                              "file_tubulin": names[1], "file_actin": names[2]}])
    selected.to_csv(root / "selected.csv", index=False)
    (root / "BBBC021_v1_moa.csv").write_text('"compound",concentration,"moa"\n"DMSO",0.000000,"DMSO"\n')
    return root / "selected.csv"


def test_local_fetch_extracts_only_the_selection_and_resumes(tmp_path):
    selected = _write_source(tmp_path / "src", {**FILES, **OTHER})
    out = tmp_path / "images"
    record = fetch_plate(PLATE, selected, str(tmp_path / "src"), out, tmp_path / "fetch.json")
    assert sorted(p.name for p in out.iterdir()) == sorted(name.split("/")[1] for name in FILES)
    for name, data in FILES.items():
        assert (out / name.split("/")[1]).read_bytes() == data
    assert record["members"] == 3 and record["bytes_transferred"] == record["bytes_needed"] > 0
    assert json.loads((tmp_path / "fetch.json").read_text()) == record
    again = fetch_plate(PLATE, selected, str(tmp_path / "src"), out, tmp_path / "fetch.json")
    assert again["bytes_transferred"] == 0                     # verified members are not read twice


def test_url_source_through_a_real_http_server(tmp_path):
    selected = _write_source(tmp_path / "src", {**FILES, **OTHER})
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "src"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/"
        fetch_plate(PLATE, selected, base, tmp_path / "images", tmp_path / "fetch.json")
        assert len(list((tmp_path / "images").iterdir())) == 3
        record = copy_source_file(base, "BBBC021_v1_moa.csv", tmp_path / "moa.csv")
        assert record["bytes"] == (tmp_path / "moa.csv").stat().st_size and len(record["sha256"]) == 64
        (tmp_path / "src" / f"BBBC021_v1_images_{PLATE}.zip").unlink()
        with pytest.raises(FetchError, match=rf"{PLATE}.zip: download failed.*404"):
            fetch_plate(PLATE, selected, base, tmp_path / "x", tmp_path / "x.json")
        assert not (tmp_path / "x.json").exists()
    finally:
        server.shutdown()


def test_corrupt_member_is_a_clear_error_and_leaves_nothing(tmp_path):
    selected = _write_source(tmp_path / "src", FILES)
    archive_path = tmp_path / "src" / f"BBBC021_v1_images_{PLATE}.zip"
    with zipfile.ZipFile(archive_path) as archive:
        info = archive.infolist()[1]
        start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    raw = bytearray(archive_path.read_bytes())
    raw[start + 5] ^= 0xFF
    archive_path.write_bytes(bytes(raw))
    with pytest.raises(FetchError, match=rf"plate {PLATE}: member {info.filename} .* is corrupt"):
        fetch_plate(PLATE, selected, str(tmp_path / "src"), tmp_path / "images", tmp_path / "fetch.json")
    assert not (tmp_path / "images" / info.filename.split("/")[1]).exists()
    assert not list((tmp_path / "images").glob("*.part")) and not (tmp_path / "fetch.json").exists()


def test_missing_member_and_missing_archive(tmp_path):
    selected = _write_source(tmp_path / "src", dict(list(FILES.items())[:2]))
    with pytest.raises(FetchError, match=r"member .*_w4.* not in"):
        fetch_plate(PLATE, selected, str(tmp_path / "src"), tmp_path / "images", tmp_path / "fetch.json")
    with pytest.raises(FetchError, match=r"archive .* not found; check the config key source"):
        fetch_plate(PLATE, selected, str(tmp_path / "nowhere"), tmp_path / "images", tmp_path / "fetch.json")


@pytest.mark.parametrize("name", ["/etc/passwd", "../../evil.tif", f"{PLATE}/../../evil.tif"])
def test_zip_slip_names_are_refused(name):
    with pytest.raises(FetchError, match="unsafe member name"):
        safe_member_name(name, PLATE)
