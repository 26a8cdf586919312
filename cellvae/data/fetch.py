"""Fetch BBBC021 metadata tables and, per plate, only the selected members of its zip archive.

The archive's central directory is read through byte ranges (`cellvae.data.sources`), then the selected members'
ranges are fetched (neighbours merged, several requests in parallel), inflated, checked against the central
directory's CRC-32 and size, and written atomically into a staging folder beside the output, which becomes
the output once complete. A rerun after a kill keeps every member already verified there. A server that
ignores byte ranges gets one streamed whole-archive download (continued where the server allows).
Nothing of the user's is moved or deleted: the output must lie apart from the inputs, and an existing output
(or staging) folder is reused only when empty or marked as an earlier fetch of the plate (FETCH_MARKER).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import zipfile
import zlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

import pandas as pd

from cellvae.core.channels import STAINS, file_column
from cellvae.core.files import atomic_write, refuse_overwriting_inputs, write_csv, write_json
from cellvae.data.metadata import (
    IMAGE_CSV,
    MOA_CSV,
    MetadataError,
    file_record,
    read_image_table,
    read_moa_table,
)
from cellvae.data.sources import (
    FetchError,
    FetchSettings,
    LocalSource,
    NotFound,
    RangedFile,
    RangeIgnored,
    Source,
    is_url,
    open_source,
    source_location,
    validator_path,
)

__all__ = [
    "FetchError",
    "FetchSettings",
    "OutputConflict",
    "archive_name",
    "fetch_metadata",
    "fetch_plate",
    "is_url",
    "source_location",
]

COMPOUND_CSV = "BBBC021_v1_compound.csv"
COMPOUND_COLUMNS = ["compound", "smiles"]
PROGRESS_INTERVAL_S = 2.0
FETCH_MARKER = ".cellvae-fetch"  # in a plate's output (and staging) folder: the plate it holds a fetch of


class OutputConflict(ValueError):
    """An output path that would write into, move or delete an input or a folder fetch did not make."""


def archive_name(plate: str) -> str:
    return f"BBBC021_v1_images_{plate}.zip"


def _check_compound_table(path: Path) -> None:
    try:
        columns = pd.read_csv(path, nrows=0).columns
    except pd.errors.EmptyDataError:
        raise MetadataError(
            f"{path.name}: the file is empty; expected BBBC021's compound table with columns "
            f"{', '.join(COMPOUND_COLUMNS)}; re-download it"
        ) from None
    missing = [column for column in COMPOUND_COLUMNS if column not in columns]
    if missing:
        raise MetadataError(f"{path.name}: missing column(s) {', '.join(missing)}; is this the BBBC021 file?")


def fetch_metadata(source: str, *, image_csv, moa_csv, settings: FetchSettings | None = None) -> list[dict]:
    """Download the image and MoA tables into image_csv and moa_csv, each written only once valid, and check the
    compound table where the source has one (recorded, not kept: nothing reads it); return the three records
    (file, bytes, sha256, source)."""
    remote, outputs = open_source(source, settings), {IMAGE_CSV: Path(image_csv), MOA_CSV: Path(moa_csv)}
    for path in outputs.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    checks = [
        (IMAGE_CSV, read_image_table, True),
        (MOA_CSV, read_moa_table, True),
        (COMPOUND_CSV, _check_compound_table, False),
    ]
    records = []
    with tempfile.TemporaryDirectory(dir=outputs[IMAGE_CSV].parent) as scratch:
        for name, check, required in checks:
            try:
                data = remote.read_all(name)
            except NotFound:
                if required:
                    raise
                records.append({"file": name, "source": remote.locate(name), "present": False})
                continue
            staged = Path(scratch) / name
            staged.write_bytes(data)
            try:
                check(staged)
            except (MetadataError, pd.errors.ParserError, UnicodeDecodeError) as error:
                raise FetchError(f"{remote.locate(name)}: {error}") from error
            records.append({**file_record(staged), "source": remote.locate(name)})
        for name, path in outputs.items():
            os.replace(Path(scratch) / name, path)
    return records


def safe_member_name(name: str, plate: str) -> str:
    """The member's file name, refusing absolute paths and '..' (zip-slip)."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or "\\" in name or not path.name:
        raise FetchError(f"plate {plate}: unsafe member name {name!r} in its archive; refusing to extract")
    return path.name


