"""Centre-cell crops for the "describe the cell, not its neighbours" ablation of benchmarks/moa_cells.py.

Every crop of the five shared DMSO plates and of the MoA set, with the pixels outside its centre cell (segmented
by cellvae.profiling.cell_features, dilated by a margin) set to zero, written as .npy beside a manifest with the
original
columns (path = the masked copy). Train on them with `cellvae train --images OUT/dmso.csv --images OUT/moa.csv`
and score with `benchmarks/moa_cells.py --masked OUT`.

Usage: .venv/bin/python benchmarks/masked_crops.py --out benchmarks/out/moa/masked
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from cellvae.core.files import write_csv
from cellvae.data.metadata import CONTROL
from cellvae.profiling.cell_features import segment_centre_cell

SHARED = Path(__file__).resolve().parents[2] / "shared" / "bbbc021"
MARGIN_PX = 2  # the mask is dilated by this much, so the cell's edge stays in


def masked(crop: np.ndarray) -> np.ndarray:
    _, cell = segment_centre_cell(crop)
    keep = ndimage.binary_dilation(cell, iterations=MARGIN_PX)
    return np.where(keep[..., None], crop, 0).astype(crop.dtype)


def write_masked(manifest: Path, rows: pd.DataFrame, out: Path, name: str) -> Path:
    paths = []
    for file in rows["file"]:
        target = out / Path(file).relative_to("images")
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            np.save(target, masked(np.load(manifest.parents[2] / file)))
        paths.append(str(target))
    table = rows.assign(path=paths).drop(columns=["file"])
    write_csv(table, out / f"{name}.csv")
    return out / f"{name}.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    by_plate = SHARED / "images" / "single_cells_by_plate" / "manifest.csv"
    moa = SHARED / "images" / "single_cells_moa" / "manifest.csv"
    dmso = pd.read_csv(by_plate)
    written = [
        write_masked(by_plate, dmso[dmso["compound"] == CONTROL], args.out, "dmso"),
        write_masked(moa, pd.read_csv(moa), args.out, "moa"),
    ]
    print(*written)


if __name__ == "__main__":
    main()
