"""CellProfiler cost per full-size (1280×1024) field: illumination and analysis of one synthetic plate.

Generates one synthetic plate (~200 cells per field), then runs cellvae.imaging.cellprofiler's illumination and
segmentation on a small and a full subset of its fields. The difference gives the marginal seconds per
field, the rest is the fixed cost per plate job (JVM start, pipeline set-up, the illumination smoothing).
Seconds are CPU seconds (user + sys of CellProfiler and of the Python around it): CellProfiler is
single-threaded, so they are per core and depend little on what else loads the machine; wall seconds are
printed beside them. Analysis covers CellProfiler's identification and the Python measurements and crops.
Goal: analysis ≤ 3 s per field on one core.
Last line: analysis_seconds_per_field=<s>
Usage: .venv/bin/python benchmarks/preprocess.py [--fields 8] [--cells 200] [--keep DIR]
"""

import argparse
import resource
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import pandas as pd

from cellvae.core.channels import STAINS
from cellvae.data.metadata import read_image_table
from cellvae.data.synthetic import generate_mini_bbbc021, source_files
from cellvae.imaging.cellprofiler import FIELD_COLUMNS, run_illumination, run_segmentation

REPO = Path(__file__).resolve().parents[1]
CELLPROFILER = REPO / ".venv-cellprofiler/bin/cellprofiler"
PLATE = "Week1_22123"


def synthetic_plate(root, fields, cells):
    """One plate of `fields` 1280×1024 fields, extracted: (field table, image dir)."""
    if fields % 4:
        sys.exit(f"--fields {fields}: must be a multiple of 4 (DMSO and treated wells, 2 sites each)")
    settings = {
        "seed": 2020,
        "plates": [PLATE],
        "wells_per_compound": fields // 4,
        "sites_per_well": 2,
        "treated": {"compound": "taxol", "concentration": 0.3, "moa": "Microtubule stabilizers"},
        "width": 1280,
        "height": 1024,
        "cells_per_field": cells,
    }
    source = root / "source"
    generate_mini_bbbc021(settings, **source_files(source, settings["plates"]))
    images = root / "images"
    with zipfile.ZipFile(source / f"BBBC021_v1_images_{PLATE}.zip") as archive:
        for info in archive.infolist():
            (images / Path(info.filename).name).parent.mkdir(parents=True, exist_ok=True)
            (images / Path(info.filename).name).write_bytes(archive.read(info))
    return read_image_table(source / "BBBC021_v1_image.csv")[FIELD_COLUMNS], images


def cpu_seconds():
    """User + sys CPU seconds of this process and its finished children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(function, *args, **kwargs):
    """(CPU seconds, wall seconds) of one call."""
    cpu, wall = cpu_seconds(), time.perf_counter()
    function(*args, **kwargs)
    return cpu_seconds() - cpu, time.perf_counter() - wall


def time_plate(fields, images, out, log):
    """{stage: (CPU s, wall s)} of one plate's illumination and analysis jobs on `fields`."""
    illum, segmentation = out / "illumination", out / "segmentation"
    functions = {stain: illum / f"illum_{stain}.npy" for stain in STAINS}
    return {
        "illumination": timed(
            run_illumination,
            fields,
            images,
            CELLPROFILER,
            REPO / "pipelines/illum.cppipe",
            log,
            functions=functions,
            fields_csv=illum / "fields.csv",
            quarantine_csv=illum / "quarantine.csv",
        ),
        "analysis": timed(
            run_segmentation,
            illum / "fields.csv",
            images,
            functions,
            CELLPROFILER,
            REPO / "pipelines/analysis.cppipe",
            log,
            cells_csv=segmentation / "cells.csv",
            summary_csv=segmentation / "fields_summary.csv",
            crops_dir=segmentation / "crops",
            measurements_dir=segmentation / "measurements",
        ),
    }


def module_seconds(measurements):
    """Mean seconds per field of each analysis module (CellProfiler's ExecutionTime measurements)."""
    image = pd.read_csv(measurements / "Image.csv")
    columns = [column for column in image.columns if column.startswith("ExecutionTime_")]
    return image[columns].mean().rename(lambda column: column.removeprefix("ExecutionTime_"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fields", type=int, default=8, help="fields of the plate (a multiple of 4)")
    parser.add_argument("--cells", type=int, default=200, help="cells per synthetic field")
    parser.add_argument("--keep", type=Path, help="work here and keep the outputs (default: a temp dir)")
    args = parser.parse_args(argv)
    if not CELLPROFILER.exists():
        sys.exit(f"{CELLPROFILER} not found: run 'make setup'")
    root = args.keep or Path(tempfile.mkdtemp(prefix="cellvae-preprocess."))
    root.mkdir(parents=True, exist_ok=True)
    try:
        fields, images = synthetic_plate(root, args.fields, args.cells)
        runs = {}
        for count in (2, len(fields)):
            out = root / f"fields{count}"
            runs[count] = time_plate(fields.iloc[:count], images, out, root / "cellprofiler.log")
            cells = len(pd.read_csv(out / "segmentation/cells.csv"))
            print(
                f"fields={count} cells={cells} "
                + " ".join(
                    f"{stage}_cpu_s={cpu:.1f} {stage}_wall_s={wall:.1f}" for stage, (cpu, wall) in runs[count].items()
                )
            )
        print("analysis CPU seconds per field by module (CellProfiler's ExecutionTime):")
        for module, seconds in module_seconds(root / f"fields{len(fields)}/segmentation/measurements").items():
            print(f"  {module:<32} {seconds:6.2f}")
        per_field, fixed = {}, {}
        for stage in ("illumination", "analysis"):
            small, full = runs[2][stage][0], runs[len(fields)][stage][0]
            per_field[stage] = (full - small) / (len(fields) - 2)
            fixed[stage] = full - per_field[stage] * len(fields)
        print("fixed CPU seconds per plate job: " + " ".join(f"{stage}={s:.1f}" for stage, s in fixed.items()))
        print(
            f"seconds_per_field illumination={per_field['illumination']:.2f} analysis={per_field['analysis']:.2f} "
            f"total={sum(per_field.values()):.2f}"
        )
        print(f"analysis_seconds_per_field={per_field['analysis']:.2f}")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
