"""Files: written so that a reader never sees half of one, never over a file the command reads; PNGs and tables
read with errors naming the file."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

CONVERTED_PNG_MODES = ("P", "L", "LA", "RGBA")  # palette, grey and alpha PNGs are read as RGB
GREY_PNG_MODES = ("L", "LA")  # one channel (and alpha): read into all three of R, G and B
FIGURE_DPI = 120  # every figure the package writes


def atomic_write(path, write) -> None:
    """Call write(temporary_path) next to path, then rename it over path (the temporary goes on failure; only a
    killed process leaves it: unfinished_writes finds it)."""
    path = Path(path)
    temporary = path.with_name(f".{path.stem}.tmp{os.getpid()}{''.join(path.suffixes)}")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def unfinished_writes(folder, suffix: str = "") -> list[Path]:
    """The temporaries of atomic_write in folder (names ending in suffix) that a killed process left behind."""
    return sorted(Path(folder).glob(f".*.tmp[0-9]*{suffix}"))


def refuse_overwriting_inputs(out, inputs, option: str = "--out") -> None:
    """ValueError when the output path names one of the command's input files or folders (by any spelling: the
    resolved path, or the same file through a hard link), before anything is written."""
    out = Path(out)
    target = out.resolve()
    for path in map(Path, inputs):
        if path.resolve() == target or (out.exists() and path.exists() and os.path.samefile(out, path)):
            raise ValueError(
                f"{option} {out} is an input of this command ({path}): writing it would replace that file; "
                "give another path"
            )


def regular_file(path, what: str) -> Path:
    """path, when it is a regular file (a FIFO, device or folder would block or fail when read); errors naming it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}")
    if not path.is_file():
        raise ValueError(f"{what} {path} is not a regular file; give {what} files")
    return path


def check_crop_side(path, height: int, width: int, max_side: int) -> None:
    """ValueError when an image is larger than a single-cell crop can be (checked before its pixels are read)."""
    if max(height, width) > max_side:
        raise ValueError(
            f"image {path} is {height}×{width} px, larger than png.max_crop_side ({max_side}): give single-cell "
            "crops (or raise that config setting)"
        )


def write_csv(table: pd.DataFrame, path) -> None:
    """Write a table as CSV (no index column), atomically."""
    atomic_write(path, lambda temporary: table.to_csv(temporary, index=False))


def write_json(data, path) -> None:
    """Write indented JSON, atomically."""
    atomic_write(path, lambda temporary: temporary.write_text(json.dumps(data, indent=2) + "\n"))


def save_figure(figure, path) -> None:
    """Write a matplotlib figure as PNG (FIGURE_DPI), atomically."""
    atomic_write(path, lambda temporary: figure.savefig(temporary, format="png", dpi=FIGURE_DPI))


def sha256(path, chunk_bytes: int = 1 << 24) -> str:
    """The sha256 hex digest of a file's content (read in chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def read_png(path, max_side: int | None = None) -> np.ndarray:
    """One PNG as an H×W×3 array (palette, grey and alpha images as RGB; other modes as stored); max_side: refuse
    a larger image from its header (`check_crop_side`)."""
    try:
        image = Image.open(path)
    except (OSError, ValueError) as error:
        raise ValueError(f"unreadable PNG {path}: {error}") from None
    with image:
        if max_side is not None:
            check_crop_side(path, image.height, image.width, max_side)
        try:
            return np.asarray(image.convert("RGB") if image.mode in CONVERTED_PNG_MODES else image)
        except (OSError, ValueError) as error:
            raise ValueError(f"unreadable PNG {path}: {error}") from None


def read_png_mask(path) -> np.ndarray:
    """The cell mask a composed cell's PNG carries as its alpha channel (cellvae.imaging.png.compose_cell), H×W
    uint8, 255 inside the cell; a PNG without alpha: all 255 (the whole window is the cell)."""
    with Image.open(path) as image:
        if image.mode in ("RGBA", "LA"):
            return np.asarray(image.getchannel("A"))
        return np.full((image.height, image.width), 255, np.uint8)


def read_pngs(paths, mask: bool = False) -> np.ndarray:
    """RGB PNGs of one square size -> uint8 array N×S×S×3; mask: N×S×S×4, the 4th channel each cell's mask
    (read_png_mask), as the training shards carry it for likelihood_support: cell."""
    paths = list(paths)
    if mask:
        images = read_pngs(paths)
        return np.concatenate([images, np.stack([read_png_mask(path) for path in paths])[..., None]], axis=-1)
    if not paths:
        raise ValueError("no PNG paths to read")
    images = None
    for index, path in enumerate(paths):
        image = read_png(path)
        if images is None:
            images = np.empty((len(paths), image.shape[0], image.shape[0], 3), np.uint8)
        if image.shape != images.shape[1:] or image.dtype != np.uint8:
            raise ValueError(
                f"PNG {path} is {image.dtype} {image.shape}; expected uint8 {images.shape[1:]} as {paths[0]}"
            )
        images[index] = image
    return images


def is_grey_png(path) -> bool:
    """Whether a PNG holds one grey channel (read from its header)."""
    with Image.open(path) as image:
        return image.mode in GREY_PNG_MODES


def read_csv(path, what: str) -> pd.DataFrame:
    """A CSV table; what names it in errors (e.g. 'image manifest'): missing, not a regular file, empty, unparsable."""
    path = regular_file(path, what)
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise ValueError(
            f"{what} {path} is empty: expected a header row (the column names), then one row each"
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        reason = " ".join(str(error).split())
        raise ValueError(f"{what} {path} is not a readable CSV table ({reason})") from None


def read_table(path, columns, what: str) -> pd.DataFrame:
    """A CSV table that must hold the given columns; what names it in errors (e.g. 'dataset manifest')."""
    table = read_csv(path, what)
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise ValueError(f"{what} {path} lacks columns {missing}")
    return table
