import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cellvae.imaging.dataset import build_manifest, split_by_well, split_cells


def _cells(wells, per_well=5):
    return pd.DataFrame(
        [
            {
                "plate": plate,
                "well": well,
                "site": 1,
                "label": label,
                "path": f"{plate}_{well}_{label}.png",
                "field": "f",
            }
            for plate, well in wells
            for label in range(per_well)
        ]
    )


def test_split_keeps_whole_wells_together_and_is_seeded():
    wells = [(f"Week1_{p}", w) for p in (1, 2) for w in ("B02", "C02", "D02", "E11", "F11")]
    cells = _cells(wells)
    split = split_by_well(cells, 0.2, seed=3)
    per_well = cells.assign(split=split).groupby(["plate", "well"])["split"].nunique()
    assert (per_well == 1).all()
    assert (split == "validation").sum() == 2 * 5  # 20% of 10 wells
    assert split.equals(split_by_well(cells, 0.2, seed=3))
    assert any(not split.equals(split_by_well(cells, 0.2, seed=other)) for other in range(4, 8))


def test_split_needs_two_wells():
    with pytest.raises(ValueError, match="at least 2"):
        split_by_well(_cells([("Week1_1", "B02")]), 0.5, 0)


def test_manifest_joins_compounds(tmp_path):
    cells = _cells([("Week1_1", "B02"), ("Week1_1", "C02"), ("Week1_1", "D02")])
    cells["path"] = [str(tmp_path / path) for path in cells["path"]]
    for index, path in enumerate(cells["path"]):
        Image.fromarray(np.full((8, 8, 3), index, np.uint8)).save(path)
    cells.to_csv(tmp_path / "png.csv", index=False)
    pd.DataFrame(
        [
            {"plate": "Week1_1", "well": w, "site": 1, "compound": "DMSO", "concentration": 0.0}
            for w in ("B02", "C02", "D02")
        ]
    ).to_csv(tmp_path / "selected.csv", index=False)
    manifest = build_manifest(
        [tmp_path / "png.csv"],
        tmp_path / "selected.csv",
        manifest_csv=tmp_path / "m.csv",
        shards_dir=tmp_path / "shards",
        validation_fraction=0.3,
        seed=0,
    )
    assert set(manifest["compound"]) == {"DMSO"} and len(manifest) == 15
    assert manifest["split"].value_counts().to_dict() == {"train": 10, "validation": 5}
    assert pd.read_csv(tmp_path / "m.csv").columns.tolist() == manifest.columns.tolist()
    for shard, group in manifest.groupby("shard"):  # decoded cells, in manifest order
        cells_in_shard = np.load(shard)
        assert cells_in_shard.shape == (len(group), 8, 8, 3) and cells_in_shard.dtype == np.uint8
        assert cells_in_shard[:, 0, 0, 0].tolist() == [cells["path"].tolist().index(p) for p in group["path"]]


def test_plate_split_leaves_no_validation_plate_in_training():
    wells = [(f"Week{p}_1", w) for p in (1, 2, 3) for w in ("B02", "C02")]
    cells = _cells(wells)
    split = split_cells(cells, "plate", 0.25, 0, ["Week2_1"])
    assert set(cells.loc[split == "validation", "plate"]) == {"Week2_1"}
    assert "Week2_1" not in set(cells.loc[split == "train", "plate"])
    assert (split == "validation").sum() == 10
    with pytest.raises(ValueError, match=r"dataset.validation_plates: \['Week9_1'\] not among the plates"):
        split_cells(cells, "plate", 0.25, 0, ["Week9_1"])
    with pytest.raises(ValueError, match="none is left for training"):
        split_cells(cells, "plate", 0.25, 0, ["Week1_1", "Week2_1", "Week3_1"])
    with pytest.raises(ValueError, match="dataset.split must be 'well' or 'plate'"):
        split_cells(cells, "site", 0.25, 0)
    assert split_cells(cells, "well", 0.25, 3).equals(split_by_well(cells, 0.25, 3))
