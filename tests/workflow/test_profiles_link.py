"""envs/link_profiles.sh (make setup) makes `snakemake --profile aws-gpu` and `--profile slurm-gpu` work by name
from the repository root; run with a throw-away HOME, so the user's own Snakemake profiles are never touched.
A dry run by name: `--profile slurm-gpu` in tests/workflow/test_snakemake_profiles.py (its account and partitions);
`--profile aws-gpu` needs an S3 server: tests/workflow/test_s3.py runs it against its Ceph gateway."""

import os
import subprocess

from cellvae.testing.workflow import REPO, SNAKEMAKE

LINK = REPO / "envs" / "link_profiles.sh"
NAMED = ["aws-gpu", "slurm-gpu"]


def home_env(home):
    """The environment of a user whose HOME is home (no XDG_CONFIG_HOME of this machine's user)."""
    env = {key: value for key, value in os.environ.items() if key != "XDG_CONFIG_HOME"}
    return {**env, "HOME": str(home)}


def link(home):
    result = subprocess.run(["bash", str(LINK)], capture_output=True, text=True, timeout=60, env=home_env(home))
    assert result.returncode == 0, result.stderr
    return result.stdout


def dry_run(home, workdir, *args):
    """`snakemake --profile NAME -n ...` from the repository root, as that user."""
    return subprocess.run(
        [str(SNAKEMAKE), "-n", "--directory", str(workdir), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env=home_env(home),
    )


def test_links_each_cluster_profile_once_and_never_the_default(tmp_path):
    first = link(tmp_path)
    folder = tmp_path / ".config" / "snakemake"
    assert sorted(path.name for path in folder.iterdir()) == NAMED
    for name in NAMED:
        assert (folder / name).is_symlink() and (folder / name).resolve() == REPO / "profiles" / name
        assert f"profile {name}: linked" in first
    assert link(tmp_path) == ""  # idempotent: nothing to do, nothing said


def test_an_existing_profile_of_the_user_is_kept_and_reported(tmp_path):
    own = tmp_path / ".config" / "snakemake" / "slurm-gpu"
    own.mkdir(parents=True)
    (own / "config.yaml").write_text("executor: slurm\njobs: 3\n")
    output = link(tmp_path)
    assert (own / "config.yaml").read_text() == "executor: slurm\njobs: 3\n" and not own.is_symlink()
    assert "profile slurm-gpu:" in output and "exists and differs" in output
    assert "profile aws-gpu: linked" in output


def test_xdg_config_home_is_where_the_links_go(tmp_path):
    config_home = tmp_path / "xdg"
    result = subprocess.run(
        ["bash", str(LINK)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**home_env(tmp_path / "home"), "XDG_CONFIG_HOME": str(config_home)},
    )
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in (config_home / "snakemake").iterdir()) == NAMED


def test_named_profile_is_not_found_without_the_links(tmp_path):
    result = dry_run(tmp_path / "home", tmp_path / "work", "--profile", "slurm-gpu")
    assert result.returncode != 0 and "no profile.yaml (or config.yaml) found" in result.stderr
