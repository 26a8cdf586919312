import numpy as np
import pandas as pd
import pytest
import tifffile
from PIL import Image

from cellvae.png import channel_ranges, compose_cell, synthesize_plate


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
    assert (brightest == 255).all()                           # the plate's 99.8th percentile saturates


def test_channel_order_puts_dapi_in_blue(real_cells):
    """DAPI (the nucleus) is concentrated in the crop centre; tubulin and actin spread into the cytoplasm."""
    ranges = channel_ranges(real_cells)
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
    assert cols[0] == 0 and cols[-1] == 127                    # the long side fills the canvas, whole
    assert abs((rows[-1] - rows[0] + 1) - 51) <= 1             # 40 × 128/100, centred
    assert abs(rows[0] - (127 - rows[-1])) <= 1
    small = compose_cell(cell[:20, :30], ranges, 128, upscale=False)
    assert np.count_nonzero(small.any(axis=-1)) == 20 * 30


def test_robust_scaling_ignores_outliers_and_background():
    rng = np.random.default_rng(0)
    cells = [np.pad(rng.integers(1000, 2000, (30, 30, 3)), ((5, 5), (5, 5), (0, 0))).astype(np.uint16)
             for _ in range(20)]
    cells[0][10, 10] = 60000                                  # one hot pixel must not set the range
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


def test_plate_synthesis_writes_pngs_and_a_qc_table(tmp_path):
    crops = tmp_path / "seg"
    crops.mkdir()
    rows = []
    for label, shapes, value in [(1, [(30, 20)] * 3, 500), (2, [(30, 20), (30, 20), (31, 20)], 500),
                                 (3, [(30, 20), None, (30, 20)], 500), (4, [(30, 20)] * 3, 0),
                                 (5, [(50, 40)] * 3, 900)]:
        rows.append({"plate": "Week1_22123", "well": "B02", "site": 1, "field": "f_w1.tif", "label": label,
                     **_write_cell(crops, f"cell{label}", shapes, value)})
    pd.DataFrame(rows).to_csv(tmp_path / "cells.csv", index=False)
    pd.DataFrame([{"plate": "Week1_22123", "well": "C02", "site": 2, "file": "bad_w2.tif",
                   "reason": "unreadable TIFF"}]).to_csv(tmp_path / "quarantine.csv", index=False)
    messages = []
    manifest = synthesize_plate(tmp_path / "cells.csv", crops, tmp_path / "quarantine.csv", tmp_path / "png",
                                tmp_path / "manifest.csv", tmp_path / "qc.csv", tmp_path / "sizes.png",
                                size=64, log=messages.append)
    assert sorted(manifest["label"]) == [1, 5]
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == [
        "Week1_22123_B02_s1_c00001.png", "Week1_22123_B02_s1_c00005.png"]
    qc = pd.read_csv(tmp_path / "qc.csv").set_index("field")
    assert "field quarantined" in qc.loc["bad_w2.tif", "reason"]
    reasons = pd.read_csv(tmp_path / "qc.csv").dropna(subset=["label"]).set_index("label")["reason"]
    assert "differ in size" in reasons[2] and "unreadable crop" in reasons[3] and "empty" in reasons[4]
    assert any("rejected f_w1.tif cell 3" in message for message in messages)
    assert Image.open(tmp_path / "sizes.png").size[0] > 100
