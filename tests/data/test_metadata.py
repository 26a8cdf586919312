import ast
from pathlib import Path

import pandas as pd
import pytest

from cellvae.data.fetch import FetchError, fetch_metadata
from cellvae.data.metadata import (
    IMAGE_COLUMNS,
    MOA_COLUMNS,
    MetadataError,
    file_record,
    read_image_table,
    read_moa_table,
    select_fields,
    write_selection,
)


@pytest.fixture(scope="module")
def real_tables(shared_bbbc021):
    metadata = shared_bbbc021 / "metadata"
    return read_image_table(metadata / "BBBC021_v1_image.csv"), read_moa_table(metadata / "BBBC021_v1_moa.csv")


def test_dmso_selection_matches_the_real_counts(real_tables):
    selected = select_fields(*real_tables, compounds=["DMSO"])
    assert len(selected) == 1320
    assert selected.groupby(["plate", "well"]).ngroups == 330
    assert selected["plate"].nunique() == 55
    assert (selected.groupby("plate")["well"].nunique() == 6).all()
    assert sorted(selected["site"].unique()) == [1, 2, 3, 4]
    assert set(selected["moa"]) == {"DMSO"}


def test_all_fields_and_channel_files(real_tables):
    selected = select_fields(*real_tables)
    assert len(selected) == 13200
    row = selected[selected["plate"] == "Week4_27481"].iloc[0]
    assert not row.file_dapi.startswith("Week")  # Week4 names carry no prefix
    assert "_w1" in row.file_dapi and "_w2" in row.file_tubulin and "_w4" in row.file_actin
    week1 = selected[selected["plate"] == "Week1_22123"].iloc[0]
    assert week1.file_dapi.startswith("Week1_150607_") and week1.week == "Week1"


def test_selection_by_moa_and_plate(real_tables):
    selected = select_fields(*real_tables, plates=["Week1_22123"], moas=["Microtubule stabilizers"])
    assert set(selected["plate"]) == {"Week1_22123"}
    assert set(selected["compound"]) <= {"taxol", "docetaxel", "epothilone B"}
    assert len(selected) > 0 and len(selected) % 4 == 0


def test_unknown_compound_lists_close_names(real_tables):
    with pytest.raises(MetadataError, match=r"config key compounds: unknown compound 'DMS0'.*close names: DMSO"):
        select_fields(*real_tables, compounds=["DMS0"])


def test_missing_column_names_file_and_column(tmp_path, shared_bbbc021):
    table = pd.read_csv(shared_bbbc021 / "metadata" / "BBBC021_v1_image.csv")
    broken = tmp_path / "BBBC021_v1_image.csv"
    table.drop(columns=["Image_FileName_Actin"]).to_csv(broken, index=False)
    with pytest.raises(MetadataError, match=r"BBBC021_v1_image.csv: missing column\(s\) Image_FileName_Actin"):
        read_image_table(broken)


def test_write_selection_and_record(tmp_path, shared_bbbc021):
    metadata = shared_bbbc021 / "metadata"
    out = tmp_path / "selected.csv"
    write_selection(
        metadata / "BBBC021_v1_image.csv",
        metadata / "BBBC021_v1_moa.csv",
        out,
        plates=["Week2_24121"],
        compounds=["DMSO"],
    )
    written = pd.read_csv(out)
    assert len(written) == 24 and not list(tmp_path.glob("*.tmp"))
    record = file_record(metadata / "BBBC021_v1_moa.csv")
    assert record["bytes"] == 4404
    assert record["sha256"] == "cddb6c6b72c043fd25f3a41d84624d4817927a1d76fe87dc829674181dd62719"


EMPTY_TABLES = {"0 bytes": "", "header only": None}  # None: the table's own header line, no rows


@pytest.mark.parametrize("content", EMPTY_TABLES.values(), ids=EMPTY_TABLES.keys())
@pytest.mark.parametrize(
    "name, columns, read",
    [
        ("BBBC021_v1_image.csv", list(IMAGE_COLUMNS), read_image_table),
        ("BBBC021_v1_moa.csv", MOA_COLUMNS, read_moa_table),
    ],
)
def test_an_empty_table_names_the_file_and_what_was_expected(tmp_path, content, name, columns, read):
    path = tmp_path / name
    path.write_text(",".join(columns) + "\n" if content is None else content)
    with pytest.raises(MetadataError) as error:
        read(path)
    message = str(error.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert ("the file is empty" if content == "" else "has a header but no rows") in message
    assert f"expected BBBC021's {name}: a header ({', '.join(columns[:3])}" in message


def test_the_metadata_stage_refuses_an_empty_image_table_naming_it_and_writes_nothing(tmp_path):
    source, out = tmp_path / "source", tmp_path / "metadata"
    source.mkdir()
    (source / "BBBC021_v1_image.csv").write_bytes(b"")
    (source / "BBBC021_v1_moa.csv").write_text("compound,concentration,moa\nDMSO,0.0,DMSO\n")
    with pytest.raises(FetchError, match=r"BBBC021_v1_image.csv: .*the file is empty; expected BBBC021's"):
        fetch_metadata(str(source), image_csv=out / "BBBC021_v1_image.csv", moa_csv=out / "BBBC021_v1_moa.csv")
    assert not list(out.glob("*.csv"))


def test_the_control_compound_is_named_once_as_metadata_control():
    """The string "DMSO" appears in the package, its scripts and benchmarks only as cellvae.data.metadata.CONTROL."""
    root = Path(__file__).resolve().parents[2]
    named = [
        str(path.relative_to(root))
        for folder in ("cellvae", "scripts", "benchmarks")
        for path in sorted((root / folder).rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and node.value == "DMSO"
    ]
    assert named == ["cellvae/data/metadata.py"]  # CONTROL = "DMSO"
