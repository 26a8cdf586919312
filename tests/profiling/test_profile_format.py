"""Profiles in the field's format: embed's columns (Metadata_*, z0 …, no provenance), Parquet, BBBC021 names
parsed, and pycytominer and copairs taking a per-well table as it is (no renaming)."""

from pathlib import Path

import numpy as np
import pandas as pd

from cellvae.cli.embed import with_name_metadata
from cellvae.profiling.field_format import field_metadata_from_name, to_field_format, write_profiles
from cellvae.profiling.profile_tables import read_profiles

PROVENANCE_COLUMNS = ["git_blob", "sha256", "size_bytes", "source_repo_path"]


def embedded_cells(cells_per_well: int = 3, seed: int = 0) -> pd.DataFrame:
    """A per-cell table as embed sees it before writing: a manifest's columns (provenance too), then z0 … z3."""
    rng = np.random.default_rng(seed)
    treatments = [("DMSO", 0.0, "DMSO"), ("taxol", 0.3, "Microtubule stabilizers"), ("AZ138", 1.0, "Eg5 inhibitors")]
    rows = []
    for plate in ("Week4_27481", "Week4_27521"):
        for column, (compound, dose, moa) in enumerate(treatments, start=2):
            for copy in range(2):
                well = f"{'BC'[copy]}{column:02d}"
                for cell in range(cells_per_well):
                    rows.append(
                        {
                            "path": f"crops/{plate}/{plate}_{well}_s1_c{cell}.tif",
                            "plate": plate,
                            "well": well,
                            "site": 1,
                            "compound": compound,
                            "concentration_uM": dose,
                            "moa": moa,
                            **dict.fromkeys(PROVENANCE_COLUMNS, "x"),
                        }
                    )
    table = pd.DataFrame(rows)
    offsets = np.eye(4)[table["moa"].factorize()[0]] * 5.0  # each MoA apart along its own axis
    latent = pd.DataFrame(rng.normal(size=(len(table), 4)) + offsets, columns=[f"z{i}" for i in range(4)])
    return pd.concat([table, latent], axis=1)


def per_well(cells: pd.DataFrame) -> pd.DataFrame:
    """Per-well medians of the field-format cells, keeping the well's metadata."""
    metadata = ["Metadata_Plate", "Metadata_Well", "Metadata_Compound", "Metadata_Concentration_uM", "Metadata_MoA"]
    features = [column for column in cells if not column.startswith("Metadata_")]
    return cells.groupby(metadata, as_index=False)[features].median()


def test_embed_columns_are_the_fields_and_carry_no_provenance():
    cells = to_field_format(embedded_cells())
    expected = ["Metadata_Path", "Metadata_Plate", "Metadata_Well", "Metadata_Site", "Metadata_Compound"]
    assert list(cells.columns[:5]) == expected
    assert {"Metadata_Concentration_uM", "Metadata_MoA"} <= set(cells.columns)
    assert list(cells.columns[-4:]) == ["z0", "z1", "z2", "z3"]
    assert not set(PROVENANCE_COLUMNS) & set(cells.columns)


def test_parquet_by_default_csv_on_request_and_both_read_back(tmp_path):
    cells = to_field_format(embedded_cells())
    write_profiles(cells, tmp_path / "cells.parquet")
    write_profiles(cells, tmp_path / "cells.csv.gz")
    assert (tmp_path / "cells.parquet").read_bytes()[:4] == b"PAR1"
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "cells.parquet"), cells)
    for name in ("cells.parquet", "cells.csv.gz"):
        read = read_profiles(str(tmp_path / name), "cell")
        assert {"plate", "well", "compound", "concentration", "moa", "path"} <= set(read.columns)
        assert read["concentration"].tolist() == cells["Metadata_Concentration_uM"].tolist()


def test_bbbc021_names_give_plate_well_and_site():
    name = Path("images/Week4_27481/Week4_150607_B02_s1_w1A4D0A51E-0EA7.tif")
    assert field_metadata_from_name(name) == {"plate": "Week4_27481", "well": "B02", "site": 1}
    assert field_metadata_from_name("crops/cell_7.png") == {}
    table = with_name_metadata(pd.DataFrame({"path": [str(name), "crops/cell_7.png"]}))
    assert table["plate"].tolist()[0] == "Week4_27481" and pd.isna(table["plate"].tolist()[1])
    assert table.loc[0, "well"] == "B02" and table.loc[0, "site"] == 1


def test_pycytominer_and_copairs_take_the_per_well_table_as_it_is(tmp_path):
    from copairs.map import average_precision
    from pycytominer import normalize

    write_profiles(per_well(to_field_format(embedded_cells())), tmp_path / "wells.parquet")
    wells = pd.read_parquet(tmp_path / "wells.parquet")
    features = ["z0", "z1", "z2", "z3"]
    normalized = normalize(wells, features=features, samples="Metadata_Compound == 'DMSO'", method="standardize")
    assert list(normalized.columns) == list(wells.columns) and len(normalized) == len(wells)

    treated = normalized[normalized["Metadata_Compound"] != "DMSO"].reset_index(drop=True)
    metadata = treated.filter(regex="^Metadata_")
    ap = average_precision(
        metadata,
        treated[features].to_numpy(),
        pos_sameby=["Metadata_MoA"],
        pos_diffby=["Metadata_Plate"],
        neg_sameby=[],
        neg_diffby=["Metadata_MoA"],
    )
    assert {"Metadata_MoA", "average_precision"} <= set(ap.columns)
    assert ap["average_precision"].mean() > 0.9  # MoAs lie apart by construction


def test_a_damaged_parquet_file_or_two_names_of_one_column_are_refused_in_one_line(tmp_path):
    import pytest

    from cellvae.data.metadata import MetadataError

    cells = to_field_format(embedded_cells())
    write_profiles(cells, tmp_path / "cells.parquet")
    cut = tmp_path / "cut.parquet"
    cut.write_bytes((tmp_path / "cells.parquet").read_bytes()[:200])
    with pytest.raises(MetadataError, match=r"cut.parquet: cannot read the profiles .*copy the file again"):
        read_profiles(str(cut), "cell")
    both = tmp_path / "both.parquet"
    write_profiles(cells.assign(plate=cells["Metadata_Plate"]), both)
    with pytest.raises(MetadataError, match="has both Metadata_Plate and plate, two names of one column"):
        read_profiles(str(both), "cell")
