"""Nothing of the user's is lost to the workflow: the synthetic generator writes only into a folder of its own
(rules/common.smk refuses any other `source` at parse time); a deterministic failure is reported once, not
retried (profiles/default); the rerun triggers config/README.md gives for a touched script leave finished work
alone."""

import hashlib
import os
import re

import pytest

from cellvae.data.synthetic import MARKER
from cellvae.testing.workflow import REPO, snakemake, tiny_config

SMALL = {"width": 64, "height": 64, "cells_per_field": 2, "sites_per_well": 1, "wells_per_compound": 1}
USER_FILES = ["BBBC021_v1_image.csv", "BBBC021_v1_moa.csv", "BBBC021_v1_images_Week1_22123.zip"]


def config(**changes):
    """The tests' tiny config with a smaller synthetic set (seconds to write)."""
    settings = tiny_config()
    settings["synthetic"] = {**settings["synthetic"], **SMALL}
    settings.update(changes)
    return settings


def contents(folder):
    """{name: sha256} of every file in a folder."""
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.iterdir())}


def user_mirror(folder):
    """A user's BBBC021 folder whose names the synthetic plates collide with."""
    folder.mkdir(parents=True)
    for name in USER_FILES:
        (folder / name).write_bytes(f"the user's own {name}\n".encode())
    return folder


def source_target(source, name="BBBC021_v1_moa.csv"):
    return os.path.join(source, name)


@pytest.mark.parametrize("inside", [True, False], ids=["relative", "absolute"])
def test_the_generator_never_writes_into_a_users_folder(tmp_path, inside):
    """Was: `--config source=/data/bbbc021` with the default config replaced the user's CSVs and zips."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    mirror = user_mirror(workdir / "mirror" if inside else tmp_path / "data" / "bbbc021")
    source = "mirror" if inside else str(mirror)
    before = contents(mirror)
    for args in [("-n",), ("--cores", "1", source_target(source))]:
        result = snakemake(workdir, *args, config=config(source=source), check=False)
        output = result.stdout + result.stderr
        assert result.returncode != 0, output[-3000:]
        assert f"config key source: {mirror} holds BBBC021_v1_image.csv, BBBC021_v1_images_Week1_22123.zip" in output
        assert "set synthetic.enabled false (--config 'synthetic={enabled: false}')" in output
        assert contents(mirror) == before
    # the way out the message gives reads the user's folder and writes nothing there
    result = snakemake(
        workdir, "-n", "--config", "synthetic={enabled: false}", config=config(source=source), check=False
    )
    assert "synthesize_bbbc021" not in result.stdout and contents(mirror) == before


@pytest.mark.slow
def test_the_generator_writes_its_own_folder_and_refuses_it_once_something_else_is_there(tmp_path):
    settings = config(source="results/synthetic/bbbc021")
    snakemake(tmp_path, "--cores", "1", source_target(settings["source"]), config=settings)
    folder = tmp_path / settings["source"]
    assert MARKER in contents(folder)
    # its own folder: planned again without a word, and rewritten when its settings change
    assert "Nothing to be done" in snakemake(tmp_path, "-n", source_target(settings["source"])).stdout
    settings["synthetic"]["seed"] = 7
    snakemake(tmp_path, "--cores", "1", source_target(settings["source"]), config=settings)
    # a file of the user's among them: refused, and kept
    (folder / "notes.txt").write_text("mine")
    result = snakemake(tmp_path, "-n", check=False)
    assert result.returncode != 0 and f"config key source: {folder} holds notes.txt, which" in result.stdout
    assert (folder / "notes.txt").read_text() == "mine"


def test_a_deterministic_failure_is_reported_once_not_retried(tmp_path):
    """Was: restart-times: 1 in profiles/default ran a failing select_images twice, its error printed twice. (An
    unknown compound of the synthetic set is refused at DAG time now: an unknown MoA still fails in the job.)"""
    result = snakemake(
        tmp_path,
        "--cores",
        "1",
        "results/metadata/selected_images.csv",
        config=config(moas=["Microtubule stabilisers"]),
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert output.count("Error in rule select_images") == 1, output[-4000:]
    log = (tmp_path / "results/logs/select_images.log").read_text()
    assert "config key moas: unknown moa 'Microtubule stabilisers'" in log
    assert not (tmp_path / "results/metadata/selected_images.csv").exists()


def test_the_documented_rerun_triggers_leave_work_alone_when_only_a_scripts_time_changed(tmp_path):
    """Snakemake 9 reruns a script: rule whose script file is newer than its outputs (times, not contents):
    config/README.md says which triggers to use instead; they are checked here."""
    triggers = re.search(r"--rerun-triggers ([\w -]+)`", (REPO / "config" / "README.md").read_text())
    assert triggers, "config/README.md gives no --rerun-triggers for a touched script"
    settings = config()
    target = source_target(settings["source"])
    snakemake(tmp_path, "--cores", "1", target, config=settings)
    for path in (tmp_path / settings["source"]).iterdir():  # as after `touch scripts/synthesize_bbbc021.py`
        os.utime(path, (1_000_000_000, 1_000_000_000))
    assert "Code has changed since last execution" in snakemake(tmp_path, "-n", target).stdout
    kept = snakemake(tmp_path, "-n", target, "--rerun-triggers", *triggers[1].split())
    assert "Nothing to be done" in kept.stdout, kept.stdout[-3000:]
