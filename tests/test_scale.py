"""Planning at scale: a local source without the image archives, and a URL source, dry-run the whole DAG."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cellvae.synthetic import generate_mini_bbbc021

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
PLATES = ["Week1_22123", "Week4_27481"]


def snakemake(workdir, config, *args, check=True):
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    command = [
        str(SNAKEMAKE),
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(workdir / "config.yaml"),
        "--cores",
        "1",
        *args,
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


def planned(workdir, config, *args):
    """{rule: count} of a dry run."""
    output = snakemake(workdir, config, "-n", "--quiet", "rules", *args).stdout
    return {
        match[1]: int(match[2])
        for match in re.finditer(r"^(\w+)\s+(\d+)$", output, re.MULTILINE)
        if match[1] != "total"
    }


@pytest.fixture(scope="module")
def no_archives(tmp_path_factory):
    """A local source with the metadata CSVs but no image archives, and a workdir whose selection is made."""
    root = tmp_path_factory.mktemp("scale")
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    settings = {
        **config["synthetic"],
        "plates": PLATES,
        "width": 64,
        "height": 64,
        "cells_per_field": 1,
        "wells_per_compound": 1,
        "sites_per_well": 1,
    }
    generate_mini_bbbc021(root / "source", settings)
    for archive in (root / "source").glob("*.zip"):
        archive.unlink()
    config.update(source=str(root / "source"), synthetic={**settings, "enabled": False})
    config["cellprofiler"].update({key: str(REPO / path) for key, path in config["cellprofiler"].items()})
    workdir = root / "work"
    workdir.mkdir()
    snakemake(workdir, config, "select_images")
    return workdir, config


def test_local_source_without_archives_dry_runs(no_archives):
    workdir, config = no_archives
    jobs = planned(workdir, config)
    assert {rule: jobs.get(rule) for rule in ["fetch_images", "illumination", "segmentation", "compose_pngs"]} == {
        "fetch_images": 2,
        "illumination": 2,
        "segmentation": 2,
        "compose_pngs": 2,
    }


def test_missing_archive_fails_at_fetch_time_naming_it(no_archives):
    workdir, config = no_archives
    plate = PLATES[0]
    result = snakemake(workdir, config, f"results/fetch/{plate}/fetch.json", check=False)
    assert result.returncode != 0 and not (workdir / f"results/fetch/{plate}/fetch.json").exists()
    log = (workdir / f"results/logs/fetch_images/{plate}.log").read_text()
    assert re.search(rf"plate {plate}: archive \S*BBBC021_v1_images_{plate}\.zip not found", log), log[-2000:]


def test_url_source_dry_runs_once_the_metadata_is_there(no_archives, tmp_path):
    workdir, config = no_archives
    shutil.copytree(workdir / "results", tmp_path / "results")  # the metadata rules' outputs, logs, benchmarks
    url_config = {**config, "source": "http://127.0.0.1:9/bbbc021/"}  # never contacted by a dry run
    jobs = planned(tmp_path, url_config)
    assert "fetch_metadata" not in jobs and "select_images" not in jobs
    assert jobs["fetch_images"] == 2 and jobs["segmentation"] == 2
