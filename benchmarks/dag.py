"""Dry-run scale of config/bbbc021.yaml on the real BBBC021 metadata (a local source of the tables and empty
placeholder zips).

For DMSO (the thesis) and for every compound (13,200 fields): run the cheap metadata rules for real
(fetch_metadata, select_images: the selection is a checkpoint), then time `snakemake -n` of the whole DAG.
Goals: DMSO ≤ 5 s and ≤ 400 jobs; all compounds ≤ 10 s. Seconds are wall seconds of the fastest of a few
runs, with the CPU seconds (user + sys) beside them, which a busy machine inflates less. The last two lines:
    dag dmso jobs=<n> seconds=<s> cpu_seconds=<s>
    dag all jobs=<n> seconds=<s> cpu_seconds=<s>
Usage: .venv/bin/python benchmarks/dag.py [--metadata DIR] [--repeats N]
"""

import argparse
import re
import resource
import sys
import tempfile
import time
from pathlib import Path

import yaml

from cellvae.core.config import with_defaults
from cellvae.data.fetch import archive_name
from cellvae.data.metadata import CONTROL, read_image_table
from cellvae.testing.workflow import snakemake

REPO = Path(__file__).resolve().parents[1]

SELECTIONS = {"dmso": [CONTROL], "all": "all"}


def planned_jobs(rules_table):
    match = re.search(r"^total\s+(\d+)$", rules_table, re.MULTILINE)
    if match is None:
        sys.exit(f"no job total in the dry run's output:\n{rules_table[-2000:]}")
    return int(match.group(1))


def children_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def planning_source(metadata, folder):
    """A local source for planning only: the metadata tables linked, and an empty placeholder zip per plate (the
    workflow refuses a local source that lacks a selected plate's zip; a dry run never opens one)."""
    folder.mkdir()
    for table in ("BBBC021_v1_image.csv", "BBBC021_v1_moa.csv"):
        (folder / table).symlink_to(metadata / table)
    for plate in read_image_table(metadata / "BBBC021_v1_image.csv")["plate"].unique():
        (folder / archive_name(plate)).touch()
    return folder


def measure(metadata, compounds, repeats):
    """(jobs, wall seconds, CPU seconds) of the fastest `snakemake -n` for a selection, in a fresh workdir."""
    with tempfile.TemporaryDirectory(prefix="cellvae-dag.") as tmp:
        workdir = Path(tmp)
        overlay = {  # over config/bbbc021.yaml
            "source": str(planning_source(metadata, workdir / "source")),
            "compounds": compounds,
            "cellprofiler": {
                "executable": str(REPO / ".venv-cellprofiler/bin/cellprofiler"),
                "illum_pipeline": str(REPO / "pipelines/illum.cppipe"),
                "analysis_pipeline": str(REPO / "pipelines/analysis.cppipe"),
            },
        }
        config = with_defaults(overlay, with_defaults(yaml.safe_load((REPO / "config/bbbc021.yaml").read_text())))
        snakemake(workdir, "select_images", "--cores", 1, "--quiet", "all", config=config)
        runs = []
        for _ in range(repeats):
            cpu, wall = children_cpu_seconds(), time.perf_counter()
            output = snakemake(workdir, "-n", "--quiet", "rules").stdout
            runs.append((time.perf_counter() - wall, children_cpu_seconds() - cpu))
        return (planned_jobs(output), *min(runs))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--metadata",
        type=Path,
        default=REPO.parent / "shared/bbbc021/metadata",
        help="local directory with BBBC021_v1_image.csv and BBBC021_v1_moa.csv (no zips needed)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="dry runs per selection; the fastest counts")
    args = parser.parse_args(argv)
    if not (args.metadata / "BBBC021_v1_image.csv").is_file():
        sys.exit(
            f"{args.metadata / 'BBBC021_v1_image.csv'} not found: pass --metadata DIR with the real "
            "BBBC021_v1_image.csv and BBBC021_v1_moa.csv"
        )
    results = {
        name: measure(args.metadata.resolve(), compounds, args.repeats) for name, compounds in SELECTIONS.items()
    }
    for name, (jobs, seconds, cpu_seconds) in results.items():
        print(f"dag {name} jobs={jobs} seconds={seconds:.2f} cpu_seconds={cpu_seconds:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
