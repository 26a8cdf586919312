"""Fetch BBBC021 metadata tables and the selected images of a plate from a local directory or a URL."""
from __future__ import annotations

import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath

import pandas as pd

from cellvae.metadata import file_record, write_json

CHANNEL_FILE_COLUMNS = ["file_dapi", "file_tubulin", "file_actin"]


class FetchError(RuntimeError):
    """A source file that cannot be fetched or verified."""


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def source_location(source: str, name: str) -> str:
    """URL or local path of a file at the source."""
    return source.rstrip("/") + "/" + name if is_url(source) else os.path.join(source, name)


def archive_name(plate: str) -> str:
    return f"BBBC021_v1_images_{plate}.zip"


def _download(url: str, destination: str) -> None:
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(destination, "wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
    except (urllib.error.URLError, TimeoutError) as error:
        raise FetchError(f"{url}: download failed ({error}); check the config key source") from error


def copy_source_file(source: str, name: str, destination: str | Path) -> dict:
    """Copy or download one source file atomically; return its size and sha256 record."""
    location = source_location(source, name)
    tmp = f"{destination}.part"
    if is_url(source):
        _download(location, tmp)
    elif not os.path.exists(location):
        raise FetchError(f"{location}: not found; check the config key source")
    else:
        shutil.copyfile(location, tmp)
    os.replace(tmp, destination)
    return {**file_record(destination), "source": location}


def safe_member_name(name: str, plate: str) -> str:
    """The member's file name, refusing absolute paths and '..' (zip-slip)."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or "\\" in name:
        raise FetchError(f"plate {plate}: unsafe member name {name!r} in its archive; refusing to extract")
    return path.name


def _crc32(path: Path) -> int:
    crc = 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            crc = zlib.crc32(block, crc)
    return crc


def _is_verified(path: Path, info: zipfile.ZipInfo) -> bool:
    return path.exists() and path.stat().st_size == info.file_size and _crc32(path) == info.CRC


def plate_members(selected_csv: str | Path, plate: str) -> list[str]:
    """Archive member names (<Plate>/<file>) of the selected fields of a plate."""
    table = pd.read_csv(selected_csv)
    rows = table[table["plate"] == plate]
    if rows.empty:
        raise FetchError(f"{selected_csv}: plate {plate} has no selected field")
    return [f"{plate}/{name}" for column in CHANNEL_FILE_COLUMNS for name in rows[column]]


def extract_members(archive: zipfile.ZipFile, members: list[str], plate: str, where: str,
                    out_dir: Path) -> tuple[int, int]:
    """Extract, CRC-verify and atomically write members; skip those already verified on disk.

    Returns (bytes needed, bytes read) counted in compressed archive bytes."""
    out_dir.mkdir(parents=True, exist_ok=True)
    infos = {info.filename: info for info in archive.infolist()}
    needed = read = 0
    for member in members:
        info = infos.get(member)
        if info is None:
            raise FetchError(f"plate {plate}: member {member} not in {where}")
        target = out_dir / safe_member_name(member, plate)
        needed += info.compress_size
        if _is_verified(target, info):
            continue
        tmp = target.with_name(target.name + ".part")
        try:
            with archive.open(info) as stream, open(tmp, "wb") as out:
                shutil.copyfileobj(stream, out, 1 << 20)
        except (zipfile.BadZipFile, zlib.error, EOFError) as error:
            tmp.unlink(missing_ok=True)
            raise FetchError(f"plate {plate}: member {member} of {where} is corrupt ({error})") from error
        os.replace(tmp, target)
        read += info.compress_size
    return needed, read


def fetch_plate(plate: str, selected_csv: str | Path, source: str, out_dir: str | Path,
                record_path: str | Path) -> dict:
    """Fetch the selected images of one plate into out_dir and write a fetch record."""
    started = time.monotonic()
    members = plate_members(selected_csv, plate)
    location = source_location(source, archive_name(plate))
    with tempfile.TemporaryDirectory(dir=Path(out_dir).parent) as scratch:
        archive_path = location
        if is_url(source):
            archive_path = os.path.join(scratch, archive_name(plate))
            _download(location, archive_path)
        elif not os.path.exists(location):
            raise FetchError(f"plate {plate}: archive {location} not found; check the config key source")
        try:
            with zipfile.ZipFile(archive_path) as archive:
                needed, read = extract_members(archive, members, plate, location, Path(out_dir))
        except zipfile.BadZipFile as error:
            raise FetchError(f"plate {plate}: {location} is not a readable zip ({error})") from error
        transferred = os.path.getsize(archive_path) if is_url(source) else read
    record = {"plate": plate, "source": location, "members": len(members), "bytes_needed": needed,
              "bytes_transferred": transferred, "seconds": round(time.monotonic() - started, 3)}
    write_json(record, record_path)
    return record
