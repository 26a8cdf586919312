"""Planning at scale: a local source dry-runs the whole DAG, and a URL source once the metadata is there; a local
source that lost a selected plate's archive is refused when the DAG is built, naming it."""

import shutil

from cellvae.data.fetch import archive_name
from cellvae.testing.workflow import PLATES, planned_jobs, snakemake


def test_local_source_dry_runs(selection):
    workdir, config = selection
    jobs = planned_jobs(workdir, config=config)
    assert {rule: jobs.get(rule) for rule in ["fetch_images", "illumination", "segmentation", "compose_pngs"]} == {
        "fetch_images": 2,
        "illumination": 2,
        "segmentation": 2,
        "compose_pngs": 2,
    }


def test_a_missing_archive_is_refused_when_the_dag_is_built_naming_it(selection, tmp_path):
    workdir, config = selection
    source = tmp_path / "source"
    shutil.copytree(config["source"], source)
    (source / archive_name(PLATES[0])).unlink()
    result = snakemake(workdir, "-n", config={**config, "source": str(source)}, check=False)
    assert result.returncode != 0 and archive_name(PLATES[0]) in result.stderr + result.stdout
    assert not (workdir / f"results/fetch/{PLATES[0]}").exists()


def test_url_source_dry_runs_once_the_metadata_is_there(selection, tmp_path):
    workdir, config = selection
    shutil.copytree(workdir / "results", tmp_path / "results")  # the metadata rules' outputs, logs, benchmarks
    url_config = {**config, "source": "http://127.0.0.1:9/bbbc021/"}  # never contacted by a dry run
    jobs = planned_jobs(tmp_path, config=url_config)
    assert "fetch_metadata" not in jobs and "select_images" not in jobs
    assert jobs["fetch_images"] == 2 and jobs["segmentation"] == 2