def _crc32(path: Path) -> int:
    crc = 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            crc = zlib.crc32(block, crc)
    return crc


def is_verified(path: Path, info: zipfile.ZipInfo) -> bool:
    """True if path holds the member: same size and CRC-32 as in the central directory."""
    return path.exists() and path.stat().st_size == info.file_size and _crc32(path) == info.CRC


def plate_members(selected_csv: str | Path, plate: str) -> list[str]:
    """Archive member names (<Plate>/<file>) of the selected fields of a plate."""
    table = pd.read_csv(selected_csv)
    rows = table[table["plate"] == plate]
    if rows.empty:
        raise FetchError(f"{selected_csv}: plate {plate} has no selected field")
    return [f"{plate}/{name}" for column in map(file_column, STAINS) for name in rows[column]]


def coalesce(extents: list[tuple[int, int]], gap: int, cap: int) -> list[tuple[int, int, list[int]]]:
    """Merge sorted [start, end) extents closer than gap into requests of at most cap bytes (a single
    larger extent stays alone): [(start, end, indices of the extents it holds)]."""
    groups: list[tuple[int, int, list[int]]] = []
    for index, (start, end) in sorted(enumerate(extents), key=lambda item: item[1]):
        if groups and start - groups[-1][1] <= gap and end - groups[-1][0] <= cap:
            groups[-1] = (groups[-1][0], max(end, groups[-1][1]), groups[-1][2] + [index])
        else:
            groups.append((start, end, [index]))
    return groups


class Progress:
    """Per-plate progress (files and bytes) on stderr, at most one line every PROGRESS_INTERVAL_S."""

    def __init__(self, plate: str, files: int, total_bytes: int):
        self.plate, self.files, self.total = plate, files, total_bytes
        self.done_files = self.done_bytes = 0
        self.last = 0.0

    def add(self, files: int, size: int) -> None:
        self.done_files += files
        self.done_bytes += size
        now = time.monotonic()
        if now - self.last >= PROGRESS_INTERVAL_S or self.done_files == self.files:
            self.last = now
            share = self.done_bytes / self.total if self.total else 1.0
            bar = "#" * int(30 * share)
            print(
                f"fetch {self.plate} [{bar:<30}] {self.done_files}/{self.files} files, "
                f"{self.done_bytes / 1e6:.1f}/{self.total / 1e6:.1f} MB",
                file=sys.stderr,
                flush=True,
            )


def _open_archive(remote: Source, name: str, download: Path) -> tuple[RangedFile, str]:
    """The archive as a ranged file: remote when the server serves ranges, else a whole local download
    (kept, once complete, until the plate is done, so that a rerun does not download it again)."""
    if not download.exists():
        try:
            size, offset, tail = remote.tail(name)
            return RangedFile(remote, name, size, {offset: tail}), "ranges"
        except RangeIgnored:
            print(
                f"{remote.locate(name)}: the server ignores byte ranges; downloading the whole archive",
                file=sys.stderr,
                flush=True,
            )
        partial = _partial(download)
        remote.download(name, partial)
        os.replace(partial, download)
    local = LocalSource(str(download.parent), remote.settings)
    return RangedFile(local, download.name, download.stat().st_size), "whole archive"


def _partial(download: Path) -> Path:
    return download.with_name(download.name + ".part")


def _extract(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, plate: str, url: str) -> None:
    """Inflate one member into target atomically, checking CRC-32 and size against the central directory."""

    def inflate(temporary: Path) -> None:
        with archive.open(info) as stream, open(temporary, "wb") as out:
            shutil.copyfileobj(stream, out, 1 << 20)
        if temporary.stat().st_size != info.file_size:
            raise zipfile.BadZipFile(f"size {temporary.stat().st_size} instead of {info.file_size}")

    try:
        atomic_write(target, inflate)
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        raise FetchError(
            f"plate {plate}: member {info.filename} of {url} is corrupt "
            f"(CRC-32 or size mismatch: {error}); rerun, or check the mirror"
        ) from error


