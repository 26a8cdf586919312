"""PNG synthesis: single-cell channel crops → size×size RGB PNGs (R = Tubulin, G = Actin, B = DAPI)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from PIL import Image

CHANNELS = ["tubulin", "actin", "dapi"]          # RGB order
QC_COLUMNS = ["plate", "well", "site", "field", "label", "reason"]
MANIFEST_COLUMNS = ["path", "plate", "well", "site", "field", "label", "crop_height", "crop_width"]
PIXELS_PER_CELL = 4096                            # sampled per cell for the plate's intensity range


def channel_ranges(cells: list[np.ndarray], percentiles=(0.5, 99.8), seed: int = 0) -> np.ndarray:
    """Per-channel (low, high) intensity from robust percentiles of in-cell pixels of many H×W×C cells."""
    rng = np.random.default_rng(seed)
    samples = []
    for cell in cells:
        pixels = cell[cell.any(axis=-1)]
        if len(pixels) > PIXELS_PER_CELL:
            pixels = pixels[rng.choice(len(pixels), PIXELS_PER_CELL, replace=False)]
        samples.append(pixels.astype(np.float64))
    if not samples or not sum(len(s) for s in samples):
        raise ValueError("no in-cell pixels to compute an intensity range from")
    ranges = np.percentile(np.concatenate(samples), percentiles, axis=0).T
    ranges[:, 1] = np.maximum(ranges[:, 1], ranges[:, 0] + 1e-6)
    return ranges


def compose_cell(cell: np.ndarray, ranges: np.ndarray, size: int = 128, upscale: bool = True) -> np.ndarray:
    """Scale an H×W×C cell to uint8 by ranges, resize preserving aspect (never cutting), centre-pad to size×size."""
    mask = cell.any(axis=-1, keepdims=True)
    low, high = ranges[:, 0], ranges[:, 1]
    scaled = np.clip((cell.astype(np.float64) - low) / (high - low), 0, 1) * mask
    image = Image.fromarray(np.round(scaled * 255).astype(np.uint8))
    height, width = cell.shape[:2]
    factor = size / max(height, width)
    if factor < 1 or upscale:
        new_width, new_height = max(1, round(width * factor)), max(1, round(height * factor))
        image = image.resize((new_width, new_height), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (size, size))
    canvas.paste(image, ((size - image.width) // 2, (size - image.height) // 2))
    return np.asarray(canvas)


def _read_crop(path: Path) -> np.ndarray:
    try:
        crop = tifffile.imread(path)
    except (OSError, ValueError, tifffile.TiffFileError) as error:
        raise ValueError(f"unreadable crop {path.name}: {error}") from None
    if crop.ndim != 2:
        raise ValueError(f"crop {path.name} is not one 2-D channel (shape {crop.shape})")
    return crop


def read_cell(row, crops_root: Path) -> np.ndarray:
    """A cell's three crops stacked in RGB order; ValueError saying why when it fails the integrity check."""
    crops = [_read_crop(crops_root / row[f"crop_{channel}"]) for channel in CHANNELS]
    shapes = {crop.shape for crop in crops}
    if len(shapes) > 1:
        raise ValueError(f"channel crops differ in size {sorted(shapes)}")
    cell = np.stack(crops, axis=-1)
    if not cell.any():
        raise ValueError("empty crop (no pixel inside the cell)")
    return cell


def _quarantined_fields(quarantine_csv) -> list[dict]:
    table = pd.read_csv(quarantine_csv) if quarantine_csv else pd.DataFrame()
    return [{"plate": row.plate, "well": row.well, "site": row.site, "field": row.file, "label": "",
             "reason": f"field quarantined: {row.reason}"} for row in table.itertuples()]


def synthesize_plate(cells_csv, crops_root, quarantine_csv, out_dir, manifest_csv, qc_csv,
                     histogram_png, size=128, percentiles=(0.5, 99.8), upscale=True, log=print) -> pd.DataFrame:
    """Write one PNG per valid cell of a plate, a manifest, a QC table of rejects, and a crop-size histogram."""
    cells_table = pd.read_csv(cells_csv)
    crops_root, out_dir = Path(crops_root), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rejected = _quarantined_fields(quarantine_csv)
    good_rows, cells = [], []
    for row in cells_table.to_dict("records"):
        try:
            cells.append(read_cell(row, crops_root))
            good_rows.append(row)
        except ValueError as error:
            log(f"rejected {row['field']} cell {row['label']}: {error}")
            rejected.append({**{key: row[key] for key in QC_COLUMNS[:-1]}, "reason": str(error)})
    manifest = []
    if cells:
        ranges = channel_ranges(cells, percentiles)
        log(f"intensity ranges (RGB = tubulin, actin, dapi): {ranges.round(1).tolist()}")
        for row, cell in zip(good_rows, cells):
            name = f"{row['plate']}_{row['well']}_s{row['site']}_c{int(row['label']):05d}.png"
            Image.fromarray(compose_cell(cell, ranges, size, upscale)).save(out_dir / name)
            manifest.append({"path": str(out_dir / name), **{k: row[k] for k in MANIFEST_COLUMNS[1:6]},
                             "crop_height": cell.shape[0], "crop_width": cell.shape[1]})
    manifest = pd.DataFrame(manifest, columns=MANIFEST_COLUMNS)
    _write_csv(pd.DataFrame(rejected, columns=QC_COLUMNS), qc_csv)
    _plot_crop_sizes(manifest, size, histogram_png)
    _write_csv(manifest, manifest_csv)
    log(f"{len(manifest)} PNGs written, {len(rejected)} rejected (see {qc_csv})")
    return manifest


def _write_csv(table: pd.DataFrame, path) -> None:
    tmp = f"{path}.tmp"
    table.to_csv(tmp, index=False)
    os.replace(tmp, path)


def _plot_crop_sizes(manifest: pd.DataFrame, size: int, path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    longest = manifest[["crop_height", "crop_width"]].max(axis=1)
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.hist(longest, bins=30, color="tab:blue")
    axes.axvline(size, color="tab:red", linestyle="--", label=f"PNG canvas ({size} px)")
    axes.set_xlabel("longest side of the cell's bounding box (px)")
    axes.set_ylabel("cells")
    axes.set_title(f"Crop sizes ({len(manifest)} cells)")
    axes.legend()
    figure.tight_layout()
    tmp = f"{path}.tmp.png"
    figure.savefig(tmp, dpi=100)
    plt.close(figure)
    os.replace(tmp, path)
