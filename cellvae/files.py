"""Files: written so that a reader never sees half of one; PNGs and tables read with errors naming the file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

CONVERTED_PNG_MODES = ("P", "L", "LA", "RGBA")  # palette, grey and alpha PNGs are read as RGB


def atomic_write(path, write) -> None:
    """Call write(temporary_path) next to path, then rename it over path (the temporary goes on failure)."""
    path = Path(path)
    temporary = path.with_name(f".{path.stem}.tmp{os.getpid()}{''.join(path.suffixes)}")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_csv(table: pd.DataFrame, path) -> None:
    """Write a table as CSV (no index column), atomically."""
    atomic_write(path, lambda temporary: table.to_csv(temporary, index=False))


def write_json(data, path) -> None:
    """Write indented JSON, atomically."""
    atomic_write(path, lambda temporary: temporary.write_text(json.dumps(data, indent=2) + "\n"))


def read_png(path) -> np.ndarray:
    """One PNG as an H×W×3 array (palette, grey and alpha images as RGB; other modes as stored)."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB") if image.mode in CONVERTED_PNG_MODES else image)
    except (OSError, ValueError) as error:
        raise ValueError(f"unreadable PNG {path}: {error}") from None


def read_pngs(paths) -> np.ndarray:
    """RGB PNGs of one square size -> uint8 array N×S×S×3."""
    paths = list(paths)
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


def read_table(path, columns, what: str) -> pd.DataFrame:
    """A CSV table that must hold the given columns; what names it in errors (e.g. 'dataset manifest')."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    table = pd.read_csv(path)
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise ValueError(f"{what} {path} lacks columns {missing}")
    return table
