"""End to end: the real Snakemake DAG with CellProfiler and TensorFlow on a tiny synthetic config."""

import json
import subprocess
import zipfile

import pandas as pd
import pytest

from cellvae.testing.workflow import CELLPROFILER, planned_jobs, snakemake, tiny_config

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CELLPROFILER.exists(), reason=f"CellProfiler not installed at {CELLPROFILER}: run make setup"
    ),
]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("e2e")
    config = tiny_config()
    snakemake(workdir, "--cores", 2, config=config, timeout=3600)
    return workdir, config


def test_whole_dag_runs_and_writes_every_output(finished_run):
    workdir, config = finished_run
    plates = config["synthetic"]["plates"]
    selected = pd.read_csv(workdir / "results/metadata/selected_images.csv")
    assert sorted(selected["plate"].unique()) == sorted(plates)
    assert set(selected.loc[selected["train"], "compound"]) == {"DMSO"}
    assert set(selected.loc[selected["response"], "compound"]) == {"DMSO", config["synthetic"]["treated"]["compound"]}
    for plate in plates:
        assert (workdir / f"results/illumination/{plate}/illum_DAPI.npy").exists()
        cells = pd.read_csv(workdir / f"results/segmentation/{plate}/cells.csv")
        assert len(cells) >= 10
        assert len(list((workdir / f"results/png/{plate}/cells").glob("*.png"))) > 0
    manifest = pd.read_csv(workdir / "results/dataset/manifest.csv")
    assert set(manifest["split"]) == {"train", "validation"}
    wells = manifest["plate"] + "/" + manifest["well"]
    assert not set(wells[manifest.split == "train"]) & set(wells[manifest.split == "validation"])
    metrics = pd.read_csv(workdir / "results/analysis/metrics.csv").set_index("method")
    assert metrics.index.tolist() == ["zero", "mean", "median", "vae", "pca-4"]
    assert metrics.loc["vae", "latent_dim"] == 4 and 0 < metrics.loc["vae", "similarity_s"] <= 1
    assert metrics["s_cell"].notna().all() and (metrics.loc["pca-4", "mse"] < metrics.loc["mean", "mse"])
    assert json.loads((workdir / "results/png/scale.json").read_text())["scale"] == 0.3
    png_manifest = pd.read_csv(workdir / f"results/png/{plates[0]}/cells.csv")
    assert (png_manifest["scale"] == 0.3).all()
    assert (workdir / "results/models/z4/model.keras").exists()
    for figure in [
        "reconstructions.png",
        "loss_curves.png",
        "model_vs_baselines.png",
        "z4/generated.png",
        "z4/latent_histograms.png",
    ]:
        assert (workdir / "results/analysis" / figure).stat().st_size > 1000
    assert set(manifest["compound"]) == {"DMSO"}
    moa = json.loads((workdir / "results/response/z4/moa.json").read_text())
    assert moa["nsc"]["value"] is None and "1 compound" in moa["nsc_undefined"] and moa["n_treatments"] == 1
    assert pd.read_csv(workdir / "results/response/summary.csv")["mean_accuracy_vs_dmso"].iloc[0] > 0.5
    snakemake(workdir, "--report", workdir / "report.html", config=config)
    report = (workdir / "report.html").read_text(errors="ignore")
    for figure in [
        "reconstructions.png",
        "model_vs_baselines.png",
        "loss_curves.png",
        "generated.png",
        "latent_histograms.png",
        "crop_sizes.png",
        "embedding.png",
        "cost.csv",
        "metrics.csv",
        "glance.html",
        "Results at a glance",
    ]:
        assert figure in report, figure


def test_second_run_has_nothing_to_do(finished_run):
    workdir, config = finished_run
    assert "Nothing to be done" in snakemake(workdir, "-n", config=config).stdout


def test_adding_a_latent_dim_adds_only_its_jobs(finished_run):
    workdir, config = finished_run
    jobs = planned_jobs(workdir, config={**config, "latent_dims": [4, 6]})
    assert jobs == {
        "train_vae": 1,
        "analyze_model": 1,
        "compare_models": 1,
        "response_profiles": 1,
        "compare_responses": 1,
        "cost": 1,
        "glance": 1,
        "all": 1,
    }


