import json

import numpy as np
import pandas as pd
import pytest
import tifffile
from PIL import Image

from cellvae.imaging.png import (
    channel_ranges,
    common_scale,
    compose_cell,
    compose_plate,
    reference_fields,
    resolve_scale,
    write_scale,
)


@pytest.fixture(scope="module")
def real_cells(shared_bbbc021):
    """Real 68×68 crops (channels DAPI, Tubulin, Actin) reordered to RGB = Tubulin, Actin, DAPI."""
    files = sorted((shared_bbbc021 / "images" / "single_cells" / "DMSO").glob("*.npy"))[:60]
    return [np.load(path)[..., [1, 2, 0]] for path in files]


def test_real_crops_become_valid_128px_pngs(real_cells, tmp_path):
    ranges = channel_ranges(real_cells, (0.5, 99.8))
    assert (ranges[:, 1] > ranges[:, 0]).all()
    for index, cell in enumerate(real_cells[:10]):
        path = tmp_path / f"{index}.png"
        Image.fromarray(compose_cell(cell, ranges, 128)).save(path)
        with Image.open(path) as png:
            assert png.mode == "RGB" and png.size == (128, 128)
            assert np.asarray(png).max() > 0
    brightest = np.max([compose_cell(cell, ranges, 128).max(axis=(0, 1)) for cell in real_cells], axis=0)
    assert (brightest == 255).all()  # the plate's 99.8th percentile saturates


def test_channel_order_puts_dapi_in_blue(real_cells):
    """DAPI (the nucleus) is concentrated in the crop centre; tubulin and actin spread into the cytoplasm."""
    ranges = channel_ranges(real_cells, (0.5, 99.8))
    images = np.stack([compose_cell(cell, ranges, 128) for cell in real_cells]).astype(float)
    centre = images[:, 48:80, 48:80].mean(axis=(0, 1, 2))
    border = images[:, np.r_[0:16, 112:128]].mean(axis=(0, 1, 2))
    ratio = centre / np.maximum(border, 1e-6)
    assert ratio[2] > ratio[0] and ratio[2] > ratio[1]


def test_resize_keeps_aspect_and_never_cuts():
    cell = np.zeros((40, 100, 3), np.uint16)
    cell[:, :, :] = 1000
    ranges = np.array([[0, 1000]] * 3, float)
    image = compose_cell(cell, ranges, 128)
    rows = np.flatnonzero(image.any(axis=(1, 2)))
    cols = np.flatnonzero(image.any(axis=(0, 2)))
    assert cols[0] == 0 and cols[-1] == 127  # the long side fills the canvas, whole
    assert abs((rows[-1] - rows[0] + 1) - 51) <= 1  # 40 × 128/100, centred
    assert abs(rows[0] - (127 - rows[-1])) <= 1
    small = compose_cell(cell[:20, :30], ranges, 128, scale=1.0)
    assert np.count_nonzero(small.any(axis=-1)) == 20 * 30
    half = compose_cell(cell[:20, :30], ranges, 128, scale=0.5)
    assert np.count_nonzero(half.any(axis=-1)) == 10 * 15
    with pytest.raises(ValueError, match="does not fit the 128 px canvas at scale 2"):
        compose_cell(cell, ranges, 128, scale=2.0)


def test_one_common_scale_keeps_relative_cell_size(tmp_path):
    longest = np.r_[np.full(98, 60), 150, 400]
    assert common_scale(longest, 128, 0.99) == pytest.approx(128 / np.quantile(longest, 0.99))
    assert common_scale([20, 30], 128, 0.99) == 1.0  # never enlarged
    assert resolve_scale("fill", longest, 128, 0.99) is None and resolve_scale(0.5, longest, 128, 0.99) == 0.5
    with pytest.raises(ValueError, match="png.scale must be auto, fill or a positive number"):
        resolve_scale("big", longest, 128, 0.99)
    ranges = np.array([[0, 1000]] * 3, float)
    big, small = (np.full((side, side, 3), 1000, np.uint16) for side in (120, 60))
    sizes = [np.count_nonzero(compose_cell(cell, ranges, 64, scale=0.5).any(axis=-1)) for cell in (big, small)]
    assert sizes == [60 * 60, 30 * 30]  # a big cell stays 4× the area of a small one
    boxes = pd.DataFrame({"bbox_min_x": 0, "bbox_min_y": 0, "bbox_max_x": longest, "bbox_max_y": 10})
    boxes.to_csv(tmp_path / "cells.csv", index=False)
    summary = write_scale([tmp_path / "cells.csv"], 128, "auto", 0.99, tmp_path / "scale.json")
    assert summary["scale"] == pytest.approx(common_scale(longest, 128, 0.99)) and summary["cells_too_large"] == 1
    assert json.loads((tmp_path / "scale.json").read_text()) == summary


def test_robust_scaling_ignores_outliers_and_background():
    rng = np.random.default_rng(0)
    cells = [
        np.pad(rng.integers(1000, 2000, (30, 30, 3)), ((5, 5), (5, 5), (0, 0))).astype(np.uint16) for _ in range(20)
    ]
    cells[0][10, 10] = 60000  # one hot pixel must not set the range
    ranges = channel_ranges(cells, (0.5, 99.5))
    assert (ranges[:, 0] > 950).all() and (ranges[:, 1] < 2100).all()


