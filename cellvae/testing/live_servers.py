"""Real servers for the cluster and cloud tests (Slurm, Ceph radosgw on 127.0.0.1).

The start/stop scripts are in cellvae/testing/server_scripts/; each context manager stops what it started, also on
failure."""

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from cellvae.testing.workflow import CELLPROFILER

SERVERS = Path(__file__).resolve().parent / "server_scripts"


def require(*executables):
    """Skip (saying what to install) unless root and every executable is on PATH."""
    missing = [name for name in executables if shutil.which(name) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: run make setup")
    if os.geteuid() != 0:
        pytest.skip("the test servers run as root (slurmd, ceph): run the tests as root")
    if not CELLPROFILER.exists():
        pytest.skip(f"CellProfiler not installed at {CELLPROFILER}: run make setup")


def _run(script, *args, env=None):
    result = subprocess.run(
        ["bash", str(SERVERS / script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, **(env or {})},
    )
    if result.returncode != 0:
        raise RuntimeError(f"{script} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


@contextlib.contextmanager
def slurm_cluster(state_dir):
    """A single-node Slurm (fake GPU) on 127.0.0.1; yields the environment its clients need."""
    try:
        _run("start_slurm.sh", state_dir)
        yield {"SLURM_CONF": str(Path(state_dir) / "slurm.conf")}
    finally:
        _run("stop_slurm.sh", state_dir)


class RadosGateway:
    """Ceph (1 mon, 1 memstore OSD) + radosgw; restart() bounces only the S3 gateway, the data stays."""

    def __init__(self, state_dir, port, access_key, secret_key):
        self.state_dir, self.port = Path(state_dir), port
        self.endpoint = f"http://127.0.0.1:{port}"
        self.keys = {"S3_ACCESS_KEY": access_key, "S3_SECRET_KEY": secret_key}

    def start(self):
        """Start; once more from scratch if the monitor was not ready for the OSD (seen under heavy load)."""
        try:
            _run("start_ceph_rgw.sh", self.state_dir, self.port, env=self.keys)
        except RuntimeError:
            self.stop()
            _run("start_ceph_rgw.sh", self.state_dir, self.port, env=self.keys)

    def restart_gateway(self):
        _run("stop_ceph_rgw.sh", self.state_dir, "rgw")
        _run("start_ceph_rgw.sh", self.state_dir, self.port, "rgw")

    def stop(self):
        _run("stop_ceph_rgw.sh", self.state_dir)


@contextlib.contextmanager
def rados_gateway(state_dir, port, access_key, secret_key):
    gateway = RadosGateway(state_dir, port, access_key, secret_key)
    try:
        gateway.start()
        yield gateway
    finally:
        gateway.stop()