def test_model_variants_train_side_by_side_with_their_settings(finished_run):
    workdir, config = finished_run
    variants = {**config, "models": {"thesis": {"architecture": "thesis", "reconstruction_loss": "mse"}, "default": {}}}
    jobs = planned_jobs(workdir, config=variants)
    assert jobs == {
        "train_vae": 2,
        "analyze_model": 2,
        "compare_models": 1,
        "response_profiles": 2,
        "compare_responses": 1,
        "cost": 1,
        "glance": 1,
        "all": 1,
    }
    output = snakemake(workdir, "-n", "--printshellcmds", config=variants).stdout
    assert "results/models/thesis-z4/model.keras" in output and "results/models/default-z4/model.keras" in output
    bad = {**config, "models": {"thesis": {"architecture": "thesis", "lossfn": "mse"}}}
    result = snakemake(workdir, "-n", config=bad, check=False)
    assert (
        result.returncode != 0
        and "config key models.thesis: lossfn not a train: setting" in result.stdout + result.stderr
    )


def test_profile_setting_change_reruns_only_the_profile_stage(finished_run):
    workdir, config = finished_run
    response = {**config["response"], "analysis": {**config["response"]["analysis"], "normalize": "none"}}
    jobs = planned_jobs(workdir, config={**config, "response": response})
    assert jobs == {"response_profiles": 1, "compare_responses": 1, "cost": 1, "glance": 1, "all": 1}  # new hours


def test_png_size_change_reruns_pngs_onward_not_cellprofiler(finished_run):
    workdir, config = finished_run
    jobs = planned_jobs(workdir, config={**config, "png": {**config["png"], "size": 40}})
    assert jobs == {
        "png_scale": 1,
        "compose_pngs": 2,
        "dataset": 1,
        "train_vae": 1,
        "analyze_model": 1,
        "compare_models": 1,
        "response_profiles": 1,
        "compare_responses": 1,
        "cost": 1,
        "glance": 1,
        "all": 1,
    }


def test_deleting_one_plates_crops_reruns_only_that_plates_chain(finished_run):
    workdir, config = finished_run
    plate = config["synthetic"]["plates"][1]
    crops = workdir / f"results/segmentation/{plate}/crops"
    subprocess.run(["rm", "-rf", str(crops)], check=True)
    output = snakemake(workdir, "-n", config=config).stdout
    assert "rule illumination" not in output and "rule fetch_images" not in output
    assert output.count("rule segmentation:") == 1 and f"results/segmentation/{plate}/cells.csv" in output
    assert output.count("rule compose_pngs:") == 1 and f"results/png/{plate}/cells" in output
    snakemake(workdir, "--cores", 2, config=config)
    assert crops.is_dir()
    assert "Nothing to be done" in snakemake(workdir, "-n", config=config).stdout


@pytest.fixture(scope="module")
def fresh_source(tmp_path_factory):
    """A workdir holding just the synthetic source and the metadata, for the bad-input runs (a bad config:
    tests/core/test_config_errors.py; an unknown compound: tests/workflow/test_workflow_safety.py)."""
    workdir = tmp_path_factory.mktemp("bad-input")
    snakemake(workdir, "--cores", 2, "results/metadata/BBBC021_v1_image.csv", config=tiny_config())
    return workdir


def test_missing_cellprofiler_says_how_to_install(fresh_source):
    config = tiny_config()
    config["cellprofiler"] = {**config["cellprofiler"], "executable": "/nonexistent/cellprofiler"}
    plate = config["synthetic"]["plates"][0]
    result = snakemake(
        fresh_source, "--cores", 2, f"results/illumination/{plate}/fields.csv", config=config, check=False
    )
    log = (fresh_source / f"results/logs/illumination/{plate}.log").read_text()
    assert result.returncode != 0 and "make setup" in log and "cellprofiler.executable" in log
    assert not list((fresh_source / f"results/illumination/{plate}").glob("*.npy"))


def test_unreadable_tiff_is_quarantined_and_the_run_goes_on(fresh_source):
    config = tiny_config()
    plate = config["synthetic"]["plates"][0]
    archive = fresh_source / f"results/synthetic/bbbc021/BBBC021_v1_images_{plate}.zip"
    with zipfile.ZipFile(archive) as source:
        members = {info.filename: source.read(info) for info in source.infolist()}
    broken = sorted(name for name in members if "_w2" in name)[0]
    members[broken] = b"this is not a TIFF"
    with zipfile.ZipFile(archive, "w") as target:
        for name, data in members.items():
            target.writestr(name, data)
    snakemake(fresh_source, "--cores", 2, f"results/png/{plate}/qc.csv", config=config)
    qc = pd.read_csv(fresh_source / f"results/png/{plate}/qc.csv")
    file_name = broken.split("/")[1]
    assert file_name in set(qc["field"]) and "quarantined" in qc.set_index("field").loc[file_name, "reason"]
    assert file_name in (fresh_source / f"results/logs/illumination/{plate}.log").read_text()
    assert len(pd.read_csv(fresh_source / f"results/png/{plate}/cells.csv")) > 0
