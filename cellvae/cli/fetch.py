"""cellvae fetch: one plate's selected images from a BBBC021 source, as the fetch_images rule fetches them.

Only the selected members of the plate's zip archive are fetched (byte ranges, neighbours merged, several
requests in parallel), checked against the archive's CRC-32 and sizes, and written atomically; a rerun after a
kill keeps what was already verified. Transfer options not given take their defaults (config key fetch).
--out must be a new or empty folder, or an earlier fetch's of the plate; neither --out nor --record may be, hold
or lie inside --selected or a local --source: such a run is refused before anything is written, moved or deleted.
"""

from __future__ import annotations

import argparse

from cellvae.cli.common import UsageError
from cellvae.core.config import defaults
from cellvae.core.option_types import schema_number

TRANSFER_OPTIONS = ["connections", "coalesce_gap", "max_request_bytes", "retries", "backoff_s", "timeout_s"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plate", required=True, help="plate name, e.g. Week1_22123")
    parser.add_argument("--selected", required=True, help="selected_images.csv (the select_images rule's)")
    parser.add_argument("--source", required=True, help="base URL, s3://bucket/prefix or local directory")
    parser.add_argument("--out", required=True, help="output folder of the plate's TIFFs")
    parser.add_argument("--record", required=True, help="fetch record to write (JSON)")
    default = defaults()["fetch"]
    for key in TRANSFER_OPTIONS:  # type and bounds of the config key (config/config.schema.yaml)
        kind = schema_number(f"fetch.{key}")
        parser.add_argument(f"--{key.replace('_', '-')}", type=kind, help=f"{kind.wanted}; default {default[key]}")


def run(args) -> int:
    from cellvae.data.fetch import FetchSettings, OutputConflict, fetch_plate

    given = {key: getattr(args, key) for key in TRANSFER_OPTIONS if getattr(args, key) is not None}
    try:  # --out and --record are checked against the inputs and what they hold before anything is touched
        record = fetch_plate(args.plate, args.selected, args.source, args.out, args.record, FetchSettings(**given))
    except OutputConflict as error:
        raise UsageError(str(error)) from None
    print(record)
    return 0
