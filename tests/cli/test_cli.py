"""The `cellvae` command line: every command's help and usage errors (exit 2, before TensorFlow is imported); the
train / evaluate / embed commands on real crops: manifests with filters, a plate held out, baselines beside the
model, embeddings, and bad input answered before anything is written."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cellvae.cli import COMMANDS
from cellvae.testing.workflow import REPO

BY_PLATE = REPO.parent / "shared" / "bbbc021" / "images" / "single_cells_by_plate" / "manifest.csv"
needs_crops = pytest.mark.skipif(
    not BY_PLATE.is_file(), reason=f"real by-plate BBBC021 crops not found at {BY_PLATE} (../shared)"
)
TRAIN_PLATES = "Week4_27481,Week4_27521"
HELD_OUT = "Week4_27542"


def run_cli(*args, timeout=600):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        [sys.executable, "-m", "cellvae", *map(str, args)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


EXIT_AND_IMPORTS = """
import sys
from cellvae.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
print(code, *sorted(name for name in ("tensorflow", "keras", "boto3") if name in sys.modules))
"""


def exit_and_imports(*args) -> tuple[str, str]:
    """(the last stdout line: exit code, then which of tensorflow, keras, boto3 got imported; stderr)."""
    result = subprocess.run(
        [sys.executable, "-c", EXIT_AND_IMPORTS, *args], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    return result.stdout.strip().splitlines()[-1], result.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_and_refuses_a_bad_option_before_importing_tensorflow(command):
    assert exit_and_imports(command, "--help")[0] == "0"
    status, stderr = exit_and_imports(command, "--no-such-option")
    assert status == "2" and f"cellvae {command}: error:" in stderr


def test_no_command_or_an_unknown_one_is_a_usage_error():
    assert exit_and_imports()[0] == "2"
    status, stderr = exit_and_imports("trian")
    assert status == "2" and "invalid choice: 'trian'" in stderr


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A z = 4 model trained 2 epochs on site-1 DMSO cells of two plates, validated on a third plate."""
    out = tmp_path_factory.mktemp("cli") / "z4"
    result = run_cli(
        "train",
        "--images",
        BY_PLATE,
        "--where",
        "compound=DMSO",
        "--where",
        f"plate={TRAIN_PLATES}",
        "--where",
        "site=1",
        "--validation-images",
        BY_PLATE,
        "--validation-where",
        f"plate={HELD_OUT}",
        "--validation-where",
        "site=1",
        "--latent-dim",
        4,
        "--epochs",
        2,
        "--size",
        16,
        "--config",
        "none",
        "--batch-size",
        16,
        "--out",
        out,
    )
    assert result.returncode == 0, result.stderr
    return out


@needs_crops
def test_train_on_manifest_rows_holds_the_validation_plate_out(trained):
    manifest = pd.read_csv(BY_PLATE)
    site1 = manifest[(manifest["site"] == 1) & (manifest["compound"] == "DMSO")]
    n_train = site1["plate"].isin(TRAIN_PLATES.split(",")).sum()
    n_validation = (site1["plate"] == HELD_OUT).sum()
    summary = json.loads((trained / "training.json").read_text())
    assert (summary["n_train"], summary["n_validation"]) == (n_train, n_validation)
    preprocessing = json.loads((trained / "preprocessing.json").read_text())
    assert preprocessing["input_kind"] == "raw" and preprocessing["masked"] is False
    assert preprocessing["where"] == ["compound=DMSO", f"plate={TRAIN_PLATES}", "site=1"]
    assert np.load(trained / "data" / "train.npy").shape == (n_train, 16, 16, 3)
    assert (trained / "baselines.npz").is_file()


