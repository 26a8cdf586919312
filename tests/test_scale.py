"""Planning at scale: a local source without the image archives, and a URL source, dry-run the whole DAG."""

import re
import shutil

import pytest
from snakemake_runner import planned_jobs, snakemake, tiny_config

from cellvae.fetch import archive_name
from cellvae.synthetic import generate_mini_bbbc021

PLATES = ["Week1_22123", "Week4_27481"]


@pytest.fixture(scope="module")
def no_archives(tmp_path_factory):
    """A local source with the metadata CSVs but no image archives, and a workdir whose selection is made."""
    root = tmp_path_factory.mktemp("scale")
    config = tiny_config()
    settings = {
        **config["synthetic"],
        "plates": PLATES,
        "width": 64,
        "height": 64,
        "cells_per_field": 1,
        "wells_per_compound": 1,
        "sites_per_well": 1,
    }
    source = root / "source"
    archives = {plate: source / archive_name(plate) for plate in PLATES}
    source.mkdir()
    generate_mini_bbbc021(
        settings, image_csv=source / "BBBC021_v1_image.csv", moa_csv=source / "BBBC021_v1_moa.csv", archives=archives
    )
    for archive in archives.values():
        archive.unlink()
    config.update(source=str(root / "source"), synthetic={**settings, "enabled": False})
    workdir = root / "work"
    workdir.mkdir()
    snakemake(workdir, "--cores", 1, "select_images", config=config)
    return workdir, config


def test_local_source_without_archives_dry_runs(no_archives):
    workdir, config = no_archives
    jobs = planned_jobs(workdir, config=config)
    assert {rule: jobs.get(rule) for rule in ["fetch_images", "illumination", "segmentation", "compose_pngs"]} == {
        "fetch_images": 2,
        "illumination": 2,
        "segmentation": 2,
        "compose_pngs": 2,
    }


def test_missing_archive_fails_at_fetch_time_naming_it(no_archives):
    workdir, config = no_archives
    plate = PLATES[0]
    result = snakemake(workdir, "--cores", 1, f"results/fetch/{plate}/fetch.json", config=config, check=False)
    assert result.returncode != 0 and not (workdir / f"results/fetch/{plate}/fetch.json").exists()
    log = (workdir / f"results/logs/fetch_images/{plate}.log").read_text()
    assert re.search(rf"plate {plate}: archive \S*BBBC021_v1_images_{plate}\.zip not found", log), log[-2000:]


def test_url_source_dry_runs_once_the_metadata_is_there(no_archives, tmp_path):
    workdir, config = no_archives
    shutil.copytree(workdir / "results", tmp_path / "results")  # the metadata rules' outputs, logs, benchmarks
    url_config = {**config, "source": "http://127.0.0.1:9/bbbc021/"}  # never contacted by a dry run
    jobs = planned_jobs(tmp_path, config=url_config)
    assert "fetch_metadata" not in jobs and "select_images" not in jobs
    assert jobs["fetch_images"] == 2 and jobs["segmentation"] == 2
