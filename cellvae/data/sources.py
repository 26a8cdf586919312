"""Byte-range access to source files (local directory, HTTP(S) mirror, S3) and a seekable file over it.

`open_source` gives a Source whose `read_range` fetches bytes [start, end) of a file, retrying timeouts,
5xx answers and dropped connections with exponential backoff (a refused connection or an unknown host fails
at once: retrying cannot heal it), and counting every byte received.
`RangedFile` is a read-only, seekable file object over such a source that serves reads from the spans it
was given and fetches only what is missing, so that `zipfile.ZipFile` reads a remote central directory
(ZIP64 included) with a few small requests.
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, fields
from pathlib import Path

from cellvae.core.config import defaults
from cellvae.core.option_types import schema_number

TAIL_BYTES = 8192  # first request: the end of the archive (EOCD, ZIP64 locator and record, end of the CD)
CHUNK = 1 << 20
FETCH_DEFAULTS = defaults()["fetch"]  # config key fetch (config/config.schema.yaml)


class FetchError(RuntimeError):
    """A source file that cannot be fetched or verified."""


class NotFound(FetchError):
    """The source has no such file (HTTP 404/410, S3 NoSuchKey, no local file)."""


class RangeIgnored(Exception):
    """The server answered a ranged request with the whole file (200): ranges are not available."""


class _Transient(Exception):
    """A failure worth retrying: timeout, 5xx, dropped connection, short body."""


@dataclass(frozen=True)
class FetchSettings:
    """Transfer tunables (config key fetch)."""

    connections: int = FETCH_DEFAULTS["connections"]  # parallel range requests per plate
    coalesce_gap: int = FETCH_DEFAULTS["coalesce_gap"]  # merge neighbouring members at most this many bytes apart
    max_request_bytes: int = FETCH_DEFAULTS["max_request_bytes"]  # cap on one merged request (connections+1 in memory)
    retries: int = FETCH_DEFAULTS["retries"]  # retries per request after the first try
    backoff_s: float = FETCH_DEFAULTS["backoff_s"]  # wait before retry k: backoff_s * 2**k
    timeout_s: float = FETCH_DEFAULTS["timeout_s"]  # connect/read timeout of one request

    def __post_init__(self):
        """Refuse a value outside the config schema's bounds (retries -1, connections 0, ...) before any transfer."""
        for field in fields(self):
            value, kind = getattr(self, field.name), schema_number(f"fetch.{field.name}")
            try:
                accepted = kind(value) == value  # 2.5 or "3" for an integer: refused too
            except argparse.ArgumentTypeError:
                accepted = False
            if not accepted:
                raise FetchError(f"fetch settings: expected {kind.wanted}, got {value!r}")

    @classmethod
    def from_config(cls, values: dict | None) -> "FetchSettings":
        return cls(**(values or {}))


def is_url(source: str) -> bool:
    """True for a remote source: http(s):// or s3:// (anything else is a local directory)."""
    return source.startswith(("http://", "https://", "s3://"))


def source_location(source: str, name: str) -> str:
    """URL or local path of a file at the source."""
    return source.rstrip("/") + "/" + name if is_url(source) else os.path.join(source, name)


def validator_path(partial: Path) -> Path:
    """Sidecar of a partial download: the ETag or Last-Modified it was started from."""
    return partial.with_name(partial.name + ".validator")


def _range_header(start: int, end: int | None) -> str:
    """Range header value: a suffix (start < 0), an open end (end None) or [start, end)."""
    if start < 0:
        return f"bytes={start}"
    return f"bytes={start}-" if end is None else f"bytes={start}-{end - 1}"


class Source:
    """Files of one source; subclasses implement `_get(name, start, end)` -> (file size, start, bytes)."""

    def __init__(self, source: str, settings: FetchSettings):
        self.source, self.settings = source, settings
        self.bytes_received = 0
        self._lock = threading.Lock()

    def locate(self, name: str) -> str:
        return source_location(self.source, name)

    def _count(self, size: int) -> None:
        with self._lock:
            self.bytes_received += size

    def _retrying(self, name: str, action):
        """Run action(), retrying transient failures with exponential backoff."""
        for attempt in range(self.settings.retries + 1):
            try:
                return action()
            except _Transient as error:
                if attempt == self.settings.retries:
                    raise FetchError(
                        f"{self.locate(name)}: failed after {attempt + 1} tries ({error}); "
                        "check the network or the config key source"
                    ) from error
                time.sleep(self.settings.backoff_s * 2**attempt)

    def tail(self, name: str) -> tuple[int, int, bytes]:
        """(file size, offset, bytes) of the last TAIL_BYTES of a file; RangeIgnored if ranges are unavailable."""
        return self._retrying(name, lambda: self._get(name, -TAIL_BYTES, None))

    def read_range(self, name: str, start: int, end: int) -> bytes:
        """Bytes [start, end) of a file."""
        return self._retrying(name, lambda: self._get(name, start, end)[2])

    def read_all(self, name: str) -> bytes:
        """A whole (small) file, e.g. a metadata CSV."""
        return self._retrying(name, lambda: self._get(name, 0, None)[2])


