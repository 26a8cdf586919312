# The source checks and the helpers the rules share (rules/config.smk checks the config first).
import os

import pandas as pd

from snakemake.exceptions import WorkflowError
from snakemake.io import get_wildcard_names, strip_wildcard_constraints

from cellvae.core.channels import STAINS
from cellvae.data.fetch import archive_name, is_url, source_location
from cellvae.data.metadata import IMAGE_CSV, MOA_CSV, read_image_table, read_moa_table, training_and_profiled_fields
from cellvae.model.run_folder import TRAINING_FILES
from cellvae.core.config import MODEL_ID, model_id, parse_model_id
from cellvae.data.synthetic import check_own_folder

SOURCE = config["source"]
SYNTHETIC = lookup(dpath="synthetic/enabled", within=config)
STORAGE = workflow.storage_settings.default_storage_provider  # set: relative paths name places in the storage
DISABLE_SYNTHETIC = "set synthetic.enabled false (--config 'synthetic={enabled: false}')"


def check_synthetic_source():
    """The synthetic generator writes only into a folder of its own, never over a user's data (a BBBC021 mirror):
    locally a folder it marked or a new or empty one; in a storage, one under results/."""
    if is_url(SOURCE):
        raise ValueError(
            f"config key source: {SOURCE!r} is a URL but synthetic.enabled is true; the synthetic data set needs a "
            f"folder of its own: to read {SOURCE}, {DISABLE_SYNTHETIC}"
        )
    if STORAGE and (os.path.isabs(SOURCE) or not os.path.normpath(SOURCE).startswith("results/")):
        raise ValueError(
            f"config key source: {SOURCE!r} is not under results/, the only place in the storage the synthetic "
            f"generator writes; to read {SOURCE}, {DISABLE_SYNTHETIC}"
        )
    if not STORAGE:
        check_own_folder(SOURCE, "config key source")


def response_selection():
    """The fields to profile as one value (config response: compounds, moas, exclude_wells), None with response
    off: all that select_images reads of response (its analysis settings rerun the profile stage only)."""
    response = config["response"]
    return {key: response[key] for key in ("compounds", "moas", "exclude_wells")} if response["enabled"] else None


def check_local_source():
    """A local source (no storage provider) is a folder with both tables and the zip of every plate the config
    selects (the selection computed here as the select_images checkpoint will), else one line naming what lacks."""
    folder = os.path.abspath(SOURCE)
    if os.path.isfile(SOURCE):
        raise ValueError(f"config key source: {folder} is a file, not a folder: give the folder of BBBC021's files")
    if not os.path.isdir(SOURCE):
        raise ValueError(
            f"config key source: folder {folder} does not exist; give the local folder "
            f"holding {IMAGE_CSV}, {MOA_CSV} and the plate zips, or a URL "
            "(https://data.broadinstitute.org/bbbc/BBBC021/, s3://bucket/prefix)"
        )
    lacking = [name for name in (IMAGE_CSV, MOA_CSV) if not os.path.isfile(os.path.join(SOURCE, name))]
    if lacking:
        raise ValueError(f"config key source: folder {folder} lacks {' and '.join(lacking)}; copy BBBC021's there")
    selected = training_and_profiled_fields(
        read_image_table(os.path.join(SOURCE, IMAGE_CSV)),
        read_moa_table(os.path.join(SOURCE, MOA_CSV)),
        config["plates"],
        config["compounds"],
        config["moas"],
        response_selection(),
    )
    plates = sorted(selected["plate"].unique())
    missing = [plate for plate in plates if not os.path.isfile(os.path.join(SOURCE, archive_name(plate)))]
    if missing:
        shown = ", ".join(map(archive_name, missing[:3])) + (
            f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        )
        raise ValueError(
            f"config key source: folder {folder} lacks {shown}, the zip(s) of {len(missing)} of the "
            f"{len(plates)} selected plates; add them, or select other plates (config key plates)"
        )


def check_synthetic_compounds():
    """The compounds selected from the synthetic data set (compounds, response.compounds) are DMSO or its treated one."""
    made = ["DMSO", config["synthetic"]["treated"]["compound"]]
    for key, requested in (("compounds", config["compounds"]), ("response.compounds", config["response"]["compounds"])):
        unknown = [name for name in requested if name not in made] if requested != "all" else []
        if unknown:
            raise ValueError(
                f"config key {key}: unknown compound {unknown[0]!r}: the synthetic data set has {', '.join(made)} "
                "(config key synthetic.treated.compound)"
            )