def _members_to_fetch(
    archive: zipfile.ZipFile, members: list[str], plate: str, url: str, staging: Path
) -> tuple[list[zipfile.ZipInfo], list[zipfile.ZipInfo]]:
    """(selected infos, those not yet verified in staging); refuses unsafe or missing names first."""
    infos = {}
    for info in archive.infolist():
        safe_member_name(info.filename, plate)
        infos[info.filename] = info
    missing = [member for member in members if member not in infos]
    if missing:
        raise FetchError(
            f"plate {plate}: member {missing[0]} not in {url} ({len(missing)} missing); "
            "does the metadata match the archives?"
        )
    selected = [infos[member] for member in members]
    return selected, [
        info for info in selected if not is_verified(staging / safe_member_name(info.filename, plate), info)
    ]


def _fetch_members(
    archive: zipfile.ZipFile,
    file: RangedFile,
    todo: list[zipfile.ZipInfo],
    plate: str,
    url: str,
    staging: Path,
    settings: FetchSettings,
) -> None:
    """Fetch the members' byte ranges (merged, in parallel), extracting each group as it arrives."""
    offsets = sorted({info.header_offset for info in archive.infolist()} | {archive.start_dir})
    following = dict(zip(offsets, offsets[1:]))
    extents = [(info.header_offset, following[info.header_offset]) for info in todo]
    groups = coalesce(extents, settings.coalesce_gap, settings.max_request_bytes)
    progress = Progress(plate, len(todo), sum(end - start for start, end in extents))
    with ThreadPoolExecutor(max_workers=settings.connections) as pool:
        pending = deque()

        def extract_next() -> None:
            (start, end, indices), data = pending.popleft()
            file.spans[start] = data.result()
            for index in indices:
                _extract(archive, todo[index], staging / safe_member_name(todo[index].filename, plate), plate, url)
                progress.add(1, extents[index][1] - extents[index][0])
            del file.spans[start]

        try:
            for group in groups:
                pending.append((group, pool.submit(file.source.read_range, file.name, group[0], group[1])))
                if len(pending) > settings.connections:
                    extract_next()
            while pending:
                extract_next()
        finally:
            for _, future in pending:
                future.cancel()


def _overlap(path: Path, option: str, inputs: dict[str, Path]) -> None:
    """OutputConflict when path is, contains or lies inside one of the inputs (option: path), symlinks resolved."""
    for name, other in inputs.items():
        mine, theirs = path.resolve(), Path(other).resolve()
        how = "is" if mine == theirs else "lies inside" if mine.is_relative_to(theirs) else "contains"
        if mine == theirs or mine.is_relative_to(theirs) or theirs.is_relative_to(mine):
            raise OutputConflict(
                f"{option} {path} {how} {name} {other}, which fetch must leave untouched: give {option} a path of "
                "its own, apart from it"
            )


def _check_own_folder(folder: Path, what: str, plate: str) -> None:
    """OutputConflict unless folder is absent, empty, or an earlier fetch of this plate (marked by FETCH_MARKER)."""
    if not folder.exists():
        return
    if not folder.is_dir():
        raise OutputConflict(f"{what} {folder} is not a folder: give a new or empty folder's path")
    files = sorted(path.name for path in folder.iterdir())
    marker = folder / FETCH_MARKER
    if not files or (marker.is_file() and marker.read_text().strip() in ("", plate)):
        return  # an empty marker: killed as it was written
    held = f"plate {marker.read_text().strip()}'s fetch" if marker.is_file() else "files that fetch did not write"
    shown = next((name for name in files if name != FETCH_MARKER), files[0])
    raise OutputConflict(
        f"{what} {folder} holds {held} ({len(files)} entries, e.g. {shown}): fetch would move and clean it; "
        "give a new or empty folder, or move that one away"
    )


