"""CellProfiler's own measurements of the centre cell of every MoA crop: the classic baseline's per-cell table.

Cells: ../shared/bbbc021/images/single_cells_moa (manifest.csv, 1,945 crops of 68×68×3 uint16). Each batch is one
headless CellProfiler run of pipelines/measure_crops.cppipe (cellvae.profiling.cellprofiler_features.measure_crops);
its log
is kept in OUT's folder as <OUT name>.cellprofiler/measure_crops.log. The table: the manifest's plate, well,
compound, concentration_uM, moa and file, then cell_found (False: no cell in the crop, features NaN),
centre_distance and CellProfiler's Cells_… and Nuclei_… columns (constant ones kept). Read it with
`benchmarks/moa_cells.py --cellprofiler OUT`.

Usage: .venv/bin/python benchmarks/cellprofiler_moa_features.py --out OUT.csv.gz|OUT.parquet [--batch-size 250]
Prints one line per batch, then the crops without a cell and the time taken.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from cellvae.core.config import defaults
from cellvae.core.files import atomic_write, write_csv
from cellvae.profiling.cellprofiler_features import measure_crops

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "bbbc021"
MANIFEST = SHARED / "images" / "single_cells_moa" / "manifest.csv"
MANIFEST_COLUMNS = ["plate", "well", "compound", "concentration_uM", "moa", "file"]


def measure_manifest(manifest: pd.DataFrame, executable, pipeline, work_dir: Path, batch_size: int) -> pd.DataFrame:
    """The manifest's columns beside measure_crops' of each crop, batch by batch, with progress printed."""
    tables = []
    started = time.monotonic()
    for start in range(0, len(manifest), batch_size):
        rows = manifest.iloc[start : start + batch_size]
        crops = [np.load(SHARED / file) for file in rows["file"]]
        measured = measure_crops(crops, executable, pipeline, work_dir).drop(columns="crop")
        tables.append(pd.concat([rows[MANIFEST_COLUMNS].reset_index(drop=True), measured], axis=1))
        print(
            f"crops {start + len(rows)}/{len(manifest)}: {(~measured['cell_found']).sum()} without a cell, "
            f"{time.monotonic() - started:.0f} s",
            flush=True,
        )
    return pd.concat(tables, ignore_index=True)


def write_table(table: pd.DataFrame, out: Path) -> None:
    """Parquet where out ends in .parquet, else CSV (compressed as its suffix says), atomically."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".parquet":
        atomic_write(out, lambda temporary: table.to_parquet(temporary, index=False))
    else:
        write_csv(table, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the per-cell table: .parquet, .csv or .csv.gz")
    parser.add_argument("--batch-size", type=int, default=250, help="crops per CellProfiler run")
    settings = defaults()["cellprofiler"]
    parser.add_argument("--executable", default=REPO / settings["executable"], help="CellProfiler")
    parser.add_argument("--pipeline", default=REPO / settings["measure_pipeline"], help="the measurement pipeline")
    args = parser.parse_args()
    manifest = pd.read_csv(MANIFEST)
    started = time.monotonic()
    table = measure_manifest(
        manifest, args.executable, args.pipeline, args.out.with_name(f"{args.out.name}.cellprofiler"), args.batch_size
    )
    write_table(table, args.out)
    print(
        f"wrote {args.out}: {len(table)} crops, {(~table['cell_found']).sum()} without a cell, "
        f"{table.columns.str.startswith(('Cells_', 'Nuclei_')).sum()} features, {time.monotonic() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