def _write_cell(root, name, shapes, value=500):
    paths = {}
    for channel, shape in zip(["dapi", "tubulin", "actin"], shapes):
        path = root / channel / f"{name}.tiff"
        path.parent.mkdir(exist_ok=True)
        if shape is not None:
            tifffile.imwrite(path, np.full(shape, value, np.uint16))
        paths[f"crop_{channel}"] = str(path.relative_to(root))
    return paths


def test_plate_composition_writes_pngs_and_a_qc_table(tmp_path):
    crops = tmp_path / "seg"
    crops.mkdir()
    rows = []
    for label, shapes, value in [
        (1, [(30, 20)] * 3, 500),
        (2, [(30, 20), (30, 20), (31, 20)], 500),
        (3, [(30, 20), None, (30, 20)], 500),
        (4, [(30, 20)] * 3, 0),
        (5, [(50, 40)] * 3, 900),
    ]:
        rows.append(
            {
                "plate": "Week1_22123",
                "well": "B02",
                "site": 1,
                "field": "f_w1.tif",
                "label": label,
                **_write_cell(crops, f"cell{label}", shapes, value),
            }
        )
    pd.DataFrame(rows).to_csv(tmp_path / "cells.csv", index=False)
    pd.DataFrame(
        [{"plate": "Week1_22123", "well": "C02", "site": 2, "file": "bad_w2.tif", "reason": "unreadable TIFF"}]
    ).to_csv(tmp_path / "quarantine.csv", index=False)
    messages = []
    manifest = compose_plate(
        tmp_path / "cells.csv",
        crops,
        tmp_path / "quarantine.csv",
        pngs_dir=tmp_path / "png",
        manifest_csv=tmp_path / "manifest.csv",
        qc_csv=tmp_path / "qc.csv",
        histogram_png=tmp_path / "sizes.png",
        size=64,
        percentiles=(0.5, 99.8),
        log=messages.append,
    )
    assert sorted(manifest["label"]) == [1, 5]
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == [
        "Week1_22123_B02_s1_c00001.png",
        "Week1_22123_B02_s1_c00005.png",
    ]
    qc = pd.read_csv(tmp_path / "qc.csv").set_index("field")
    assert "field quarantined" in qc.loc["bad_w2.tif", "reason"]
    reasons = pd.read_csv(tmp_path / "qc.csv").dropna(subset=["label"]).set_index("label")["reason"]
    assert "differ in size" in reasons[2] and "unreadable crop" in reasons[3] and "empty" in reasons[4]
    assert any("rejected f_w1.tif cell 3" in message for message in messages)
    assert Image.open(tmp_path / "sizes.png").size[0] > 100


def test_plate_composition_at_a_common_scale_rejects_cells_too_large_and_takes_ranges_from_dmso(tmp_path):
    crops = tmp_path / "seg"
    crops.mkdir()
    rows = []
    for label, well, shape, value in [
        (1, "B02", (30, 20), 500),
        (2, "B02", (20, 20), 700),
        (3, "C05", (30, 20), 4000),
        (4, "C05", (90, 40), 4000),
    ]:
        rows.append(
            {
                "plate": "P",
                "well": well,
                "site": 1,
                "field": f"{well}_w1.tif",
                "label": label,
                **_write_cell(crops, f"cell{label}", [shape] * 3, value),
            }
        )
    pd.DataFrame(rows).to_csv(tmp_path / "cells.csv", index=False)
    pd.DataFrame(columns=["plate", "well", "site", "file", "reason"]).to_csv(tmp_path / "quarantine.csv", index=False)
    pd.DataFrame(
        {
            "plate": ["P", "P"],
            "well": ["B02", "C05"],
            "site": [1, 1],
            "compound": ["DMSO", "taxol"],
            "train": [True, False],
        }
    ).to_csv(tmp_path / "selected.csv", index=False)
    assert reference_fields(tmp_path / "selected.csv", "P") == [("B02", 1)]
    messages = []
    manifest = compose_plate(
        tmp_path / "cells.csv",
        crops,
        tmp_path / "quarantine.csv",
        pngs_dir=tmp_path / "png",
        manifest_csv=tmp_path / "manifest.csv",
        qc_csv=tmp_path / "qc.csv",
        histogram_png=tmp_path / "sizes.png",
        size=64,
        percentiles=(0.5, 99.8),
        scale=1.0,
        reference_fields=reference_fields(tmp_path / "selected.csv", "P"),
        log=messages.append,
    )
    assert manifest["label"].tolist() == [1, 2, 3] and (manifest["scale"] == 1.0).all()
    qc = pd.read_csv(tmp_path / "qc.csv").dropna(subset=["label"]).set_index("label")["reason"]
    assert "does not fit the 64 px canvas" in qc[4]
    assert any("from 2 cells of the DMSO training fields" in message for message in messages)
    treated = np.asarray(Image.open(manifest.loc[2, "path"]))
    assert treated.max() == 255  # 4000 is far above the DMSO range (500..700): saturated
    assert np.count_nonzero(treated.any(axis=-1)) == 30 * 20  # its absolute size kept