@needs_crops
def test_evaluate_prints_the_model_beside_its_baselines(trained):
    result = run_cli(
        "evaluate",
        "--model",
        trained / "model.keras",
        "--images",
        BY_PLATE,
        "--where",
        f"plate={HELD_OUT}",
        "--where",
        "site=1",
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert set(metrics["baselines"]) == {"zero", "mean", "median", "pca"} and metrics["baselines"]["pca"]["k"] == 4
    verdict = result.stderr.strip().splitlines()[-1]
    better = metrics["mse"] < metrics["baselines"]["pca"]["mse"]
    assert verdict.startswith(f"verdict: the VAE {'beats' if better else 'is worse than'} PCA-4 ")
    assert f"on these {metrics['n_cells']} cells" in verdict and "cellvae evaluate: reconstructing" in result.stderr
    assert metrics["s_cell"] is None and "no segmentation mask" in metrics["cell_metrics"]
    held_out = np.load(trained / "data" / "validation.npy")  # the same cells, composed alike
    x = held_out.astype(np.float64) / 255
    assert metrics["n_cells"] == len(held_out)
    assert metrics["baselines"]["zero"]["mse"] == pytest.approx(np.mean(x**2), rel=1e-6)
    train = np.load(trained / "data" / "train.npy").astype(np.float64) / 255
    assert metrics["baselines"]["mean"]["mse"] == pytest.approx(np.mean((x - train.mean(axis=0)) ** 2), rel=1e-5)
    assert metrics["baselines"]["pca"]["mse"] < metrics["baselines"]["mean"]["mse"]


@needs_crops
@pytest.mark.slow
def test_embed_writes_one_row_per_image_with_the_posterior_mean(trained, tmp_path):
    out = tmp_path / "cells.csv"
    result = run_cli(
        "embed",
        "--model",
        trained / "model.keras",
        "--images",
        BY_PLATE,
        "--where",
        f"plate={HELD_OUT}",
        "--where",
        "site=1",
        "--out",
        out,
    )
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(out)
    assert list(table.columns[:1]) == ["Metadata_Path"] and [f"z{i}" for i in range(4)] == list(table.columns[-4:])
    assert set(table["Metadata_Plate"]) == {HELD_OUT} and (table["Metadata_Site"] == 1).all()

    from cellvae.model.vae import load_vae
    from cellvae.profiling.response import encode_images

    vae = load_vae(trained / "model.keras")
    held_out = np.load(trained / "data" / "validation.npy")
    latent = table[[f"z{i}" for i in range(4)]].to_numpy()
    np.testing.assert_allclose(latent, encode_images(vae, held_out, orientations=8), rtol=1e-4, atol=1e-5)
    assert not np.allclose(latent, encode_images(vae, held_out), rtol=1e-4, atol=1e-5)  # the default averages views

    as_it_is = tmp_path / "as_it_is.csv"
    arguments = ("--where", f"plate={HELD_OUT}", "--where", "site=1", "--orientations", "1", "--out", as_it_is)
    result = run_cli("embed", "--model", trained / "model.keras", "--images", BY_PLATE, *arguments)
    assert result.returncode == 0, result.stderr
    plain = pd.read_csv(as_it_is)[[f"z{i}" for i in range(4)]].to_numpy()
    np.testing.assert_allclose(plain, encode_images(vae, held_out), rtol=1e-4, atol=1e-5)


@needs_crops
def test_evaluate_refuses_images_of_another_kind(trained, tmp_path):
    png = tmp_path / "pngs"
    png.mkdir()
    Image.fromarray(np.full((16, 16, 3), 100, np.uint8)).save(png / "cell.png")
    result = run_cli("evaluate", "--model", trained / "model.keras", "--images", png)
    assert result.returncode == 1 and "cellvae evaluate: " in result.stderr
    assert "was trained on raw microscope crops" in result.stderr and "Traceback" not in result.stderr


def test_bad_options_are_refused_before_the_run_folder_is_touched(tmp_path):
    """Every setting is checked against config/config.schema.yaml (options over the --config file) first."""
    images = tmp_path / "images"
    images.mkdir()
    for i in range(4):
        Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)).save(images / f"c{i}.png")
    out = tmp_path / "run"
    out.mkdir()
    (out / "model.keras").write_text("a finished run's model")
    (out / "training.json").write_text("{}")
    typo = tmp_path / "typo.yaml"
    typo.write_text("train: {batch_sise: 8}\n")
    negative = tmp_path / "negative.yaml"
    negative.write_text("train:\n  kl_weight: -1\n")
    malformed = tmp_path / "malformed.yaml"
    malformed.write_text("train: {batch_size: 8\n")
    for option, value, message in [
        ("--epochs", 0, "--epochs must be an integer >= 1, got 0"),
        ("--epochs", -1, "--epochs must be an integer >= 1, got -1"),
        ("--epochs", "1e20", "argument --epochs: expected an integer, got '1e20'"),
        ("--latent-dim", 0, "--latent-dim must be an integer >= 1, got 0"),
        ("--dropout", 1.5, "--dropout must be a number >= 0, < 1, got 1.5"),
        ("--shuffle-buffer", 0, "--shuffle-buffer must be an integer >= 1, got 0"),
        ("--kl-weight", -1, "--kl-weight must be a number >= 0, got -1.0"),
        ("--clip-norm", -1, "--clip-norm must be null or a number > 0, got -1.0"),
        ("--learning-rate", "nan", "argument --learning-rate: expected a finite number, got 'nan'"),
        ("--architecture", "deeper", "--architecture must be one of ['thesis', 'wide', 'deep'], got 'deeper'"),
        ("--lr-schedule", "step", "--lr-schedule must be one of ['constant', 'cosine'], got 'step'"),
        ("--seed", 0, "--seed must be an integer >= 1, got 0"),
        ("--size", 20, "--size must be an integer >= 16, a multiple of 8, got 20"),
        ("--scale", "abc", "argument --scale: expected auto, fill or a number > 0, got 'abc'"),
        ("--scale", -2, "--scale must be one of ['auto', 'fill'] or a number > 0, got -2.0"),
        ("--augment", "yes", "unrecognized arguments: yes"),
        ("--xla", "maybe", "argument --xla: expected true, false or auto, got 'maybe'"),
        (
            "--config",
            typo,
            f"config file {typo}: train.batch_sise is not allowed; allowed keys under train: architecture,",
        ),
        ("--config", negative, f"config file {negative}: train.kl_weight must be a number >= 0, got -1"),
        ("--config", malformed, f"config file {malformed} is not valid YAML at line 2, column 1: fix it"),
    ]:
        arguments = {"--epochs": 1, "--latent-dim": 2, "--config": "none", option: value}
        result = run_cli(
            "train",
            "--images",
            images,
            "--out",
            out,
            "--size",
            16,
            *[str(item) for pair in arguments.items() for item in pair],
            timeout=120,
        )
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
        assert sorted(p.name for p in out.iterdir()) == ["model.keras", "training.json"]
        assert (out / "model.keras").read_text() == "a finished run's model"


