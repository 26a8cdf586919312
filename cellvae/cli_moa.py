"""cellvae moa-eval: mechanism-of-action accuracy of per-well profiles, the BBBC021 benchmark (Ljosa et al. 2013).

Prints JSON: NSC and NSCB accuracy of 1-nearest-neighbour (cosine) MoA prediction among treatments, after
normalizing the wells against DMSO and aggregating them per treatment (see cellvae/moa.py).
"""

from __future__ import annotations

import argparse
import json

from cellvae.config import defaults
from cellvae.metadata import read_image_table, read_moa_table
from cellvae.moa import (
    AGGREGATIONS,
    NORMALIZATIONS,
    annotate_wells,
    evaluate_wells,
    feature_columns,
    read_well_profiles,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--well-profiles", required=True, help="CSV(.gz): plate, well, then one column per feature")
    parser.add_argument("--image-metadata", required=True, help="BBBC021_v1_image.csv")
    parser.add_argument("--moa", required=True, help="BBBC021_v1_moa.csv")
    analysis = defaults()["response"]["analysis"]  # the pipeline's settings, config/config.schema.yaml
    parser.add_argument("--normalize", choices=NORMALIZATIONS, default=analysis["normalize"])
    parser.add_argument("--aggregate", choices=AGGREGATIONS, default=analysis["aggregate"])
    parser.add_argument("--matches", action="store_true", help="also print every treatment's nearest neighbours")


def run(args) -> int:
    profiles = read_well_profiles(args.well_profiles)
    wells = annotate_wells(
        profiles, read_image_table(args.image_metadata), read_moa_table(args.moa), args.well_profiles
    )
    result = evaluate_wells(wells, wells[feature_columns(profiles)], args.normalize, args.aggregate)
    if not args.matches:
        result.pop("matches")
    print(json.dumps(result, indent=2))
    return 0
