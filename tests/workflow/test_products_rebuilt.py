"""Every product of the workflow is a target of rule all (issue 31): after a complete tiny run, deleting any one
of them (a model, a response table, a figure, a folder, the selection) makes the next run rebuild it, and
`--summary` lists none as missing. Snakemake rebuilds a deleted file only when a target needs it and is itself
out of date: a product that only feeds an up-to-date file is otherwise left missing ("Nothing to be done")."""

import shutil

import pytest

from cellvae.testing.workflow import CELLPROFILER, printed_jobs, snakemake, summary_rows, tiny_config

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CELLPROFILER.exists(), reason=f"CellProfiler not installed at {CELLPROFILER}: run make setup"
    ),
]

# One product of each kind, by the rule that writes it ({plate}: the first plate, {model}: the only model);
# test_every_rule_has_a_product_deleted_here keeps the list covering every rule of the run.
DELETED = [
    ("synthesize_bbbc021", "results/synthetic/bbbc021/BBBC021_v1_images_{plate}.zip"),
    ("fetch_metadata", "results/metadata/sources.json"),
    ("select_images", "results/metadata/selected_images.csv"),
    ("fetch_images", "results/fetch/{plate}/fetch.json"),
    ("fetch_images", "results/fetch/{plate}/images"),
    ("fetch_summary", "results/fetch/summary.csv"),
    ("illumination", "results/illumination/{plate}/illum_DAPI.npy"),
    ("illumination", "results/illumination/{plate}/quarantine.csv"),
    ("segmentation", "results/segmentation/{plate}/fields_summary.csv"),
    ("segmentation", "results/segmentation/{plate}/measurements"),
    ("png_scale", "results/png/scale.json"),
    ("compose_pngs", "results/png/{plate}/qc.csv"),
    ("compose_pngs", "results/png/{plate}/cells"),
    ("dataset", "results/dataset/shards"),
    ("train_vae", "results/models/{model}/model.keras"),
    ("train_vae", "results/models/{model}/history.csv"),
    ("analyze_model", "results/analysis/{model}/latent.json"),
    ("analyze_model", "results/analysis/{model}/generated.png"),
    ("compare_models", "results/analysis/training_speed.png"),
    ("compare_models", "results/analysis/model_vs_baselines.png"),
    ("cost", "results/cost/cost.csv"),
    ("response_profiles", "results/response/{model}/moa.json"),
    ("response_profiles", "results/response/{model}/cells.csv.gz"),
    ("response_profiles", "results/response/{model}/embedding.png"),
    ("response_profiles", "results/response/{model}/wells.csv"),
    ("compare_responses", "results/response/summary.csv"),
    ("glance", "results/glance.html"),
]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("products")
    config = tiny_config()
    snakemake(workdir, "--cores", 2, config=config, timeout=3600)
    return workdir, config


def product(config, pattern):
    return pattern.format(plate=config["synthetic"]["plates"][0], model=f"z{config['latent_dims'][0]}")


def summary(workdir, config):
    return summary_rows(snakemake(workdir, "-n", "--summary", config=config).stdout)


def test_a_complete_run_lists_no_product_as_missing(finished_run):
    workdir, config = finished_run
    rows = summary(workdir, config)
    assert len(rows) > 50  # every product of every stage, not only the final tables
    missing = [row["output_file"] for row in rows if row["status"] == "missing"]
    assert not missing, f"--summary lists as missing: {missing}"
    assert all(row["plan"] == "no update" for row in rows), [row for row in rows if row["plan"] != "no update"]
    assert "Nothing to be done" in snakemake(workdir, "-n", config=config).stdout


def test_every_rule_has_a_product_deleted_here(finished_run):
    workdir, config = finished_run
    writers = {row["rule"] for row in summary(workdir, config)}
    assert writers == {rule for rule, _ in DELETED}, "DELETED lacks a product of each rule of the run"


@pytest.mark.parametrize(("rule", "pattern"), DELETED, ids=[pattern for _, pattern in DELETED])
def test_a_deleted_product_is_planned_to_be_rebuilt(finished_run, tmp_path, rule, pattern):
    """Each product moved aside (and back, keeping its time, so the run stays complete): a dry run plans the job
    that writes it, because it is missing."""
    workdir, config = finished_run
    path = product(config, pattern)
    aside = tmp_path / "aside"
    shutil.move(workdir / path, aside)
    try:
        output = snakemake(workdir, "-n", config=config).stdout
        rows = summary(workdir, config)
    finally:
        shutil.move(aside, workdir / path)
    assert "Nothing to be done" not in output, f"deleting {path} plans nothing"
    writers = [job for job in printed_jobs(output) if job["rule"] == rule]
    assert writers, f"deleting {path} does not plan {rule}:\n{output[-3000:]}"
    reasons = [job.get("reason", "") for job in writers]
    assert any(reason.startswith("Missing output files") and path in reason for reason in reasons), reasons
    row = next(row for row in rows if row["output_file"] == path)
    assert row["status"] == "missing" and row["plan"] == "update pending", row


def test_a_rerun_restores_deleted_products(finished_run):
    """Deleted for real: the run rebuilds each, and then has nothing to do."""
    workdir, config = finished_run
    deleted = [
        workdir / product(config, pattern)
        for pattern in (
            "results/analysis/{model}/latent.json",
            "results/response/{model}/moa.json",
            "results/response/{model}/cells.csv.gz",
            "results/response/{model}/traversals.png",
        )
    ]
    for path in deleted:
        path.unlink()
    snakemake(workdir, "--cores", 2, config=config)
    assert all(path.is_file() and path.stat().st_size > 0 for path in deleted)
    assert "Nothing to be done" in snakemake(workdir, "-n", config=config).stdout
    assert not [row for row in summary(workdir, config) if row["status"] == "missing"]
