"""Tests of cellvae.data.synthetic: a synthetic mini BBBC021 in the real source layout."""

import copy
import io
import json
import re
import uuid
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from cellvae.core.channels import STAINS
from cellvae.data import synthetic, synthetic_fields
from cellvae.data.synthetic import MARKER, generate_mini_bbbc021, source_files

REAL_METADATA = Path(__file__).resolve().parents[3] / "shared" / "bbbc021" / "metadata"
needs_real_metadata = pytest.mark.skipif(
    not (REAL_METADATA / "BBBC021_v1_image.csv").exists(), reason=f"real BBBC021 metadata not found at {REAL_METADATA}"
)
SETTINGS = {
    "seed": 2020,
    "plates": ["Week1_22123", "Week4_27481"],
    "treated": {"compound": "taxol", "concentration": 0.3, "moa": "Microtubule stabilizers"},
    "wells_per_compound": 2,
    "sites_per_well": 2,
    "width": 256,
    "height": 256,
    "cells_per_field": 10,
}
NAME = re.compile(
    r"^(?P<prefix>.*?)(?P<well>[B-G]\d\d)_s(?P<site>\d)_w(?P<wave>[124])"
    r"(?P<uuid>[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12})"
    r"\.tif$"
)


def generate(folder, chosen):
    """The synthetic data set into a folder, in the real source layout."""
    generate_mini_bbbc021(chosen, **source_files(folder, chosen["plates"]))


def settings(**changes) -> dict:
    """A deep copy of SETTINGS with some keys replaced."""
    result = copy.deepcopy(SETTINGS)
    result.update(changes)
    return result


def read_images(out_dir: Path) -> pd.DataFrame:
    return pd.read_csv(out_dir / "BBBC021_v1_image.csv")


def load_channel(out_dir: Path, row: pd.Series, channel: str) -> np.ndarray:
    plate = row["Image_Metadata_Plate_DAPI"]
    with zipfile.ZipFile(out_dir / f"BBBC021_v1_images_{plate}.zip") as archive:
        data = archive.read(f"{plate}/{row[f'Image_FileName_{channel}']}")
    return tifffile.imread(io.BytesIO(data))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out_dir = tmp_path_factory.mktemp("mini_bbbc021")
    generate(out_dir, settings())
    return out_dir


def test_writes_exactly_the_source_files_and_its_marker(dataset):
    files = [
        "BBBC021_v1_image.csv",
        "BBBC021_v1_images_Week1_22123.zip",
        "BBBC021_v1_images_Week4_27481.zip",
        "BBBC021_v1_moa.csv",
    ]
    assert sorted(p.name for p in dataset.iterdir()) == sorted([*files, MARKER])
    assert json.loads((dataset / MARKER).read_text())["files"] == files


