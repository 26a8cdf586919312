"""cellvae moa-eval: mechanism-of-action accuracy of profiles, the BBBC021 benchmark (Ljosa et al. 2013).

Prints JSON: NSC and NSCB (1-nearest-neighbour MoA among treatments of other compounds; NSCB also of other
batches) and mAP (copairs: same-MoA treatments of other compounds retrieved among other MoAs' treatments), each
{"value": ..., "ci": [lo, hi]} with a 95% bootstrap interval over treatments; see cellvae/profiling/moa.py. Beside them:
counts, per_moa, plate_references (how many plates took their own, their batch's or all their rows as the
reference: --min-controls) and dropped_features (non-finite or constant); --matches adds every nearest neighbour.

--cells: one row per cell, as `cellvae embed` writes it from a manifest (plate, well, compound,
concentration_uM or concentration, moa, then z0 ... or any numeric feature columns): cells are normalized per
plate, averaged into wells, then into treatments. --well-profiles: one row per well (plate, well, features; e.g.
Ljosa's CellProfiler means), annotated from the BBBC021 metadata (--image-metadata, --moa).
"""

from __future__ import annotations

import argparse
import json
import sys

from cellvae.cli.common import UsageError
from cellvae.core.config import defaults
from cellvae.data.metadata import read_image_table, read_moa_table
from cellvae.profiling.moa import AGGREGATIONS, NORMALIZATIONS, WELL_KEYS, evaluate_rows
from cellvae.profiling.moa_paired import paired_difference, treatment_scores
from cellvae.profiling.profile_tables import (
    annotate_cells,
    annotate_wells,
    feature_columns,
    features_note,
    read_profiles,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    table = parser.add_mutually_exclusive_group(required=True)
    table.add_argument("--cells", help="CSV(.gz) with one row per cell (e.g. from cellvae embed)")
    table.add_argument("--well-profiles", help="CSV(.gz): plate, well, then one column per feature")
    table.add_argument(
        "--compare",
        nargs=2,
        metavar=("CELLS_A", "CELLS_B"),
        help="two per-cell tables of the same cells (as --cells): A minus B in NSC, NSCB and mAP, paired, with a "
        "95%% interval that resamples compounds",
    )
    parser.add_argument("--image-metadata", help="BBBC021_v1_image.csv (with --well-profiles)")
    parser.add_argument("--moa", help="BBBC021_v1_moa.csv (with --well-profiles)")
    parser.add_argument(
        "--features",
        nargs="+",
        metavar="COLUMN",
        help="feature columns, by name or glob (e.g. 'Cells_*'); default: z0, z1, … where present, else every "
        "numeric column that is not metadata (plate, well, …, Metadata_*, Image_*, ImageNumber, ObjectNumber, "
        "a pandas index Unnamed: 0)",
    )
    analysis = defaults()["response"]["analysis"]  # the pipeline's settings, config/config.schema.yaml
    parser.add_argument(
        "--normalize", choices=NORMALIZATIONS, default=analysis["normalize"], help="rows against controls, per plate"
    )
    parser.add_argument(
        "--aggregate", choices=AGGREGATIONS, default=analysis["aggregate"], help="cells into wells into treatments"
    )
    parser.add_argument(
        "--min-controls",
        type=int,
        default=analysis["min_controls"],
        help="DMSO rows a plate (else its batch) needs to be its own reference in plate-dmso/tvn",
    )
    parser.add_argument(
        "--reference-cap",
        type=int,
        default=analysis["reference_cap"],
        help="rows of each treatment (at most) that enter the normalization statistics (default: %(default)s)",
    )
    parser.add_argument("--bootstrap", type=int, default=analysis["bootstrap"], help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=analysis["seed"], help="of the bootstrap and the reference cap")
    parser.add_argument("--matches", action="store_true", help="also print every treatment's nearest neighbours")


def read_rows(args) -> tuple:
    """(table of WELL_KEYS + features, feature names, whether rows are cells); notes on stderr, a line each: the
    features used, the rows left out for want of an MoA, plates that are a batch of their own."""
    if not args.cells and not (args.image_metadata and args.moa):
        raise UsageError("--well-profiles needs --image-metadata and --moa (BBBC021_v1_image.csv, BBBC021_v1_moa.csv)")
    source = args.cells or args.well_profiles
    profiles = read_profiles(source, "cell" if args.cells else "well")
    features = feature_columns(profiles, source, args.features)
    notes = [features_note(profiles, features, source)]
    if args.cells:
        rows = annotate_cells(profiles, source, notes)
    else:
        images, moas = read_image_table(args.image_metadata), read_moa_table(args.moa)
        rows = annotate_wells(profiles[["plate", "well", *features]], images, moas, source, notes)
    for note in notes:
        print(note, file=sys.stderr)
    return rows, features, bool(args.cells)


def compare_tables(args, settings: dict) -> dict:
    """Both --compare tables scored alike, then their paired differences (cellvae.profiling.moa_paired)."""
    scored = []
    for path in args.compare:
        table, features, _ = read_rows(argparse.Namespace(**{**vars(args), "cells": path}))
        if not features:
            raise UsageError(f"{path}: no numeric feature column besides {WELL_KEYS}")
        result = evaluate_rows(table, features, settings, True)
        scored.append(({key: result[key] for key in ("n_features", "nsc", "nscb", "map")}, treatment_scores(result)))
    (first, first_scores), (second, second_scores) = scored
    try:
        difference = paired_difference(first_scores, second_scores, settings["bootstrap"], settings["seed"])
    except ValueError as error:
        raise UsageError(f"--compare {' '.join(args.compare)}: {error}") from None
    first, second = ({"table": path, **summary} for path, summary in zip(args.compare, (first, second)))
    return {"a": first, "b": second, "a_minus_b": difference}


def run(args) -> int:
    if args.min_controls < 2:
        raise UsageError(f"--min-controls must be at least 2 (a spread needs two rows), got {args.min_controls}")
    if args.bootstrap < 1:
        raise UsageError(f"--bootstrap must be a positive integer, got {args.bootstrap}")
    if args.reference_cap < 2:
        raise UsageError(f"--reference-cap must be at least 2 (a spread needs two rows), got {args.reference_cap}")
    keys = ("normalize", "aggregate", "min_controls", "reference_cap", "bootstrap", "seed")
    settings = {key: getattr(args, key) for key in keys}
    if args.compare:
        print(json.dumps(compare_tables(args, settings), indent=2))
        return 0
    table, features, cells = read_rows(args)
    if not features:
        raise UsageError(f"{args.cells or args.well_profiles}: no numeric feature column besides {WELL_KEYS}")
    result = evaluate_rows(table, features, settings, cells)
    if not args.matches:
        result.pop("matches")
    print(json.dumps(result, indent=2))
    return 0
