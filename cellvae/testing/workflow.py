"""The one way the tests and benchmarks run the workflow: the checkout, its Snakemake and the tests' config."""

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from cellvae.core.config import with_defaults
from cellvae.data.synthetic import generate_mini_bbbc021, source_files

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
CELLPROFILER = REPO / ".venv-cellprofiler" / "bin" / "cellprofiler"
TEST_CONFIG = REPO / "config" / "test.yaml"
PLATES = ("Week1_22123", "Week4_27481")


def tiny_config() -> dict:
    """config/test.yaml over the defaults, with absolute paths to the checkout's CellProfiler and pipelines."""
    config = with_defaults(yaml.safe_load(TEST_CONFIG.read_text()))
    config["cellprofiler"] = {
        "executable": str(CELLPROFILER),
        "illum_pipeline": str(REPO / "pipelines" / "illum.cppipe"),
        "analysis_pipeline": str(REPO / "pipelines" / "analysis.cppipe"),
    }
    return config


def local_source(folder, plates=PLATES) -> Path:
    """A folder in BBBC021's layout (both tables, a zip per plate), as a user's local mirror: a tiny synthetic set
    (64×64 fields, one cell, one site and one well per compound), written by the generator."""
    settings = {**tiny_config()["synthetic"], "plates": list(plates), "width": 64, "height": 64}
    settings.update(wells_per_compound=1, sites_per_well=1, cells_per_field=1)
    settings.pop("enabled")
    generate_mini_bbbc021(settings, **source_files(folder, plates))
    return Path(folder)


def local_config(source) -> dict:
    """tiny_config() reading the local source folder (synthetic data off)."""
    config = tiny_config()
    config.update(source=str(source), synthetic={**config["synthetic"], "enabled": False})
    return config


def printed_jobs(output) -> list[dict]:
    """Each job a Snakemake run or dry run prints: {"rule", "checkpoint" (bool), and its indented fields as printed
    (input, reason, wildcards, resources, threads, ...; the first of each)}."""
    jobs = []
    for line in output.splitlines():
        if match := re.match(r"^(?:local)?(rule|checkpoint) (\w+):$", line):
            jobs.append({"rule": match[2], "checkpoint": match[1] == "checkpoint"})
        elif jobs and (match := re.match(r"^\s+(\w+): (.*)$", line)):
            jobs[-1].setdefault(match[1], match[2])
    return jobs


def job_reasons(output) -> str:
    """One line per job in a Snakemake run's (or dry run's) output: its rule, wildcards and why it runs."""
    return "\n".join(
        f"{job['rule']} [{job.get('wildcards', '')}]: {job.get('reason', '?')}" for job in printed_jobs(output)
    )


def snakemake_command(workdir, *args) -> list[str]:
    """The command line running the checkout's workflow in workdir with workdir/config.yaml."""
    return [
        str(SNAKEMAKE),
        "--configfile",  # first: it takes several values, a target right after it would be one
        str(Path(workdir) / "config.yaml"),
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        *map(str, args),
    ]


def snakemake(workdir, *args, config=None, env=None, check=True, timeout=1200):
    """Run the workflow in workdir with workdir/config.yaml (written from `config` when given); the
    CompletedProcess, or AssertionError with the output's end when check and it failed."""
    if config is not None:
        (Path(workdir) / "config.yaml").write_text(yaml.safe_dump(config))
    result = subprocess.run(
        snakemake_command(workdir, *args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(map(str, args))} failed:\n{result.stdout[-4000:]}\n{result.stderr[-8000:]}"
        )
    return result


def planned_jobs(workdir, *args, config=None) -> dict:
    """{rule: count} of what a dry run would execute."""
    output = snakemake(workdir, "-n", "--quiet", "rules", *args, config=config).stdout
    return {
        match[1]: int(match[2])
        for match in re.finditer(r"^(\w+)\s+(\d+)$", output, re.MULTILINE)
        if match[1] != "total"
    }


def summary_rows(output) -> list[dict]:
    """The rows `snakemake --summary` prints (one per output file of the DAG's jobs): {"output_file", "date",
    "rule", "log-file(s)", "status", "plan"}; the status of a file that is not there is "missing"."""
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("output_file\t")), None)
    if start is None:
        raise ValueError(f"no --summary table in the output:\n{output[-2000:]}")
    header = lines[start].split("\t")
    return [dict(zip(header, line.split("\t"))) for line in lines[start + 1 :] if line.count("\t") == len(header) - 1]