def check_outputs(plate: str, selected_csv, source: str, out_dir: Path, record_path: Path) -> None:
    """Refuse (OutputConflict), before anything is written, moved or deleted: an output folder or record that is,
    contains or lies inside an input (the selection, a local source) or each other; an existing output or
    staging folder holding anything but an earlier fetch of the plate."""
    inputs = {"--selected": Path(selected_csv)} | ({} if is_url(source) else {"--source": Path(source)})
    _overlap(out_dir, "--out", inputs)
    try:
        refuse_overwriting_inputs(record_path, list(inputs.values()), "--record")
    except ValueError as error:
        raise OutputConflict(str(error)) from None
    _overlap(record_path, "--record", inputs | {"--out": out_dir})
    _check_own_folder(out_dir, "--out", plate)
    _check_own_folder(out_dir.with_name(f".{out_dir.name}.partial"), f"the staging folder of --out {out_dir}", plate)


def fetch_plate(
    plate: str,
    selected_csv: str | Path,
    source: str,
    out_dir: str | Path,
    record_path: str | Path,
    settings: FetchSettings | None = None,
) -> dict:
    """Fetch the selected images of one plate into out_dir and write its fetch record (last)."""
    started, settings = time.monotonic(), settings or FetchSettings()
    members = plate_members(selected_csv, plate)
    out_dir, record_path = Path(out_dir), Path(record_path)
    staging = out_dir.with_name(f".{out_dir.name}.partial")
    download = out_dir.with_name(f".{archive_name(plate)}.download")
    check_outputs(plate, selected_csv, source, out_dir, record_path)
    record_path.unlink(missing_ok=True)
    if out_dir.exists():  # a previous complete fetch: verify and reuse its files
        shutil.rmtree(staging, ignore_errors=True)
        os.replace(out_dir, staging)
    staging.mkdir(parents=True, exist_ok=True)
    (staging / FETCH_MARKER).write_text(plate)
    remote = open_source(source, settings)
    name, url = archive_name(plate), remote.locate(archive_name(plate))
    try:
        file, mode = _open_archive(remote, name, download)
        with zipfile.ZipFile(file) as archive:
            selected, todo = _members_to_fetch(archive, members, plate, url, staging)
            _fetch_members(archive, file, todo, plate, url, staging, settings)
    except NotFound as error:
        raise FetchError(f"plate {plate}: archive {url} not found ({error})") from error
    except zipfile.BadZipFile as error:
        raise FetchError(
            f"plate {plate}: {url} is not a readable zip archive ({error}); is it truncated? rerun, or check the mirror"
        ) from error
    keep = {safe_member_name(info.filename, plate) for info in selected} | {FETCH_MARKER}
    for stale in staging.iterdir():
        if stale.name not in keep:
            stale.unlink()
    os.replace(staging, out_dir)
    for leftover in (download, _partial(download), validator_path(_partial(download))):
        leftover.unlink(missing_ok=True)
    record = {
        "plate": plate,
        "source": url,
        "mode": mode,
        "members": len(selected),
        "members_fetched": len(todo),
        "bytes_needed": sum(info.compress_size for info in selected),
        "bytes_transferred": remote.bytes_received,
        "seconds": round(time.monotonic() - started, 3),
    }
    write_json(record, record_path)
    return record


def summarize_records(record_paths: list[str], out_csv: str | Path) -> pd.DataFrame:
    """One row per plate's fetch record plus a total row, written atomically."""
    columns = ["plate", "members", "bytes_needed", "bytes_transferred", "seconds"]
    table = pd.DataFrame([json.loads(Path(path).read_text()) for path in record_paths])[columns]
    total = {"plate": "total", **table[columns[1:]].sum().to_dict()}
    table = pd.concat([table, pd.DataFrame([total])], ignore_index=True)
    table["transferred_per_needed"] = (table["bytes_transferred"] / table["bytes_needed"]).round(4)
    write_csv(table, out_csv)
    return table
