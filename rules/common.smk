# Config validation and the helpers the rules share.
import os

import pandas as pd

from snakemake.utils import min_version, validate

from cellvae.fetch import archive_name, is_url, source_location

min_version("9.0")


validate(config, schema="../config/config.schema.yaml")

SOURCE = config["source"]
if lookup(dpath="synthetic/enabled", within=config) and is_url(SOURCE):
    raise ValueError(f"config key source: {SOURCE!r} is a URL but synthetic.enabled is true; "
                     "the synthetic data set needs a local directory")

LATENT_DIMS = lookup(dpath="latent_dims", within=config)
CHANNELS = ["DAPI", "Tubulin", "Actin"]


def source_input(name):
    """A local source file as a rule input (so changes rerun its chain) where it exists or the synthetic
    rule writes it; nothing for a URL or a missing file (fetching it then fails naming the file)."""
    if is_url(SOURCE):
        return []
    path = source_location(SOURCE, name)
    return path if lookup(dpath="synthetic/enabled", within=config) or os.path.exists(path) else []


def staged_source(key):
    """params.source of a rule: the folder where its source input `key` was staged (with a storage provider, its
    local copy) where it has one, else the configured source (a URL)."""
    return lambda wildcards, input: os.path.dirname(input[key]) if input.get(key) else SOURCE


_PLATES_BY_SELECTION = {}


def selected_plates():
    """Plates with selected fields (known once the selection checkpoint has run); the table is read once per
    version of the file, not once per rule asking."""
    table = checkpoints.select_images.get().output.table
    if table.is_storage and not os.path.exists(table):  # a later run with a storage provider: fetch the table
        os.makedirs(os.path.dirname(table), exist_ok=True)
        table.storage_object.retrieve_object()
    key = (table, os.stat(table).st_mtime_ns)
    if key not in _PLATES_BY_SELECTION:
        _PLATES_BY_SELECTION[key] = sorted(pd.read_csv(table, usecols=["plate"])["plate"].unique())
    return _PLATES_BY_SELECTION[key]


def per_plate(pattern):
    """A function for rule inputs: the pattern expanded over the selected plates."""
    return lambda wildcards: expand(pattern, plate=selected_plates())


def final_outputs(wildcards):
    return [
        "results/analysis/metrics.csv",
        "results/fetch/summary.csv",
        "results/analysis/reconstructions.png",
        "results/analysis/loss_curves.png",
        "results/cost/cost.csv",
        *expand("results/analysis/z{latent_dim}/metrics.json", latent_dim=LATENT_DIMS),
        *expand("results/png/{plate}/crop_sizes.png", plate=selected_plates()),
        # single-cell crops are a product too: deleting a plate's crops reruns that plate's chain
        # (not with a storage provider: the S3 plugin caches a folder's absence from the DAG's start, so a target
        # folder looks missing at the end; the crops are png_synthesis inputs anyway)
        *([] if workflow.storage_settings.default_storage_provider else
          expand("results/segmentation/{plate}/crops", plate=selected_plates())),
        *(["results/profile/summary.csv"] if lookup(dpath="profile/enabled", within=config) else []),
    ]
