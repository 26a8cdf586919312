# Config validation and the helpers the rules share.
import os

import pandas as pd

from jsonschema.exceptions import ValidationError
from snakemake.exceptions import WorkflowError
from snakemake.io import get_wildcard_names, strip_wildcard_constraints
from snakemake.utils import min_version, validate

from cellvae.channels import STAINS
from cellvae.fetch import archive_name, is_url, source_location
from cellvae.settings import MODEL_ID, model_id, parse_model_id

min_version("9.0")


def config_error(error):
    """One line for a schema violation: the key path, what is wrong and, for an unknown key, the allowed ones."""
    path = ".".join(str(part) for part in error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = list(error.schema.get("properties", {}))
        unknown = [key for key in error.instance if key not in allowed]
        where = f"under {path}" if path else "at the top level"
        keys = ", ".join(f"{path}.{key}" if path else str(key) for key in unknown)
        return (
            f"config key {keys} is not allowed; allowed keys {where}: {', '.join(allowed)} "
            "(config/config.schema.yaml)"
        )
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [key for key in error.validator_value if key not in error.instance]
        keys = ", ".join(f"{path}.{key}" if path else str(key) for key in missing)
        return f"config key {keys} is missing (required; see config/config.schema.yaml)"
    message = error.message if len(error.message) <= 200 else error.message[:200] + "..."
    return f"config key {path or '(top level)'}: {message} (config/config.schema.yaml)"


# --config 'latent_dims=[16]' gives the items as strings: digit strings are the integers meant
if isinstance(config.get("latent_dims"), list):
    config["latent_dims"] = [
        int(dim) if isinstance(dim, str) and dim.strip().isdigit() else dim for dim in config["latent_dims"]
    ]
try:
    validate(config, schema="../config/config.schema.yaml", set_default=True)  # the schema holds every default
except WorkflowError as error:
    if not isinstance(error.__context__, ValidationError):  # snakemake's validate raises it from the violation
        raise
    raise WorkflowError(config_error(error.__context__)) from None

SOURCE = config["source"]
if lookup(dpath="synthetic/enabled", within=config) and is_url(SOURCE):
    raise ValueError(
        f"config key source: {SOURCE!r} is a URL but synthetic.enabled is true; "
        "the synthetic data set needs a local directory"
    )
# a local source must exist (with a default storage provider, a relative source names a place in the storage)
if (
    not is_url(SOURCE)
    and not lookup(dpath="synthetic/enabled", within=config)
    and not os.path.isdir(SOURCE)
    and not workflow.storage_settings.default_storage_provider
):
    raise ValueError(
        f"config key source: folder {os.path.abspath(SOURCE)} does not exist; give the local folder "
        "holding BBBC021_v1_image.csv, BBBC021_v1_moa.csv and the plate zips, or a URL "
        "(https://data.broadinstitute.org/bbbc/BBBC021/, s3://bucket/prefix)"
    )

LATENT_DIMS = lookup(dpath="latent_dims", within=config)
VARIANTS = lookup(dpath="models", within=config)  # name -> train: overrides; none: one model per latent dim
for _name, _overrides in VARIANTS.items():
    _unknown = sorted(set(_overrides) - set(config["train"]))
    if _unknown:
        raise ValueError(
            f"config key models.{_name}: {', '.join(_unknown)} not a train: setting; "
            f"allowed: {', '.join(config['train'])}"
        )
MODELS = [model_id(name, dim) for name in VARIANTS or [None] for dim in LATENT_DIMS]
MODEL_PATTERN = MODEL_ID.pattern


def model_latent_dim(wildcards):
    """The latent dimension of a model id (z16, or thesis-z75 with variants)."""
    return parse_model_id(wildcards.model)[1]


def model_settings(wildcards):
    """The train: settings of a model id, with its variant's overrides (config key models)."""
    variant = parse_model_id(wildcards.model)[0]
    return {**config["train"], **(VARIANTS[variant] if variant else {})}


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
    """An input function: the pattern expanded over the selected plates."""
    return lambda wildcards: expand(pattern, plate=selected_plates())


def declared_path(path):
    """A file pattern as written in its rules/ file: with --default-storage-provider, Snakemake holds the path of
    its local copy instead (.snakemake/storage/...), which would be sent to the storage a second time."""
    if not path.is_storage:
        return str(path)
    return os.path.relpath(path.storage_object.query, workflow.storage_settings.default_storage_prefix)


def benchmark_files(wildcards):
    """The cost table's input: each rule's benchmark pattern over the plates and models it runs for, every rule of
    the workflow but the cost table's own."""
    values = {"plate": selected_plates(), "model": MODELS}
    files = []
    for step in workflow.rules:
        if step.name == "cost" or not step.benchmark:
            continue
        pattern = strip_wildcard_constraints(declared_path(step.benchmark))
        names = get_wildcard_names(pattern)
        if not names <= values.keys():
            raise ValueError(
                f"rules/common.smk benchmark_files expands plate and model only; the benchmark of {step.name} "
                f"also has {', '.join(sorted(names - values.keys()))}"
            )
        files += expand(pattern, **{name: values[name] for name in names})
    return files


def rule_stages(wildcards):
    """Each rule's stage in the cost table, in workflow order: the name of its rules/ file (train_vae: train)."""
    return {step.name: os.path.splitext(os.path.basename(step.snakefile))[0] for step in workflow.rules}


def final_outputs(wildcards):
    return [
        "results/analysis/metrics.csv",
        "results/fetch/summary.csv",
        "results/analysis/reconstructions.png",
        "results/analysis/loss_curves.png",
        "results/cost/cost.csv",
        *expand("results/analysis/{model}/metrics.json", model=MODELS),
        *expand("results/png/{plate}/crop_sizes.png", plate=selected_plates()),
        # single-cell crops are a product too: deleting a plate's crops reruns that plate's chain
        # (not with a storage provider: the S3 plugin caches a folder's absence from the DAG's start, so a target
        # folder looks missing at the end; the crops are compose_pngs inputs anyway)
        *(
            []
            if workflow.storage_settings.default_storage_provider
            else expand("results/segmentation/{plate}/crops", plate=selected_plates())
        ),
        *(["results/response/summary.csv"] if lookup(dpath="response/enabled", within=config) else []),
    ]
