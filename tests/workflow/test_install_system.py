"""envs/install_system.sh: the pipeline group (make setup) holds no test server; without root and sudo it names
what to install and installs nothing.

The script runs as an unprivileged user (nobody, where the tests run as root) with a PATH of its own: a stand-in
dpkg-query plays the package database (nothing or everything installed), stand-in sudo and apt-get record what
they were asked, and no javac, so every run is the same on any machine and installs nothing."""

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from cellvae.testing.workflow import REPO

SCRIPT = REPO / "envs" / "install_system.sh"
PIPELINE = ["python3.11-venv", "graphviz", "gcc", "libc6-dev", "openjdk-17-jdk-headless"]
TEST_SERVERS = ["nginx", "slurmctld", "slurmd", "slurm-client", "munge", "radosgw", "ceph-mon", "ceph-osd", "chromium"]
NOBODY = 65534


@pytest.fixture
def bin_dir():
    """A PATH folder readable by nobody: grep and id, a dpkg-query stand-in; sudo and apt-get added per test."""
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        folder.chmod(0o777)
        for tool in ("grep", "id", "env"):
            (folder / tool).symlink_to(shutil.which(tool))
        yield folder


def stand_in(folder: Path, name: str, body: str) -> None:
    (folder / name).write_text(f"#!/bin/bash\n{body}\n")
    (folder / name).chmod(0o755)


def installed(folder: Path, everything: bool) -> None:
    status = "install ok installed" if everything else "unknown ok not-installed"
    stand_in(folder, "dpkg-query", f"printf '{status}'")


def recorder(folder: Path, name: str, then: str = "") -> Path:
    """A stand-in that appends its arguments to folder/name.log (then runs `then`)."""
    log = folder / f"{name}.log"
    stand_in(folder, name, f'echo "$*" >> {log}\n{then}')
    return log


def named(package: str, text: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(package)}(?![\w-])", text) is not None


def run_as_user(folder: Path, group: str):
    """A copy of the script (the checkout may sit in a folder nobody can read) as an unprivileged user, with
    only folder on PATH."""
    demote = {"user": NOBODY, "group": NOBODY, "extra_groups": []} if os.geteuid() == 0 else {}
    script = shutil.copy(SCRIPT, folder / SCRIPT.name)
    return subprocess.run(
        [shutil.which("bash"), str(script), group],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=folder,
        env={"PATH": str(folder), "HOME": str(folder)},
        **demote,
    )


@pytest.mark.parametrize(
    "group, packages, others", [("pipeline", PIPELINE, TEST_SERVERS), ("test", TEST_SERVERS, PIPELINE)]
)
def test_without_root_or_sudo_it_names_the_packages_and_installs_nothing(bin_dir, group, packages, others):
    installed(bin_dir, everything=False)
    apt = recorder(bin_dir, "apt-get")
    result = run_as_user(bin_dir, group)
    assert result.returncode != 0 and result.stdout == ""
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1 and "no sudo" in message
    assert all(named(package, message) for package in packages)
    assert not any(named(package, message) for package in others)
    assert not apt.exists()


def test_with_sudo_it_installs_exactly_the_missing_packages_of_the_group(bin_dir):
    installed(bin_dir, everything=False)
    sudo = recorder(bin_dir, "sudo", then='exec "$@"')
    apt = recorder(bin_dir, "apt-get")
    result = run_as_user(bin_dir, "pipeline")
    assert result.returncode == 0, result.stderr
    assert apt.read_text().splitlines() == [
        "update -qq",
        "install -y -qq --no-install-recommends " + " ".join(PIPELINE),
    ]
    assert len(sudo.read_text().splitlines()) == 2


def test_a_jdk_on_path_serves(bin_dir):
    installed(bin_dir, everything=False)
    stand_in(bin_dir, "javac", "exit 0")
    result = run_as_user(bin_dir, "pipeline")
    assert "openjdk" not in result.stderr and "graphviz" in result.stderr


@pytest.mark.parametrize("group", ["pipeline", "test"])
def test_when_everything_is_installed_it_is_silent_and_instant(bin_dir, group):
    installed(bin_dir, everything=True)
    apt = recorder(bin_dir, "apt-get")
    started = time.monotonic()
    result = run_as_user(bin_dir, group)
    assert result.returncode == 0 and result.stdout == result.stderr == ""
    assert time.monotonic() - started < 5 and not apt.exists()


def test_an_unknown_group_is_refused(bin_dir):
    result = run_as_user(bin_dir, "everything")
    assert result.returncode == 2 and "pipeline|test" in result.stderr


def test_make_setup_installs_the_pipeline_group_and_make_test_adds_the_servers():
    """The Makefile wiring: setup → pipeline packages only; test → setup-test → the test servers."""
    plan = subprocess.run(
        ["make", "-n", "-B", "-C", str(REPO), "setup-test"], capture_output=True, text=True, timeout=60
    ).stdout
    assert "install_system.sh pipeline" in plan and "install_system.sh test" in plan
    setup = subprocess.run(
        ["make", "-n", "-B", "-C", str(REPO), "setup"], capture_output=True, text=True, timeout=60
    ).stdout
    assert "install_system.sh pipeline" in setup and "install_system.sh test" not in setup
    assert "link_profiles.sh" in setup
    test = subprocess.run(["make", "-n", "-C", str(REPO), "test"], capture_output=True, text=True, timeout=60).stdout
    assert "install_system.sh test" in test
