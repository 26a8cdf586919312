"""A real nginx on 127.0.0.1 serving a folder, for fetch tests and benchmarks; its access log counts bytes."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

CONF = """
{user}
worker_processes 1;
pid {prefix}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    log_format bytes '$request_uri $status $body_bytes_sent "$http_range"';
    access_log {prefix}/access.log bytes;
    client_body_temp_path {prefix}/tmp; proxy_temp_path {prefix}/tmp; fastcgi_temp_path {prefix}/tmp;
    uwsgi_temp_path {prefix}/tmp; scgi_temp_path {prefix}/tmp;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location /slow/ {{ alias {root}/; limit_rate {slow_rate}; }}
        location /failing/ {{ return 503; }}
        location = /status {{ stub_status; access_log off; }}
    }}
}}
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Nginx:
    """nginx in the foreground (daemon off) serving root; /slow/ is root at slow_rate bytes/s per connection,
    /failing/ always answers 503. Use as a context manager; stop() ends it."""

    def __init__(self, root: Path, prefix: Path, slow_rate: int = 500_000):
        self.root, self.prefix, self.slow_rate = Path(root), Path(prefix), slow_rate
        self.binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not os.path.exists(self.binary):
            raise RuntimeError("nginx not installed: run `make setup` (envs/install_system.sh installs it)")
        self.process = None

    def start(self) -> "Nginx":
        (self.prefix / "tmp").mkdir(parents=True, exist_ok=True)
        for _ in range(5):  # the free port may be taken between probing and binding: try another
            self.port = _free_port()
            conf = self.prefix / "nginx.conf"
            conf.write_text(
                CONF.format(
                    user="user root;" if os.geteuid() == 0 else "",
                    prefix=self.prefix,
                    port=self.port,
                    root=self.root,
                    slow_rate=self.slow_rate,
                )
            )
            self.process = subprocess.Popen(
                [
                    self.binary,
                    "-p",
                    str(self.prefix),
                    "-c",
                    str(conf),
                    "-e",
                    str(self.prefix / "error.log"),
                    "-g",
                    "daemon off;",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.process.poll() is None:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                    return self
                except OSError:
                    time.sleep(0.05)
            self.stop()
        raise RuntimeError(f"nginx did not start; see {self.prefix / 'error.log'}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def log(self) -> Path:
        return self.prefix / "access.log"

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until nginx has no client connection but ours (so that every request is logged)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = urllib.request.urlopen(self.url + "status", timeout=5).read().decode()
            if status.startswith("Active connections: 1 "):
                return
            time.sleep(0.05)
        raise RuntimeError(f"nginx still busy after {timeout} s: {status}")

    def log_size(self) -> int:
        return self.log.stat().st_size if self.log.exists() else 0

    def requests(self, since: int = 0) -> list[tuple[str, int, int, str]]:
        """(uri, status, body bytes sent, Range header) of each request logged after byte `since` of the log."""
        if not self.log.exists():
            return []
        with open(self.log, "rb") as handle:
            handle.seek(since)
            lines = handle.read().decode().splitlines()
        rows = []
        for line in lines:
            uri, status, sent, wanted = line.split(" ", 3)
            rows.append((uri, int(status), int(sent), wanted.strip('"')))
        return rows
