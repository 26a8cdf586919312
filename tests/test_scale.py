"""Planning at scale: a local source dry-runs the whole DAG, and a URL source once the metadata is there; a local
source that lost a selected plate's archive is refused when the DAG is built, naming it."""

import shutil

import pytest
from snakemake_runner import planned_jobs, snakemake, tiny_config

from cellvae.fetch import archive_name
from cellvae.synthetic import generate_mini_bbbc021

PLATES = ["Week1_22123", "Week4_27481"]


@pytest.fixture(scope="module")
def selected(tmp_path_factory):
    """A local source (metadata CSVs and image archives) and a workdir whose selection is made."""
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
    config.update(source=str(root / "source"), synthetic={**settings, "enabled": False})
    workdir = root / "work"
    workdir.mkdir()
    snakemake(workdir, "--cores", 1, "select_images", config=config)
    return workdir, config


def test_local_source_dry_runs(selected):
    workdir, config = selected
    jobs = planned_jobs(workdir, config=config)
    assert {rule: jobs.get(rule) for rule in ["fetch_images", "illumination", "segmentation", "compose_pngs"]} == {
        "fetch_images": 2,
        "illumination": 2,
        "segmentation": 2,
        "compose_pngs": 2,
    }


def test_a_missing_archive_is_refused_when_the_dag_is_built_naming_it(selected, tmp_path):
    workdir, config = selected
    source = tmp_path / "source"
    shutil.copytree(config["source"], source)
    (source / archive_name(PLATES[0])).unlink()
    result = snakemake(workdir, "-n", config={**config, "source": str(source)}, check=False)
    assert result.returncode != 0 and archive_name(PLATES[0]) in result.stderr + result.stdout
    assert not (workdir / f"results/fetch/{PLATES[0]}").exists()


def test_url_source_dry_runs_once_the_metadata_is_there(selected, tmp_path):
    workdir, config = selected
    shutil.copytree(workdir / "results", tmp_path / "results")  # the metadata rules' outputs, logs, benchmarks
    url_config = {**config, "source": "http://127.0.0.1:9/bbbc021/"}  # never contacted by a dry run
    jobs = planned_jobs(tmp_path, config=url_config)
    assert "fetch_metadata" not in jobs and "select_images" not in jobs
    assert jobs["fetch_images"] == 2 and jobs["segmentation"] == 2