def test_a_folder_holding_anything_it_did_not_write_is_refused_untouched(tmp_path):
    """Was: the generator replaced a user's BBBC021 files of the same names."""
    (tmp_path / "BBBC021_v1_image.csv").write_text("the user's own table")
    (tmp_path / "notes").mkdir()
    with pytest.raises(ValueError, match=r"holds BBBC021_v1_image.csv, notes, which the synthetic generator did not"):
        generate(tmp_path, settings(width=64, height=64, cells_per_field=1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["BBBC021_v1_image.csv", "notes"]
    assert (tmp_path / "BBBC021_v1_image.csv").read_text() == "the user's own table"


def test_its_own_folder_is_rewritten_and_an_unreadable_marker_is_not_its_own(tmp_path):
    small = settings(width=64, height=64, cells_per_field=1, plates=["Week1_22123"])
    generate(tmp_path, small)
    generate(tmp_path, small | {"plates": ["Week4_27481"]})  # its own: the new plate beside the old one
    assert synthetic.foreign_entries(tmp_path) == []
    assert "BBBC021_v1_images_Week1_22123.zip" in json.loads((tmp_path / MARKER).read_text())["files"]
    (tmp_path / MARKER).write_text("{truncated")
    with pytest.raises(ValueError, match="holds BBBC021_v1_image.csv, .* and 1 more, which"):
        generate(tmp_path, small)


@needs_real_metadata
def test_csv_headers_are_byte_identical_to_the_real_files(dataset):
    for name in ("BBBC021_v1_image.csv", "BBBC021_v1_moa.csv"):
        real_header = (REAL_METADATA / name).read_bytes().split(b"\n", 1)[0]
        assert (dataset / name).read_bytes().split(b"\n", 1)[0] == real_header


@needs_real_metadata
def test_image_rows_quote_like_the_real_rows(dataset):
    def quoting(line: str) -> list[bool]:
        return [part.startswith('"') for part in line.split(",")]

    real_row = (REAL_METADATA / "BBBC021_v1_image.csv").read_text().splitlines()[1]
    for line in (dataset / "BBBC021_v1_image.csv").read_text().splitlines()[1:]:
        assert quoting(line) == quoting(real_row)
        assert re.search(r",\d+\.\d{6}$", line)


def test_image_csv_content(dataset):
    text = (dataset / "BBBC021_v1_image.csv").read_bytes()
    assert text.endswith(b"\n") and not text.endswith(b"\n\n") and b"\r" not in text
    images = read_images(dataset)
    assert len(images) == 2 * 2 * 2 * 2  # plates x compounds x wells x sites
    assert images["TableNumber"].tolist() == [1] * 8 + [4] * 8
    assert images["Replicate"].tolist() == [1] * 8 + [2] * 8
    for _, table in images.groupby("TableNumber"):
        assert table["ImageNumber"].tolist() == list(range(1, len(table) + 1))
    for channel in STAINS:
        expected = "Week" + images["TableNumber"].astype(str) + "/" + images["Image_Metadata_Plate_DAPI"]
        assert (images[f"Image_PathName_{channel}"] == expected).all()
    dmso = images[images["Image_Metadata_Compound"] == "DMSO"]
    taxol = images[images["Image_Metadata_Compound"] == "taxol"]
    assert len(dmso) == len(taxol) == 8
    assert set(dmso["Image_Metadata_Well_DAPI"]) == {"B02", "C02"}
    assert (dmso["Image_Metadata_Concentration"] == 0).all()
    assert (taxol["Image_Metadata_Concentration"] == 0.3).all()
    assert not set(taxol["Image_Metadata_Well_DAPI"]) & set(synthetic.DMSO_WELLS)
    assert b',"DMSO",0.000000\n' in text and b',"taxol",0.300000\n' in text


def test_moa_csv(dataset):
    assert (dataset / "BBBC021_v1_moa.csv").read_text() == (
        '"compound",concentration,"moa"\n"DMSO",0.000000,"DMSO"\n"taxol",0.300000,"Microtubule stabilizers"\n'
    )
    moa = pd.read_csv(dataset / "BBBC021_v1_moa.csv")
    assert moa.columns.tolist() == ["compound", "concentration", "moa"]


@needs_real_metadata
def test_moa_rows_match_the_real_table(dataset):
    real_lines = set((REAL_METADATA / "BBBC021_v1_moa.csv").read_text().splitlines())
    assert set((dataset / "BBBC021_v1_moa.csv").read_text().splitlines()) <= real_lines


def test_file_names_follow_the_week_conventions(dataset):
    images = read_images(dataset)
    uuids = set()
    for _, row in images.iterrows():
        for channel, wave in zip(STAINS, "124"):
            match = NAME.match(row[f"Image_FileName_{channel}"])
            assert match, row[f"Image_FileName_{channel}"]
            assert match["prefix"] == {1: "Week1_150607_", 4: ""}[row["TableNumber"]]
            assert match["well"] == row["Image_Metadata_Well_DAPI"] and match["wave"] == wave
            assert uuid.UUID(match["uuid"]).version == 4
            uuids.add(match["uuid"])
    assert len(uuids) == 3 * len(images)


@pytest.mark.parametrize(
    "plate, prefix",
    [
        ("Week1_22141", "Week1_150607_"),
        ("Week2_24121", "Week2_180607_"),
        ("Week3_25421", "Week3_290607_"),
        ("Week4_27481", ""),
        ("Week5_28901", "Week5_130707_"),
        ("Week6_31641", "Week6_200607_"),
        ("Week7_34341", "Week7_230707_"),
        ("Week7_34381", "Week7_230707_"),
        ("Week7_34641", "Week7_7__"),
        ("Week7_34681", "Week7_7__"),
        ("Week8_38203", "Week8_4sites_"),
        ("Week9_39206", "Week9_090907_"),
        ("Week10_40111", "Week10_200907_"),
    ],
)
def test_plate_prefixes(plate, prefix):
    assert synthetic.plate_week_and_prefix(plate)[1] == prefix


@needs_real_metadata
def test_prefixes_and_tables_match_every_real_plate():
    real = pd.read_csv(REAL_METADATA / "BBBC021_v1_image.csv")
    for plate, rows in real.groupby("Image_Metadata_Plate_DAPI"):
        week, prefix = synthetic.plate_week_and_prefix(plate)
        assert rows["Image_FileName_DAPI"].str.match(re.escape(prefix) + "[B-G]").all(), plate
        assert (rows["TableNumber"] == week % 10).all(), plate


@pytest.mark.parametrize("plate", ["Week11_12345", "Plate_1", "week1_22123", "Week7_99999", "Week0_1", "Week01_22123"])
def test_unknown_plate_is_rejected_by_name(tmp_path, plate):
    with pytest.raises(ValueError, match=re.escape(repr(plate))):
        generate(tmp_path, settings(plates=[plate]))
    assert not list(tmp_path.iterdir())


def test_zip_members_match_the_csv(dataset):
    images = read_images(dataset)
    for plate, rows in images.groupby("Image_Metadata_Plate_DAPI", sort=False):
        expected = [
            f"{plate}/{name}" for _, row in rows.iterrows() for name in row[[f"Image_FileName_{c}" for c in STAINS]]
        ]
        with zipfile.ZipFile(dataset / f"BBBC021_v1_images_{plate}.zip") as archive:
            assert archive.namelist() == expected
            assert all(info.compress_type == zipfile.ZIP_DEFLATED for info in archive.infolist())
            assert archive.testzip() is None


def test_images_are_single_page_uint16_fields(dataset):
    images = read_images(dataset)
    for _, row in images.iloc[[0, -1]].iterrows():
        for channel in STAINS:
            plate = row["Image_Metadata_Plate_DAPI"]
            with zipfile.ZipFile(dataset / f"BBBC021_v1_images_{plate}.zip") as archive:
                data = archive.read(f"{plate}/{row[f'Image_FileName_{channel}']}")
            with tifffile.TiffFile(io.BytesIO(data)) as tiff:
                assert len(tiff.pages) == 1
                image = tiff.pages[0].asarray()
            assert image.dtype == np.uint16 and image.shape == (256, 256)
            assert 150 < np.percentile(image, 5) < 450  # camera offset plus background
            assert image.max() > 1000  # stained cells
    dapi = load_channel(dataset, images.iloc[0], "DAPI")
    assert (dapi > 1000).mean() > 0.02  # nuclei


def test_same_seed_gives_identical_bytes_and_another_seed_does_not(dataset, tmp_path):
    generate(tmp_path / "again", settings())
    generate(tmp_path / "other", settings(seed=7))
    for path in dataset.iterdir():
        assert (tmp_path / "again" / path.name).read_bytes() == path.read_bytes(), path.name
    assert (tmp_path / "other" / "BBBC021_v1_image.csv").read_bytes() != (dataset / "BBBC021_v1_image.csv").read_bytes()
    assert (tmp_path / "other" / "BBBC021_v1_moa.csv").read_bytes() == (dataset / "BBBC021_v1_moa.csv").read_bytes()
    first, other = read_images(dataset).iloc[0], read_images(tmp_path / "other").iloc[0]
    assert not np.array_equal(load_channel(dataset, first, "DAPI"), load_channel(tmp_path / "other", other, "DAPI"))


def test_illumination_is_uneven_and_differs_between_plates(dataset):
    images = read_images(dataset)
    patterns = []
    for _, rows in images.groupby("Image_Metadata_Plate_DAPI", sort=False):
        for channel in STAINS:
            # Cells sit elsewhere in every field: the minimum over fields is background.
            low = np.min([load_channel(dataset, row, channel) for _, row in rows.iterrows()], 0)
            blocks = low.reshape(4, 64, 4, 64).astype(float)  # 4 x 4 blocks of 64 x 64 pixels
            background = np.median(blocks, axis=(1, 3)) - synthetic_fields.CAMERA_OFFSET
            assert 40 < background.min() and background.max() < 200
            assert background.min() < 0.9 * background.max(), channel  # >= 10% drop
            patterns.append(background / background.max())
    assert not np.allclose(patterns[0], patterns[3], atol=0.03)  # DAPI: plate 1 vs plate 2
    assert not np.allclose(patterns[0], patterns[1], atol=0.03)  # plate 1: DAPI vs Tubulin


def test_treated_tubulin_differs_from_dmso(dataset):
    images = read_images(dataset)
    stats = {}
    for compound, rows in images.groupby("Image_Metadata_Compound"):
        tubulin = np.stack([load_channel(dataset, row, "Tubulin").astype(float) for _, row in rows.iterrows()])
        stats[compound] = (tubulin.mean(), np.percentile(tubulin, 99.5))
    assert stats["taxol"][0] > 1.15 * stats["DMSO"][0]
    assert stats["taxol"][1] > 1.3 * stats["DMSO"][1]  # bright microtubule bundles


def test_full_size_field(tmp_path):
    generate(
        tmp_path,
        settings(
            plates=["Week10_40111"],
            wells_per_compound=1,
            sites_per_well=1,
            width=1280,
            height=1024,
            cells_per_field=120,
        ),
    )
    images = read_images(tmp_path)
    assert images["TableNumber"].tolist() == [0, 0]  # as the real file writes Week10
    for channel in STAINS:
        image = load_channel(tmp_path, images.iloc[1], channel)
        assert image.shape == (1024, 1280) and image.dtype == np.uint16


@pytest.mark.parametrize(
    "key, value",
    [
        ("wells_per_compound", 7),
        ("wells_per_compound", 0),
        ("sites_per_well", 0),
        ("width", 0),
        ("height", -512),
        ("width", 512.0),
        ("cells_per_field", 0),
        ("seed", "x"),
        ("plates", []),
        ("plates", ["Week1_22123", "Week1_22123"]),
        ("treated", {"compound": "taxol", "concentration": 0, "moa": "Microtubule stabilizers"}),
        ("treated", {"compound": "DMSO", "concentration": 0.3, "moa": "DMSO"}),
        ("treated", {"compound": "taxol", "concentration": 0.3}),
    ],
)
def test_bad_settings_are_rejected_by_key(tmp_path, key, value):
    with pytest.raises(ValueError, match=key):
        generate(tmp_path, settings(**{key: value}))
    assert not list(tmp_path.iterdir())


def test_missing_key_is_named(tmp_path):
    bad = settings()
    del bad["cells_per_field"]
    with pytest.raises(ValueError, match="cells_per_field"):
        generate(tmp_path, bad)


def test_failure_leaves_no_files(tmp_path, monkeypatch):
    calls = []

    def failing_tiff(image):
        calls.append(image)
        if len(calls) > 30:  # during the second plate
            raise RuntimeError("disk full")
        return b"tiff"

    monkeypatch.setattr(synthetic, "_tiff_bytes", failing_tiff)
    with pytest.raises(RuntimeError, match="disk full"):
        generate(tmp_path, settings())
    assert not list(tmp_path.iterdir())


def test_writes_exactly_the_files_it_is_given(dataset, tmp_path):
    chosen = settings()
    archives = {plate: tmp_path / "zips" / f"{plate}.zip" for plate in chosen["plates"]}
    generate_mini_bbbc021(chosen, image_csv=tmp_path / "images.csv", moa_csv=tmp_path / "moa.csv", archives=archives)
    assert (tmp_path / "images.csv").read_bytes() == (dataset / "BBBC021_v1_image.csv").read_bytes()
    assert (tmp_path / "moa.csv").read_bytes() == (dataset / "BBBC021_v1_moa.csv").read_bytes()
    for plate, archive in archives.items():
        assert archive.read_bytes() == (dataset / f"BBBC021_v1_images_{plate}.zip").read_bytes()
    assert sorted(path.name for path in tmp_path.rglob("*")) == sorted(
        ["images.csv", "moa.csv", "zips", *(archive.name for archive in archives.values()), MARKER, MARKER]
    )
    with pytest.raises(ValueError, match="archives given for plates"):
        generate_mini_bbbc021(chosen, image_csv=tmp_path / "a.csv", moa_csv=tmp_path / "b.csv", archives={})
