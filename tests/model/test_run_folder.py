"""`cellvae train` run folders (cellvae.model.run_folder): a finished run is never replaced by another one by accident,
one run at a time holds the folder (a lock the kernel drops on a crash), Ctrl-C says how to resume, and
`cellvae evaluate` refuses a folder whose files are missing, unreadable or of different runs."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cellvae.core.files import sha256
from cellvae.evaluation.baselines import Baselines
from cellvae.model.run_folder import array_digest, differences, locked
from cellvae.testing.workflow import REPO

RUN_FILES = ["baselines.npz", "checkpoint.json", "history.csv", "model.keras", "preprocessing.json", "training.json"]


def run_cli(*args, timeout=300, cwd=REPO):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        [sys.executable, "-m", "cellvae", *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def noise_pngs(folder, n=32, size=16, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"c{i:03d}.png")
    return folder


def train_command(images, out, epochs, *extra):
    return [
        "train", "--images", images, "--out", out, "--epochs", epochs, "--latent-dim", 2, "--size", 16,
        "--config", "none", "--batch-size", 16, "--lr-schedule", "constant", "--no-augment",
        "--mixed-precision", "false", "--xla", "false", *extra,
    ]  # fmt: skip


def snapshot(out):
    return {name: (out / name).read_bytes() for name in RUN_FILES}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A z = 2 run, 2 epochs on 32 noise PNGs of 16 px."""
    root = tmp_path_factory.mktemp("runs")
    images = noise_pngs(root / "images")
    result = run_cli(*train_command(images, root / "run", 2))
    assert result.returncode == 0, result.stderr
    return root / "run", images


def test_the_run_id_is_the_checkpoints_fingerprint_and_is_in_every_file(finished):
    out, _ = finished
    run = json.loads((out / "preprocessing.json").read_text())["run"]
    assert run["id"] == json.loads((out / "checkpoint.json").read_text())["fingerprint"]
    assert run["id"] == json.loads((out / "training.json").read_text())["fingerprint"]
    baselines = Baselines.load(out / "baselines.npz")
    assert (baselines.run_id, baselines.latent_dim) == (run["id"], 2)
    assert array_digest(np.load(out / "data" / "train.npy")) == sha256(out / "data" / "train.npy")
    assert differences(out, run) == []
    assert ".lock" not in RUN_FILES and (out / ".lock").is_file()  # left behind, released: not a run's file


@pytest.mark.slow
def test_a_finished_run_is_kept_when_another_run_would_replace_it(finished, tmp_path):
    original, images = finished
    out = tmp_path / "run"
    shutil.copytree(original, out)
    before = snapshot(out)
    other_images = noise_pngs(tmp_path / "other", seed=1)
    for command, named in [
        (train_command(images, out, 1), "--epochs 2, now 1"),
        (train_command(other_images, out, 2), "--images"),
        (train_command(images, out, 2, "--kl-weight", 0.5), "--kl-weight 1.0, now 0.5"),
        (train_command(images, out, 3, "--lr-schedule", "cosine"), "--lr-schedule 'constant', now 'cosine'"),
    ]:
        result = run_cli(*command, timeout=120)
        assert result.returncode == 1, result.stderr
        assert f"cellvae train: {out} holds another run (" in result.stderr and named in result.stderr
        assert "--overwrite" in result.stderr and "Traceback" not in result.stderr
        assert snapshot(out) == before

    moved = shutil.copytree(images, tmp_path / "moved")  # the same cells elsewhere (and the run folder a copy)
    longer = run_cli(*train_command(moved, out, 3))  # more epochs on a constant schedule: continued
    assert longer.returncode == 0, longer.stderr
    assert json.loads((out / "training.json").read_text())["resumed_after_epoch"] == 2
    assert pd.read_csv(out / "history.csv")["epoch"].tolist() == [1, 2, 3]

    replaced = run_cli(*train_command(other_images, out, 1, "--overwrite"))
    assert replaced.returncode == 0, replaced.stderr
    assert json.loads((out / "training.json").read_text())["resumed_after_epoch"] == 0
    assert pd.read_csv(out / "history.csv")["epoch"].tolist() == [1]
    run = json.loads((out / "preprocessing.json").read_text())["run"]
    old_id = json.loads(before["preprocessing.json"])["run"]["id"]
    assert run["id"] == Baselines.load(out / "baselines.npz").run_id != old_id


@pytest.mark.slow
def test_a_killed_continuation_keeps_the_finished_model(finished, tmp_path):
    """A finished 2-epoch run continued to more epochs and killed (-9) after epoch 3 keeps its model, summary and
    record; the first command then finds it trained, evaluate reads it, and the killed writes' leftovers go."""
    original, images = finished
    out = tmp_path / "run"
    shutil.copytree(original, out)
    before = snapshot(out)
    command = [sys.executable, "-m", "cellvae", *map(str, train_command(images, out, 500))]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while json.loads((out / "checkpoint.json").read_text())["epoch"] < 3 and time.monotonic() < deadline:
            assert process.poll() is None
            time.sleep(0.05)
    finally:
        process.kill()
        process.wait()
    assert json.loads((out / "checkpoint.json").read_text())["epoch"] >= 3
    kept = ("model.keras", "training.json", "preprocessing.json")
    assert {name: (out / name).read_bytes() for name in kept} == {name: before[name] for name in kept}
    leftovers = [out / ".model.tmp4242.keras", out / "checkpoints" / ".epoch-0003.tmp4242.keras"]
    for leftover in leftovers:
        leftover.write_bytes(b"half")
    again = run_cli(*train_command(images, out, 2))
    assert again.returncode == 0, again.stderr
    assert "already trained (2 epochs)" in again.stdout
    assert {name: (out / name).read_bytes() for name in kept} == {name: before[name] for name in kept}
    assert not any(leftover.exists() for leftover in leftovers)
    assert evaluate(out, images).returncode == 0