def test_switches_take_the_usual_spellings(tmp_path):
    from cellvae.cli import parser

    required = ["train", "--images", tmp_path, "--latent-dim", 2, "--epochs", 1, "--out", tmp_path]
    args = parser("train").parse_args(map(str, [*required, "--no-augment", "--batch-norm", "--xla", "YES"]))
    assert (args.augment, args.batch_norm, args.xla, args.mixed_precision) == (False, True, True, None)
    for word, value in [("off", False), ("0", False), ("True", True), ("auto", "auto")]:
        assert parser("train").parse_args(map(str, [*required, "--mixed-precision", word])).mixed_precision == value
    assert parser("train").parse_args(map(str, [*required, "--clip-norm", "none"])).clip_norm == "null"


def test_where_needs_a_manifest_column_and_a_folder_takes_none(tmp_path):
    manifest = tmp_path / "cells.csv"
    pd.DataFrame({"path": ["a.npy"], "plate": ["P"]}).to_csv(manifest, index=False)
    result = run_cli(
        "train",
        "--images",
        manifest,
        "--where",
        "compund=DMSO",
        "--latent-dim",
        2,
        "--epochs",
        1,
        "--out",
        tmp_path / "run",
        "--config",
        "none",
        timeout=120,
    )
    assert result.returncode == 2 and "--where: row filter 'compund=DMSO'" in result.stderr and "plate" in result.stderr
    result = run_cli(
        "train",
        "--images",
        tmp_path,
        "--where",
        "plate=P",
        "--latent-dim",
        2,
        "--epochs",
        1,
        "--out",
        tmp_path / "run",
        "--config",
        "none",
        timeout=120,
    )
    assert result.returncode == 2 and "--where: " in result.stderr and "is a folder" in result.stderr
