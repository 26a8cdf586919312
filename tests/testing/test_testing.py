"""cellvae.testing: what the tests and the benchmarks share lives in the project, and benchmarks import it from there,
never from tests/."""

import ast
from pathlib import Path

from cellvae.testing import live_servers, workflow

REPO = Path(__file__).resolve().parents[2]
TEST_MODULES = {path.stem for path in (REPO / "tests").glob("*.py")} | {"tests"}


def test_the_shared_paths_point_into_the_checkout():
    assert (workflow.REPO / "Snakefile").is_file() and workflow.TEST_CONFIG.is_file()
    assert (live_servers.SERVERS / "start_slurm.sh").is_file() and (live_servers.SERVERS / "slurm.conf.in").is_file()


def test_benchmarks_import_the_project_not_the_tests():
    for path in sorted((REPO / "benchmarks").glob("*.py")):
        tree = ast.parse(path.read_text())
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        assert not {name.split(".")[0] for name in imported} & TEST_MODULES, path.name
        assert '"tests"' not in path.read_text(), f"{path.name} puts tests/ on sys.path"


def test_a_full_ceph_stop_ends_a_daemon_that_wrote_no_pid_file(tmp_path):
    """A start that failed under load can leave its monitor running before it wrote its pid file; the retry's
    monitor then cannot take the port and its OSD meets the old one's fsid. stop_ceph_rgw.sh ends such a daemon
    by its config path (any process started with -c STATE/ceph.conf), and nothing else."""
    import subprocess
    import sys

    state = tmp_path / "ceph0"
    (state / "run").mkdir(parents=True)
    sleeper = [sys.executable, "-c", "import time; time.sleep(300)"]
    daemon = subprocess.Popen([*sleeper, "-c", f"{state}/ceph.conf"])
    bystander = subprocess.Popen([*sleeper, "-c", f"{tmp_path}/other/ceph.conf"])
    try:
        script = live_servers.SERVERS / "stop_ceph_rgw.sh"
        subprocess.run(["bash", str(script), str(state), "rgw"], check=True, timeout=60)
        assert daemon.poll() is None  # the gateway-only stop leaves the monitor and OSD alone
        subprocess.run(["bash", str(script), str(state)], check=True, timeout=60)
        assert daemon.wait(timeout=10) is not None and bystander.poll() is None
    finally:
        for process in (daemon, bystander):
            process.kill()
            process.wait()


def test_job_reasons_names_each_job_of_a_run_with_its_wildcards_and_reason():
    output = """Building DAG of jobs...
[Mon Dec  7 03:55:37 2026]
localrule fetch_images:
    input: s3://b/tiny/results/metadata/selected_images.csv (retrieve from storage)
    jobid: 11
    reason: Updated input files: s3://b/tiny/results/metadata/selected_images.csv (in storage)
    wildcards: plate=Week1_22123
    resources: tmpdir=/tmp
rule train_vae:
    jobid: 7
    reason: Input files updated by another job: s3://b/tiny/results/dataset/shards (in storage)
    wildcards: latent_dim=4
"""
    assert workflow.job_reasons(output).splitlines() == [
        "fetch_images [plate=Week1_22123]: Updated input files: s3://b/tiny/results/metadata/selected_images.csv "
        "(in storage)",
        "train_vae [latent_dim=4]: Input files updated by another job: s3://b/tiny/results/dataset/shards (in storage)",
    ]
