"""Dataset: all plates' PNG cells with their compound, split into train and validation by well or by plate,
and written as decoded uint8 shards (one .npy per split and plate) for the training input pipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cellvae.core.files import read_pngs, read_table, write_csv
from cellvae.imaging.shards import write_shard

DATASET_MANIFEST_COLUMNS = ["path", "plate", "well", "site", "label", "compound", "concentration", "split", "shard"]


def read_dataset_manifest(manifest_csv) -> pd.DataFrame:
    """The dataset manifest (one row per cell: its PNG, split and shard), checked for its columns."""
    return read_table(manifest_csv, DATASET_MANIFEST_COLUMNS, "dataset manifest")


def split_rows(manifest, split, manifest_csv) -> pd.DataFrame:
    """The manifest's rows of one split ('train' or 'validation'); an error if it has none."""
    rows = manifest[manifest["split"] == split]
    if rows.empty:
        raise ValueError(f"manifest {manifest_csv} has no '{split}' rows")
    return rows


def split_paths(manifest, split, manifest_csv) -> list:
    """PNG paths of one split."""
    return split_rows(manifest, split, manifest_csv)["path"].tolist()


def shard_split(manifest_csv, split) -> list:
    """The .npy shard paths holding one split's cells (manifest column shard)."""
    return split_rows(read_dataset_manifest(manifest_csv), split, manifest_csv)["shard"].drop_duplicates().tolist()


def split_by_well(cells: pd.DataFrame, validation_fraction: float, seed: int) -> pd.Series:
    """'train' or 'validation' per cell; every cell of a well lands in the same split."""
    wells = cells[["plate", "well"]].drop_duplicates().sort_values(["plate", "well"])
    if len(wells) < 2:
        raise ValueError(
            f"only {len(wells)} well(s) with cells: a split by well needs at least 2; "
            "select more fields (config keys plates/compounds)"
        )
    n_validation = min(len(wells) - 1, max(1, round(validation_fraction * len(wells))))
    order = np.random.default_rng(seed).permutation(len(wells))
    held_out = wells.iloc[order[:n_validation]]
    key = cells["plate"] + "/" + cells["well"]
    held_out_keys = set(held_out["plate"] + "/" + held_out["well"])
    return key.isin(held_out_keys).map({True: "validation", False: "train"})


def split_by_plate(cells: pd.DataFrame, validation_plates: list) -> pd.Series:
    """'train' or 'validation' per cell; every cell of a validation plate is held out (the model is judged on
    plates it never saw)."""
    plates = set(cells["plate"])
    missing = sorted(set(validation_plates) - plates)
    if missing or not validation_plates:
        raise ValueError(
            f"config key dataset.validation_plates: {missing or 'none given'} not among the plates "
            f"with cells ({', '.join(sorted(plates))}); name at least one of them"
        )
    if plates <= set(validation_plates):
        raise ValueError("config key dataset.validation_plates holds every plate: none is left for training")
    return cells["plate"].isin(validation_plates).map({True: "validation", False: "train"})


def split_cells(
    cells: pd.DataFrame, split: str, validation_fraction: float, seed: int, validation_plates=()
) -> pd.Series:
    """The train/validation split of config key dataset.split: `well` (a fraction of wells) or `plate`."""
    if split == "plate":
        return split_by_plate(cells, list(validation_plates))
    if split == "well":
        return split_by_well(cells, validation_fraction, seed)
    raise ValueError(f"config key dataset.split must be 'well' or 'plate', got {split!r}")


def write_shards(manifest: pd.DataFrame, shards_dir) -> pd.DataFrame:
    """Decode each (split, plate) group's PNGs, in manifest order, into shards_dir/<split>-<plate>.npy;
    returns the manifest with their paths in column shard."""
    shards_dir = Path(shards_dir)
    shards_dir.mkdir(parents=True, exist_ok=True)
    manifest = manifest.assign(
        shard=[str(shards_dir / f"{split}-{plate}.npy") for split, plate in zip(manifest["split"], manifest["plate"])]
    )
    for shard, group in manifest.groupby("shard", sort=True):
        write_shard(shard, read_pngs(group["path"]))
    return manifest


def build_manifest(
    png_manifests: list[str],
    selected_csv: str,
    *,
    manifest_csv: str,
    shards_dir: str,
    validation_fraction: float,
    seed: int,
    split="well",
    validation_plates=(),
) -> pd.DataFrame:
    """Join the plates' PNG manifests with the field metadata, split (by well or plate), write the uint8 shards
    (shards_dir/<split>-<plate>.npy), then manifest_csv, atomically."""
    cells = pd.concat([pd.read_csv(path) for path in png_manifests], ignore_index=True)
    if cells.empty:
        raise ValueError(f"no PNG cells in {', '.join(png_manifests)}: segmentation found no cell")
    fields = pd.read_csv(selected_csv)
    if "train" in fields:  # the selection also lists fields segmented only for response profiles
        fields = fields[fields["train"]]
    fields = fields[["plate", "well", "site", "compound", "concentration"]]
    cells = cells.merge(fields, on=["plate", "well", "site"], how="inner", validate="many_to_one")
    cells["split"] = split_cells(cells, split, validation_fraction, seed, validation_plates)
    cells = cells.sort_values(["plate", "well", "site", "label"])
    manifest = write_shards(cells, shards_dir)[DATASET_MANIFEST_COLUMNS]
    write_csv(manifest, manifest_csv)
    return manifest