class LocalSource(Source):
    def _get(self, name, start, end):
        path = self.locate(name)
        try:
            with open(path, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                start = max(size + start, 0) if start < 0 else start
                handle.seek(start)
                data = handle.read((size if end is None else end) - start)
        except FileNotFoundError as error:
            raise NotFound(f"{path}: not found; check the config key source") from error
        self._count(len(data))
        return size, start, data


def _raise_for_http_error(error: urllib.error.HTTPError, url: str):
    """5xx, 408, 429: worth a retry; anything else (404 above all) is final."""
    if error.code >= 500 or error.code in (408, 429):
        raise _Transient(f"HTTP {error.code}") from error
    kind = NotFound if error.code in (404, 410) else FetchError
    raise kind(
        f"{url}: HTTP {error.code} {error.reason}; check the config key source (is the file at this mirror?)"
    ) from error


TRANSIENT_ERRORS = (urllib.error.URLError, TimeoutError, socket.timeout, ConnectionError, http.client.HTTPException)
UNREACHABLE_ERRORS = (ConnectionRefusedError, socket.gaierror)  # retrying cannot help: fail at once


def _unreachable(error: BaseException, url: str) -> FetchError | None:
    """A final FetchError where error comes from a refused connection or a failed host name lookup, else None."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, UNREACHABLE_ERRORS):
            what = (
                "connection refused"
                if isinstance(error, ConnectionRefusedError)
                else f"cannot resolve the host name ({error.strerror or error})"
            )
            return FetchError(f"{url}: {what}; check the config key source (is the server up and the URL right?)")
        reason = getattr(error, "reason", None)
        error = reason if isinstance(reason, BaseException) else error.__cause__ or error.__context__
    return None


class HttpSource(Source):
    """An HTTP(S) base URL: the Broad's server or any mirror with the same layout."""

    def _open(self, url: str, headers: dict):
        request = urllib.request.Request(url, headers={"User-Agent": "cellvae", **headers})
        try:
            return urllib.request.urlopen(request, timeout=self.settings.timeout_s)
        except urllib.error.HTTPError as error:
            if error.code == 416:
                return error
            _raise_for_http_error(error, url)
        except TRANSIENT_ERRORS as error:
            raise _unreachable(error, url) or _Transient(str(error)) from error

    def _read_body(self, response, expected: int | None) -> bytes:
        try:
            data = response.read()
        except TRANSIENT_ERRORS as error:
            raise _Transient(str(error)) from error
        finally:
            response.close()
        self._count(len(data))
        if expected is not None and len(data) != expected:
            raise _Transient(f"short body: {len(data)} of {expected} bytes")
        return data

    def read_all(self, name):
        def whole():
            response = self._open(self.locate(name), {})
            length = response.headers.get("Content-Length")
            return self._read_body(response, None if length is None else int(length))

        return self._retrying(name, whole)

    def _get(self, name, start, end):
        url = self.locate(name)
        wanted = _range_header(start, end)
        response = self._open(url, {"Range": wanted})
        if response.status == 416:
            response.close()
            raise FetchError(
                f"{url}: byte range {wanted} is beyond the end of the file; has it changed? rerun, or check the mirror"
            )
        if response.status != 206:
            response.close()
            raise RangeIgnored(url)
        match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", response.headers.get("Content-Range", ""))
        if match is None:
            response.close()
            raise _Transient(f"bad Content-Range {response.headers.get('Content-Range')!r}")
        first, last, size = map(int, match.groups())
        if start >= 0 and first != start:
            response.close()
            raise _Transient(f"asked {wanted}, got bytes {first}-{last}")
        return size, first, self._read_body(response, last - first + 1)

    def download(self, name: str, destination: Path) -> None:
        """The whole file into destination, continuing a partial destination where the server allows."""
        self._retrying(name, lambda: self._stream(name, destination))

    def _stream(self, name, destination):
        """Download (or continue) the whole file; the validator sidecar guards against mixing versions."""
        url, sidecar = self.locate(name), validator_path(destination)
        have = destination.stat().st_size if destination.exists() else 0
        validator = sidecar.read_text() if have and sidecar.exists() else ""
        headers = {"Range": f"bytes={have}-", "If-Range": validator} if have and validator else {}
        response = self._open(url, headers)
        if response.status == 416:
            response.close()
            total = response.headers.get("Content-Range", "").rpartition("/")[2]
            if total == str(have):
                return
            destination.unlink()
            raise _Transient(f"a partial file of {have} bytes does not fit the file of {total} bytes: restarting")
        if response.status == 200 and have:
            print(
                f"{url}: the server cannot continue a download (no byte ranges, or the file changed): "
                f"restarting it from byte 0, discarding {have} bytes",
                flush=True,
            )
            have = 0
        if response.status == 200:
            sidecar.write_text(response.headers.get("ETag") or response.headers.get("Last-Modified") or "")
        length = response.headers.get("Content-Length")
        expected = have + int(length) if length is not None else None
        try:
            with response, open(destination, "ab" if have else "wb") as out:
                for block in iter(lambda: response.read(CHUNK), b""):
                    out.write(block)
                    self._count(len(block))
        except TRANSIENT_ERRORS as error:
            raise _Transient(str(error)) from error
        if expected is not None and destination.stat().st_size != expected:
            raise _Transient(f"download ended at {destination.stat().st_size} of {expected} bytes")


class S3Source(Source):
    """s3://bucket/prefix through boto3: credentials from the standard AWS chain, endpoint from
    AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL when set."""

    def __init__(self, source, settings):
        super().__init__(source, settings)
        import boto3
        from botocore.config import Config

        self.bucket, _, self.prefix = source[len("s3://") :].partition("/")
        self.client = boto3.client(
            "s3",
            config=Config(
                connect_timeout=settings.timeout_s,
                read_timeout=settings.timeout_s,
                max_pool_connections=max(settings.connections, 10),
                retries={"max_attempts": 1},
            ),
        )

    def _key(self, name):
        return f"{self.prefix.rstrip('/')}/{name}" if self.prefix.strip("/") else name

    def _get(self, name, start, end):
        from botocore.exceptions import BotoCoreError, ClientError

        wanted = _range_header(start, end)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(name), Range=wanted)
            data = response["Body"].read()
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if status >= 500 or code in ("SlowDown", "RequestTimeout", "InternalError"):
                raise _Transient(code or str(status)) from error
            kind = NotFound if status == 404 or code in ("NoSuchKey", "NoSuchBucket") else FetchError
            raise kind(
                f"{self.locate(name)}: S3 {code or status}; check the config key source and the AWS credentials"
            ) from error
        except (BotoCoreError, *TRANSIENT_ERRORS) as error:
            raise _unreachable(error, self.locate(name)) or _Transient(str(error)) from error
        self._count(len(data))
        first, last, size = map(int, re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", response["ContentRange"]).groups())
        if len(data) != last - first + 1:
            raise _Transient(f"short body: {len(data)} of {last - first + 1} bytes")
        return size, first, data


def open_source(source: str, settings: FetchSettings | None = None) -> Source:
    settings = settings or FetchSettings()
    if source.startswith("s3://"):
        return S3Source(source, settings)
    return (HttpSource if is_url(source) else LocalSource)(source, settings)


class RangedFile(io.RawIOBase):
    """Read-only, seekable view of a source file: reads come from added spans, the rest is fetched."""

    def __init__(self, source: Source, name: str, size: int, spans: dict[int, bytes] | None = None):
        super().__init__()
        self.source, self.name, self.size = source, name, size
        self.spans = dict(spans or {})
        self.position = 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self.position

    def seek(self, offset, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise OSError(f"seek before the start of {self.name}")
        self.position = base + offset
        return self.position

    def read(self, size=-1):
        end = self.size if size is None or size < 0 else min(self.size, self.position + size)
        data = self._bytes(self.position, end) if end > self.position else b""
        self.position += len(data)
        return data

    def readinto(self, buffer):
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _bytes(self, start: int, end: int) -> bytes:
        """Bytes [start, end): from the spans where they cover it, fetching each missing stretch."""
        pieces, position = [], start
        while position < end:
            covering = [(s, d) for s, d in self.spans.items() if s <= position < s + len(d)]
            if covering:
                span_start, data = covering[0]
                piece = data[position - span_start : end - span_start]
            else:
                following = [s for s in self.spans if position < s < end]
                piece = self.source.read_range(self.name, position, min(following, default=end))
                if not piece:
                    raise FetchError(
                        f"{self.source.locate(self.name)}: ends before byte {position} "
                        f"of its {self.size}; has it changed? rerun"
                    )
            pieces.append(piece)
            position += len(piece)
        return b"".join(pieces)