def test_train_and_evaluate_work_from_any_folder_on_the_schema_defaults(finished, tmp_path):
    """No config file needed outside the checkout: train and evaluate run from another folder; evaluate writes its
    JSON to --json and ends with its verdict."""
    _, images = finished
    command = [arg for arg in train_command(images, tmp_path / "run", 1) if arg not in ("--config", "none")]
    trained = run_cli(*command, "--validation-pattern", "c00*", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert "Gaussian negative log-likelihood over its 768 pixel values" in trained.stdout
    assert "warning: no validation cells" not in trained.stdout
    assert "held-out: MSE " in trained.stdout and "on 10 validation cells vs PCA-2's" in trained.stdout
    result = run_cli("evaluate", "--model", "run", "--images", images, "--json", "metrics.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert result.stdout == "" and metrics["n_cells"] == 32 and metrics["baselines"]["pca"]["k"] == 2
    assert "warning: no validation cells" in run_cli(*train_command(images, tmp_path / "other", 1)).stdout
    assert result.stderr.strip().splitlines()[-1].startswith("verdict: the VAE ")


def test_a_truncated_shard_is_named_by_evaluate_and_rebuilt_by_train(finished, tmp_path):
    original, images = finished
    out = shutil.copytree(original, tmp_path / "run")
    shard = out / "data" / "train.npy"
    shard.write_bytes(shard.read_bytes()[:300])
    result = evaluate(out, images)
    assert result.returncode == 1 and f"{shard} is cut short or damaged" in result.stderr
    assert "rerun the `cellvae train` command that wrote it" in result.stderr
    assert run_cli(*train_command(images, out, 2)).returncode == 0
    assert evaluate(out, images).returncode == 0


def test_a_second_run_into_a_locked_folder_is_refused_naming_the_first(finished, tmp_path):
    _, images = finished
    out = tmp_path / "run"
    with locked(out):
        result = run_cli(*train_command(images, out, 1), timeout=120)
    assert result.returncode == 1 and f"in use by another `cellvae train` (pid {os.getpid()})" in result.stderr
    assert sorted(path.name for path in out.iterdir()) == [".lock"]


def test_a_crashed_runs_lock_is_released(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from pathlib import Path; from cellvae.model.run_folder import locked\n"
         f"with locked(Path({str(tmp_path)!r})):\n    print('held', flush=True); input()"],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RuntimeError, match=f"pid {holder.pid}"):
            with locked(tmp_path):
                pass
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        with locked(tmp_path):
            assert (tmp_path / ".lock").read_text().strip() == str(os.getpid())
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.slow
def test_ctrl_c_says_how_to_resume(tmp_path):
    images = noise_pngs(tmp_path / "images", n=400)
    out = tmp_path / "run"
    command = [sys.executable, "-m", "cellvae", *map(str, train_command(images, out, 20, "--batch-size", 4))]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not (out / "checkpoint.json").is_file() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        stderr = process.communicate(timeout=120)[1]
    finally:
        process.kill()
        process.wait()
    completed = json.loads((out / "checkpoint.json").read_text())["epoch"]
    assert process.returncode == 130 and "Traceback" not in stderr, stderr
    assert stderr.strip().splitlines()[-1] == (
        f"cellvae train: interrupted; rerun the same command to resume from epoch {completed + 1}"
    )
    assert not (out / "model.keras").exists()


def evaluate(model, images):
    return run_cli("evaluate", "--model", model, "--images", images, timeout=120)


@pytest.mark.slow
def test_evaluate_takes_the_run_folder_or_its_model(finished):
    out, images = finished
    for model in (out, out / "model.keras"):
        result = evaluate(model, images)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["baselines"]["pca"]["k"] == 2


def test_evaluate_refuses_a_run_folder_whose_files_do_not_belong_together(finished, tmp_path):
    original, images = finished
    out = tmp_path / "run"

    def fresh():
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(original, out)

    fresh()
    (out / "preprocessing.json").unlink()
    result = evaluate(out / "model.keras", images)
    assert result.returncode == 1 and f"{out / 'preprocessing.json'} not found" in result.stderr

    for name in ("preprocessing.json", "baselines.npz"):
        fresh()
        (out / name).write_bytes((out / name).read_bytes()[:100])  # truncated
        result = evaluate(out / "model.keras", images)
        assert result.returncode == 1 and str(out / name) in result.stderr and "unreadable" in result.stderr
        assert "rerun the `cellvae train` command" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr

    fresh()  # PCA-8 of another run beside the z = 2 model
    Baselines.fit(np.load(out / "data" / "train.npy"), 8, run_id="another").save(out / "baselines.npz")
    result = evaluate(out / "model.keras", images)
    assert result.returncode == 1 and "baselines.npz (PCA-8, run another) is not of the run" in result.stderr

    fresh()
    result = evaluate(out / "nothing.keras", images)
    assert result.returncode == 1 and "model not found" in result.stderr
