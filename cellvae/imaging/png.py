"""PNG composition: single-cell channel crops → size×size RGB PNGs (R = Tubulin, G = Actin, B = DAPI).

Cells keep their absolute size: every cell of a data set is resized by one common factor (`png.scale`: auto =
the largest factor at which the scale_quantile-th longest crop fits the canvas, never above 1; or a number),
so cell size, the strongest single phenotype, survives; cells that would still not fit are rejected (QC).
`png.scale: fill` resizes each cell to fill the canvas (the thesis's preprocessing). Intensities are scaled
by per-plate, per-channel robust ranges from the plate's DMSO training fields only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from PIL import Image

from cellvae.core.channels import RGB_STAINS, crop_column
from cellvae.core.files import save_figure, write_csv, write_json
from cellvae.data.metadata import CONTROL

QC_COLUMNS = ["plate", "well", "site", "field", "label", "reason"]
PNG_MANIFEST_COLUMNS = ["path", "plate", "well", "site", "field", "label", "crop_height", "crop_width", "scale"]
PIXELS_PER_CELL = 4096  # sampled per cell for the plate's intensity range


def channel_ranges(cells: list[np.ndarray], percentiles, seed: int = 0) -> np.ndarray:
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


def common_scale(longest_sides, size: int, quantile: float) -> float:
    """One resize factor for a whole data set: the largest at which the quantile-th longest crop fits the
    size px canvas, at most 1 (cells are never enlarged)."""
    longest = np.asarray(longest_sides, dtype=np.float64)
    if not len(longest):
        raise ValueError("no cells to choose a common scale from")
    return float(min(1.0, size / np.quantile(longest, quantile)))


def compose_cell(
    cell: np.ndarray, ranges: np.ndarray, size: int = 128, scale: float | None = None, alpha: bool = False
) -> np.ndarray:
    """Scale an H×W×C cell to uint8 by ranges, resize by scale (None: to fill the canvas, aspect kept), and
    centre-pad to size×size; ValueError when the resized cell does not fit the canvas (it is never cut).
    alpha: size×size×4, the 4th channel the cell's mask (255 inside the cell, 0 outside and on the padding):
    the segmentation's own label, as the crop is zero outside it (crop_and_measure), resized as the pixels are and
    thresholded at half; the RGB channels are the same as without alpha."""
    mask = cell.any(axis=-1, keepdims=True)
    low, high = ranges[:, 0], ranges[:, 1]
    scaled = np.clip((cell.astype(np.float64) - low) / (high - low), 0, 1) * mask
    image = Image.fromarray(np.round(scaled * 255).astype(np.uint8))
    height, width = cell.shape[:2]
    factor = size / max(height, width) if scale is None else scale
    new_width, new_height = max(1, round(width * factor)), max(1, round(height * factor))
    if max(new_width, new_height) > size:
        raise ValueError(f"cell of {height}×{width} px does not fit the {size} px canvas at scale {factor:.3g}")
    if (new_width, new_height) != (width, height):
        image = image.resize((new_width, new_height), Image.Resampling.LANCZOS)
    corner = ((size - image.width) // 2, (size - image.height) // 2)
    canvas = Image.new("RGB", (size, size))
    canvas.paste(image, corner)
    if not alpha:
        return np.asarray(canvas)
    label = Image.fromarray(mask[..., 0].astype(np.uint8) * 255).resize(image.size, Image.Resampling.BILINEAR)
    cell_mask = Image.new("L", (size, size))
    cell_mask.paste(label.point(lambda value: 255 if value >= 128 else 0), corner)
    return np.dstack([np.asarray(canvas), np.asarray(cell_mask)])


def resolve_scale(setting, longest_sides, size: int, quantile: float) -> float | None:
    """The resize factor of config key png.scale: "auto" (common_scale), "fill" (None: per cell) or a number."""
    if setting == "fill":
        return None
    if setting == "auto":
        return common_scale(longest_sides, size, quantile)
    if isinstance(setting, (int, float)) and not isinstance(setting, bool) and setting > 0:
        return float(setting)
    raise ValueError(f"config key png.scale must be auto, fill or a positive number, got {setting!r}")


def write_scale(cells_csvs: list, size: int, setting, quantile: float, out_json) -> dict:
    """scale.json: the data set's common resize factor (config png.scale); with auto, from every plate's crop
    sizes (cells_csvs, the segmentation's tables with bounding boxes)."""
    summary = {"setting": setting, "size": size}
    if setting == "auto":
        boxes = pd.concat(
            [
                pd.read_csv(path, usecols=["bbox_min_x", "bbox_min_y", "bbox_max_x", "bbox_max_y"])
                for path in cells_csvs
            ],
            ignore_index=True,
        )
        if boxes.empty:
            raise ValueError(f"no cells in {', '.join(map(str, cells_csvs))}: segmentation found none")
        longest = np.maximum(boxes["bbox_max_x"] - boxes["bbox_min_x"], boxes["bbox_max_y"] - boxes["bbox_min_y"])
        scale = common_scale(longest, size, quantile)
        summary.update(
            quantile=quantile,
            n_cells=len(longest),
            longest_side_px={str(q): float(np.quantile(longest, q)) for q in (0.5, 0.99, 1.0)},
            cells_too_large=int((longest * scale > size).sum()),
        )
    else:
        scale = resolve_scale(setting, [], size, quantile)
    summary["scale"] = scale
    write_json(summary, out_json)
    return summary


def reference_fields(selected_csv, plate: str) -> list[tuple[str, int]]:
    """(well, site) of the plate's DMSO fields selected for training: they set the plate's intensity ranges."""
    fields = pd.read_csv(selected_csv)
    chosen = fields[(fields["plate"] == plate) & (fields["compound"] == CONTROL)]
    if "train" in chosen:
        chosen = chosen[chosen["train"]]
    return [(well, int(site)) for well, site in zip(chosen["well"], chosen["site"])]


def _read_crop(path: Path) -> np.ndarray:
    try:
        crop = tifffile.imread(path)
    except (OSError, ValueError, tifffile.TiffFileError) as error:
        raise ValueError(f"unreadable crop {path.name}: {error}") from None
    if crop.ndim != 2:
        raise ValueError(f"crop {path.name} is not one 2-D channel (shape {crop.shape})")
    return crop


def read_cell(row, crops_dir: Path) -> np.ndarray:
    """A cell's three crops (paths relative to crops_dir) stacked in RGB order; ValueError saying why when it
    fails the integrity check."""
    crops = [_read_crop(crops_dir / row[crop_column(stain)]) for stain in RGB_STAINS]
    shapes = {crop.shape for crop in crops}
    if len(shapes) > 1:
        raise ValueError(f"channel crops differ in size {sorted(shapes)}")
    cell = np.stack(crops, axis=-1)
    if not cell.any():
        raise ValueError("empty crop (no pixel inside the cell)")
    return cell


def _quarantined_fields(quarantine_csv) -> list[dict]:
    table = pd.read_csv(quarantine_csv) if quarantine_csv else pd.DataFrame()
    return [
        {
            "plate": row.plate,
            "well": row.well,
            "site": row.site,
            "field": row.file,
            "label": "",
            "reason": f"field quarantined: {row.reason}",
        }
        for row in table.itertuples()
    ]


def _reject(rejected: list, row: dict, error: ValueError, log) -> None:
    log(f"rejected {row['field']} cell {row['label']}: {error}")
    rejected.append({**{key: row[key] for key in QC_COLUMNS[:-1]}, "reason": str(error)})


def read_cells(cells_table: pd.DataFrame, crops_dir: Path, rejected: list, log) -> tuple[list, list]:
    """(rows, cells) of the cells whose crops pass the integrity check (read_cell); the others are logged and
    appended to rejected with the reason."""
    good_rows, cells = [], []
    for row in cells_table.to_dict("records"):
        try:
            cells.append(read_cell(row, crops_dir))
            good_rows.append(row)
        except ValueError as error:
            _reject(rejected, row, error, log)
    return good_rows, cells


def write_pngs(rows: list, cells: list, ranges, pngs_dir: Path, size: int, scale, rejected: list, log) -> list:
    """One PNG per cell composed on the size px canvas (compose_cell) in pngs_dir; the manifest rows of those
    written (a cell that does not fit the canvas is logged and appended to rejected)."""
    manifest = []
    for row, cell in zip(rows, cells):
        name = f"{row['plate']}_{row['well']}_s{row['site']}_c{int(row['label']):05d}.png"
        try:
            image = compose_cell(cell, ranges, size, scale, alpha=True)  # the cell's mask as the PNG's alpha
        except ValueError as error:
            _reject(rejected, row, error, log)
            continue
        Image.fromarray(image).save(pngs_dir / name)
        manifest.append(
            {
                "path": str(pngs_dir / name),
                **{k: row[k] for k in PNG_MANIFEST_COLUMNS[1:6]},
                "crop_height": cell.shape[0],
                "crop_width": cell.shape[1],
                "scale": size / max(cell.shape[:2]) if scale is None else scale,
            }
        )
    return manifest


def compose_plate(
    cells_csv,
    crops_dir,
    quarantine_csv,
    *,
    pngs_dir,
    manifest_csv,
    qc_csv,
    histogram_png,
    size,
    percentiles,
    scale=None,
    reference_fields=None,
    log=print,
) -> pd.DataFrame:
    """One PNG per valid cell of a plate (cells_csv, its crops in crops_dir) in pngs_dir, their manifest_csv, a
    qc_csv of rejects (and of the fields in quarantine_csv), and a crop-size histogram_png.

    scale: the common resize factor (None: each cell fills the canvas). reference_fields: (well, site) pairs
    whose cells set the plate's intensity ranges (the plate's DMSO training fields); None or none of them
    with cells: all cells of the plate.
    """
    pngs_dir = Path(pngs_dir)
    pngs_dir.mkdir(parents=True, exist_ok=True)
    rejected = _quarantined_fields(quarantine_csv)
    good_rows, cells = read_cells(pd.read_csv(cells_csv), Path(crops_dir), rejected, log)
    manifest = []
    if cells:
        reference = set(map(tuple, reference_fields or []))
        chosen = [cell for row, cell in zip(good_rows, cells) if (row["well"], int(row["site"])) in reference]
        ranges = channel_ranges(chosen or cells, percentiles)
        log(
            f"intensity ranges (RGB = tubulin, actin, dapi) from {len(chosen or cells)} cells of "
            f"{'the DMSO training fields' if chosen else 'all fields (no DMSO training field on the plate)'}: "
            f"{ranges.round(1).tolist()}"
        )
        manifest = write_pngs(good_rows, cells, ranges, pngs_dir, size, scale, rejected, log)
    manifest = pd.DataFrame(manifest, columns=PNG_MANIFEST_COLUMNS)
    write_csv(pd.DataFrame(rejected, columns=QC_COLUMNS), qc_csv)
    _plot_crop_sizes(manifest, size, histogram_png)
    write_csv(manifest, manifest_csv)
    log(f"{len(manifest)} PNGs written, {len(rejected)} rejected (see {qc_csv})")
    return manifest


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
    save_figure(figure, path)
    plt.close(figure)