def check_synthetic_plates():
    """The plates selected from the synthetic data set are among those it has (synthetic.plates)."""
    made = config["synthetic"]["plates"]
    unknown = [plate for plate in config["plates"] if plate not in made] if config["plates"] != "all" else []
    if unknown:
        raise ValueError(
            f"config key plates: unknown plate {unknown[0]!r}: the synthetic data set has {', '.join(made)} "
            "(config key synthetic.plates)"
        )


try:
    if SYNTHETIC:
        check_synthetic_source()
        check_synthetic_plates()
        check_synthetic_compounds()
    elif not is_url(SOURCE) and not STORAGE:
        check_local_source()
except ValueError as error:  # the message says it all: no traceback
    raise WorkflowError(str(error)) from None

LATENT_DIMS = lookup(dpath="latent_dims", within=config)
MODELS = [model_id(name, dim) for name in VARIANTS or [None] for dim in LATENT_DIMS]
MODEL_PATTERN = MODEL_ID.pattern

# Files that several rules name, each written once (patterns, not rules.<rule>.output: expand() refuses the
# storage-flagged files of --default-storage-provider).
CELL_PNGS = "results/png/{plate}/cells"  # compose_pngs; read through the manifests' paths (staged with storage)
CELL_MANIFEST = "results/png/{plate}/cells.csv"
MODEL_FILES = {role: f"results/models/{{model}}/{name}" for role, name in TRAINING_FILES.items()}  # train_vae
MODEL_METRICS = "results/analysis/{model}/metrics.json"  # analyze_model
MODEL_BASELINES = "results/analysis/{model}/baselines.npz"


def model_latent_dim(wildcards):
    """The latent dimension of a model id (z16, or thesis-z75 with variants)."""
    return parse_model_id(wildcards.model)[1]


def model_settings(wildcards):
    """The train: settings of a model id, with its variant's overrides (config key models)."""
    variant = parse_model_id(wildcards.model)[0]
    return {**config["train"], **(VARIANTS[variant] if variant else {})}


def source_input(name):
    """A local source file as a rule input (so changes rerun its chain; a missing one stops the DAG naming it);
    nothing for a URL or, with a storage provider, for a file not in the storage (fetching it then fails naming
    the file)."""
    if is_url(SOURCE):
        return []
    path = source_location(SOURCE, name)
    return path if SYNTHETIC or not STORAGE or os.path.exists(path) else []


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


def run_values():
    """The values of the wildcards in the rules' files: the selected plates and the models."""
    return {"plate": selected_plates(), "model": MODELS}


def over_runs(step, path, values, what):
    """A file `step` declares, expanded over the plates and models the step runs for (values from run_values())."""
    pattern = strip_wildcard_constraints(declared_path(path))
    names = get_wildcard_names(pattern)
    if not names <= values.keys():
        raise ValueError(
            f"rules/common.smk expands plate and model only; the {what} of {step.name} also has "
            f"{', '.join(sorted(names - values.keys()))}"
        )
    return expand(pattern, **{name: values[name] for name in names})


def benchmark_files(wildcards):
    """The cost table's input: each rule's benchmark pattern over the plates and models it runs for, every rule of
    the workflow but the cost table's own and the glance page's (which reads it)."""
    values = run_values()
    files = []
    for step in workflow.rules:
        if step.name in ("cost", "glance") or not step.benchmark:  # glance reads the cost table
            continue
        files += over_runs(step, step.benchmark, values, "benchmark")
    return files


def rule_stages(wildcards):
    """Each rule's stage in the cost table, in workflow order: the name of its rules/ file (train_vae: train)."""
    return {step.name: os.path.splitext(os.path.basename(step.snakefile))[0] for step in workflow.rules}


def products(wildcards):
    """Rule all's input, one list per stage (the rules/ file): every output of every rule over the plates and models
    it runs for. Snakemake rebuilds a deleted file only when a target needs it and is itself out of date, so each
    product is a target: deleting one (a model, a response table, a figure, a plate's crops) reruns its job and
    what depends on it. Not temp() files, and with a storage provider no folder (the S3 plugin caches a folder's
    absence from the DAG's start, so a target folder looks missing at the end; each is another rule's input)."""
    values = run_values()
    stages = rule_stages(wildcards)
    files = {}
    for step in workflow.rules:
        for path in step.output:
            if path.is_temp or (STORAGE and path.is_directory):
                continue
            files.setdefault(stages[step.name], []).extend(over_runs(step, path, values, "output"))
    return files
