"""cellvae fetch: one plate's selected images from a BBBC021 source, as the fetch_images rule fetches them.

Only the selected members of the plate's zip archive are fetched (byte ranges, neighbours merged, several
requests in parallel), checked against the archive's CRC-32 and sizes, and written atomically; a rerun after a
kill keeps what was already verified. Transfer options not given take their defaults (config key fetch).
"""

from __future__ import annotations

import argparse

TRANSFER_OPTIONS = {  # FetchSettings field: type
    "connections": int,
    "coalesce_gap": int,
    "max_request_bytes": int,
    "retries": int,
    "backoff_s": float,
    "timeout_s": float,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plate", required=True, help="plate name, e.g. Week1_22123")
    parser.add_argument("--selected", required=True, help="selected_images.csv (the select_images rule's)")
    parser.add_argument("--source", required=True, help="base URL, s3://bucket/prefix or local directory")
    parser.add_argument("--out", required=True, help="output folder of the plate's TIFFs")
    parser.add_argument("--record", required=True, help="fetch record to write (JSON)")
    for key, kind in TRANSFER_OPTIONS.items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=kind, help=f"config fetch.{key}")


def run(args) -> int:
    from cellvae.fetch import FetchSettings, fetch_plate

    given = {key: getattr(args, key) for key in TRANSFER_OPTIONS if getattr(args, key) is not None}
    print(fetch_plate(args.plate, args.selected, args.source, args.out, args.record, FetchSettings(**given)))
    return 0
