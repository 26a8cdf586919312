"""Fetch benchmark: a DMSO-like selection (1 well in 12, as the real DMSO share) of a synthetic plate,
fetched by byte ranges from a real nginx on 127.0.0.1 with the default fetch settings (config/config.schema.yaml).
Bytes are counted from nginx's access log. Last line: bytes_ratio=<served bytes / needed member bytes>.

    .venv/bin/python benchmarks/fetch.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from cellvae.core.config import defaults
from cellvae.core.files import write_csv
from cellvae.data.fetch import FetchSettings, archive_name, fetch_plate
from cellvae.data.metadata import read_image_table
from cellvae.data.synthetic import generate_mini_bbbc021, source_files
from cellvae.testing.nginx import Nginx

PLATE = "Week4_27481"
SYNTHETIC = {
    "seed": 11,
    "plates": [PLATE],
    "treated": {"compound": "taxol", "concentration": 0.3, "moa": "MS"},
    "wells_per_compound": 6,
    "sites_per_well": 4,
    "width": 320,
    "height": 256,
    "cells_per_field": 20,
}
SELECTED_WELLS = ["D02"]  # 1 of the 12 wells, with unselected wells on both sides in the archive


def main() -> int:
    settings = FetchSettings.from_config(defaults()["fetch"])
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        generate_mini_bbbc021(SYNTHETIC, **source_files(root / "www" / "bbbc021", SYNTHETIC["plates"]))
        table = read_image_table(root / "www" / "bbbc021" / "BBBC021_v1_image.csv")
        selected = root / "selected.csv"
        write_csv(table[table["well"].isin(SELECTED_WELLS)], selected)
        with Nginx(root / "www", root / "nginx") as server:
            started = time.monotonic()
            record = fetch_plate(
                PLATE, selected, server.url + "bbbc021/", root / "out" / "images", root / "out" / "fetch.json", settings
            )
            seconds = time.monotonic() - started
            server.wait_idle()
            served = sum(sent for uri, _, sent, _ in server.requests() if uri.endswith(archive_name(PLATE)))
            requests = len(server.requests())
        archive_bytes = (root / "www" / "bbbc021" / archive_name(PLATE)).stat().st_size
    print(f"archive_bytes={archive_bytes}")
    print(f"members={record['members']} of {len(table) * 3}")
    print(f"bytes_needed={record['bytes_needed']}")
    print(f"bytes_served={served} in {requests} requests (fetch record: {record['bytes_transferred']})")
    print(f"seconds={seconds:.3f}")
    print(f"bytes_ratio={served / record['bytes_needed']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
