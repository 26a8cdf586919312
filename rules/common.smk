# Config validation and the helpers the rules share.
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
    """A local source file as a rule input (so changes rerun its chain); nothing for a URL source."""
    return [] if is_url(SOURCE) else source_location(SOURCE, name)


def selected_plates():
    """Plates with selected fields (known once the selection checkpoint has run)."""
    table = checkpoints.select_images.get().output.table
    return sorted(pd.read_csv(table, usecols=["plate"])["plate"].unique())


def per_plate(pattern):
    """A function for rule inputs: the pattern expanded over the selected plates."""
    return lambda wildcards: expand(pattern, plate=selected_plates())


def final_outputs(wildcards):
    return [
        "results/analysis/metrics.csv",
        "results/analysis/reconstructions.png",
        "results/analysis/loss_curves.png",
        *expand("results/analysis/z{latent_dim}/metrics.json", latent_dim=LATENT_DIMS),
        *expand("results/png/{plate}/crop_sizes.png", plate=selected_plates()),
    ]
