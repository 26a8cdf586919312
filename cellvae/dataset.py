"""Dataset: all plates' PNG cells with their compound, split into train and validation by well."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd

MANIFEST_COLUMNS = ["path", "plate", "well", "site", "label", "compound", "concentration", "split"]


def split_by_well(cells: pd.DataFrame, validation_fraction: float, seed: int) -> pd.Series:
    """'train' or 'validation' per cell; every cell of a well lands in the same split."""
    wells = cells[["plate", "well"]].drop_duplicates().sort_values(["plate", "well"])
    if len(wells) < 2:
        raise ValueError(f"only {len(wells)} well(s) with cells: a split by well needs at least 2; "
                         "select more fields (config keys plates/compounds)")
    n_validation = min(len(wells) - 1, max(1, round(validation_fraction * len(wells))))
    order = np.random.default_rng(seed).permutation(len(wells))
    held_out = wells.iloc[order[:n_validation]]
    key = cells["plate"] + "/" + cells["well"]
    held_out_keys = set(held_out["plate"] + "/" + held_out["well"])
    return key.isin(held_out_keys).map({True: "validation", False: "train"})


def build_manifest(png_manifests: list[str], selected_csv: str, out_csv: str,
                   validation_fraction: float, seed: int) -> pd.DataFrame:
    """Join the plates' PNG manifests with the field metadata, split by well, write atomically."""
    cells = pd.concat([pd.read_csv(path) for path in png_manifests], ignore_index=True)
    if cells.empty:
        raise ValueError(f"no PNG cells in {', '.join(png_manifests)}: segmentation found no cell")
    fields = pd.read_csv(selected_csv)[["plate", "well", "site", "compound", "concentration"]]
    cells = cells.merge(fields, on=["plate", "well", "site"], how="left", validate="many_to_one")
    cells["split"] = split_by_well(cells, validation_fraction, seed)
    manifest = cells[MANIFEST_COLUMNS].sort_values(["plate", "well", "site", "label"])
    tmp = f"{out_csv}.tmp"
    manifest.to_csv(tmp, index=False)
    os.replace(tmp, out_csv)
    return manifest
