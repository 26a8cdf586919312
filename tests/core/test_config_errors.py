"""The config: defaults in the schema only (Snakemake fills them in, cellvae.core.config reads the same), overlays that
hold only what differs, and a bad config failing at parse time (snakemake -n) in one short message naming the key
(rules/config.smk; a local source and the plates it has: rules/common.smk)."""

import pytest
import yaml
from snakemake.utils import validate

from cellvae.core.config import SCHEMA, defaults, with_defaults
from cellvae.testing.workflow import REPO, local_source, snakemake

MAX_LINES = 20  # the error, Snakemake's profile line and the file/line it points at; never the schema


def config_file(name):
    return yaml.safe_load((REPO / "config" / name).read_text())


def allowed(*path):
    """The keys the schema allows at a path, as the message lists them."""
    schema = yaml.safe_load(SCHEMA.read_text())
    for key in path:
        schema = schema["properties"][key]
    return ", ".join(schema["properties"])


def settings_without_default(rule, path=""):
    """The dotted paths of the settings under a schema node that have no default."""
    for key, child in rule.get("properties", {}).items():
        if "default" not in child:
            yield f"{path}{key}"
        yield from settings_without_default(child, f"{path}{key}.")


def restated_defaults(overlay, default, path=""):
    """The dotted paths of an overlay's values that equal their default."""
    for key, value in overlay.items():
        if isinstance(value, dict) and value and isinstance(default.get(key), dict):
            yield from restated_defaults(value, default[key], f"{path}{key}.")
        elif key in default and value == default[key]:
            yield f"{path}{key}"


def test_every_setting_has_its_default_in_the_schema():
    assert list(settings_without_default(yaml.safe_load(SCHEMA.read_text()))) == []


def test_snakemake_fills_in_the_defaults_the_commands_read():
    empty, partial = {}, {"train": {"batch_size": 7}, "png": {"size": 128}}
    validate(empty, str(SCHEMA), set_default=True)
    validate(partial, str(SCHEMA), set_default=True)
    assert empty == defaults()
    assert partial == with_defaults({"train": {"batch_size": 7}, "png": {"size": 128}})
    assert partial["train"] == {**defaults()["train"], "batch_size": 7}


def test_the_demo_config_is_the_defaults_and_the_overlays_hold_only_differences():
    assert with_defaults(config_file("config.yaml")) == defaults()
    for name in ["bbbc021.yaml", "test.yaml"]:
        overlay = config_file(name)
        validate(with_defaults(overlay), str(SCHEMA))
        assert list(restated_defaults(overlay, defaults())) == [], f"config/{name} restates defaults"


def dry_run(tmp_path, values, *args):
    """snakemake -n in tmp_path with only `values` as config (the schema's defaults fill in the rest)."""
    return snakemake(tmp_path, "-n", *args, config=values, check=False, timeout=300)


def short_error(result):
    """Snakemake's whole output (it logs the error to stdout), once checked to be a failure in a few lines."""
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert len(output.strip().splitlines()) <= MAX_LINES, output[:3000]
    return output


def test_an_empty_config_plans_the_demo(tmp_path):
    result = dry_run(tmp_path, {})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "synthesize_bbbc021" in result.stdout


def test_an_unknown_top_level_key_names_it_and_the_allowed_keys(tmp_path):
    output = short_error(dry_run(tmp_path, {"pngg": {"size": 64}}))
    assert f"config key pngg is not allowed; allowed keys at the top level: {allowed()} (" in output
    assert "source, fetch, synthetic," in output and "Failed validating" not in output


def test_an_unknown_nested_key_from_the_command_line_names_its_path(tmp_path):
    output = short_error(dry_run(tmp_path, {}, "--config", "png={sizee: 64}"))
    assert f"config key png.sizee is not allowed; allowed keys under png: {allowed('png')} (" in output
    assert "size, percentiles" in output


def test_a_wrong_value_names_the_key_and_the_rule(tmp_path):
    output = short_error(dry_run(tmp_path, {"train": {"learning_rate": -1}}))
    assert "config key train.learning_rate must be a number > 0, got -1 (config/config.schema.yaml)" in output


def test_a_missing_key_is_named_with_its_path(tmp_path):
    output = short_error(dry_run(tmp_path, {"cost": {"instances": {"cpu": {"type": "c6i.large"}}}}))
    assert "config key cost.instances.cpu.price_per_hour is missing (required;" in output


def test_latent_dims_from_the_command_line_are_numbers(tmp_path):
    result = dry_run(tmp_path, {}, "--config", "latent_dims=[16,48]")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "is not of type" not in result.stdout + result.stderr


def test_a_non_numeric_latent_dim_is_still_refused(tmp_path):
    output = short_error(dry_run(tmp_path, {}, "--config", "latent_dims=[z16]"))
    assert "config key latent_dims[0] must be an integer >= 1, got 'z16'" in output


def test_nested_values_from_the_command_line_are_read_as_yaml(tmp_path):
    """Snakemake reads png={size: 24} as {'size': '24'}: typed as YAML, as in a config file."""
    result = dry_run(tmp_path, {}, "--config", "png={size: 24}", "train={batch_size: 8, mixed_precision: false}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "png_scale" in result.stdout or "select_images" in result.stdout


@pytest.mark.parametrize(
    "value, message",
    [
        ("train={batch_size: 0}", "config key train.batch_size must be an integer >= 1, got 0"),
        ("png={size: -1}", "config key png.size must be an integer >= 16, a multiple of 8, got -1"),
        ("png={size: 20}", "config key png.size must be an integer >= 16, a multiple of 8, got 20"),
        ("latent_dims=[-4]", "config key latent_dims[0] must be an integer >= 1, got -4"),
        ("plates=NoSuch", "config key plates must be 'all' or a list of at least 1 item, got 'NoSuch'"),
        ("compounds=[]", "config key compounds must be 'all' or a list of at least 1 item, got []"),
        ("synthetic={enabled: maybe}", "config key synthetic.enabled must be true or false, got 'maybe'"),
        ("models={thesis: {batch_size: 0}}", "config key models.thesis.batch_size must be an integer >= 1, got 0"),
    ],
)
def test_a_bad_command_line_value_names_its_key_value_and_bound(tmp_path, value, message):
    output = short_error(dry_run(tmp_path, {}, "--config", value))
    assert message + " (config/config.schema.yaml)" in output
    assert "is not valid under any of the given schemas" not in output and "is not of type" not in output


def test_a_model_variant_with_an_unknown_setting_names_it(tmp_path):
    output = short_error(dry_run(tmp_path, {"models": {"thesis": {"batch_sise": 8}}}))
    assert "config key models.thesis: batch_sise not a train: setting; allowed: architecture," in output


@pytest.mark.parametrize("source", ["bbbc021", "/nonexistent/cellvae/bbbc021"])
def test_a_missing_local_source_folder_fails_at_parse_time(tmp_path, source):
    output = short_error(dry_run(tmp_path, {"source": source, "synthetic": {"enabled": False}}))
    folder = tmp_path / source if not source.startswith("/") else source
    assert f"config key source: folder {folder} does not exist;" in output
    assert "Job stats" not in output


def test_an_existing_local_source_folder_plans_the_run(tmp_path):
    local_source(tmp_path / "bbbc021")
    result = dry_run(tmp_path, {"source": "bbbc021", "synthetic": {"enabled": False}})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "select_images" in result.stdout and "synthesize_bbbc021" not in result.stdout


def test_a_local_source_lacking_a_table_fails_at_parse_time(tmp_path):
    (tmp_path / "bbbc021").mkdir()
    output = short_error(dry_run(tmp_path, {"source": "bbbc021", "synthetic": {"enabled": False}}))
    assert (
        f"config key source: folder {tmp_path / 'bbbc021'} lacks BBBC021_v1_image.csv and BBBC021_v1_moa.csv" in output
    )


def test_an_unknown_plate_of_a_local_source_fails_at_parse_time(tmp_path):
    """Was: -n passed; the run failed in select_images, printed twice (restart-times)."""
    local_source(tmp_path / "bbbc021")
    output = short_error(
        dry_run(tmp_path, {"source": "bbbc021", "synthetic": {"enabled": False}, "plates": ["Week1_22132"]})
    )
    assert "config key plates: unknown plate 'Week1_22132' (close names: Week1_22123" in output


def test_a_local_source_lacking_a_selected_plates_zip_fails_at_parse_time(tmp_path):
    """Was: -n passed; fetch_images failed at run time after chained tracebacks."""
    source = local_source(tmp_path / "bbbc021")
    (source / "BBBC021_v1_images_Week4_27481.zip").unlink()
    config = {"source": "bbbc021", "synthetic": {"enabled": False}}
    output = short_error(dry_run(tmp_path, config))
    assert (
        f"config key source: folder {source} lacks BBBC021_v1_images_Week4_27481.zip, the zip(s) of 1 of the 2"
        in output
    )
    result = dry_run(tmp_path, {**config, "plates": ["Week1_22123"]})  # a selection without it runs
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_a_plate_the_synthetic_set_lacks_fails_at_parse_time(tmp_path):
    output = short_error(dry_run(tmp_path, {"plates": ["Week4_27418"]}))
    assert (
        "config key plates: unknown plate 'Week4_27418': the synthetic data set has Week1_22123, Week4_27481" in output
    )


def test_a_compound_the_synthetic_set_lacks_fails_at_parse_time(tmp_path):
    """Was: -n passed; the run failed naming `compounds`, not `response.compounds`, with a traceback in the log."""
    output = short_error(dry_run(tmp_path, {"response": {"compounds": ["nonexistent"]}}))
    assert (
        "config key response.compounds: unknown compound 'nonexistent': the synthetic data set has DMSO, taxol"
        in output
    )


def test_a_local_sources_unknown_response_compound_is_named_as_its_key(tmp_path):
    local_source(tmp_path / "bbbc021")
    config = {"source": "bbbc021", "synthetic": {"enabled": False}, "response": {"compounds": ["taxoll"]}}
    output = short_error(dry_run(tmp_path, config))
    assert "config key response.compounds: unknown compound 'taxoll' (close names: taxol" in output


def test_a_source_that_is_a_file_is_said_to_be_one(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    for synthetic in (True, False):
        output = short_error(dry_run(tmp_path, {"source": "notes.txt", "synthetic": {"enabled": synthetic}}))
        assert f"config key source: {tmp_path / 'notes.txt'} is a file, not a folder" in output
    assert (tmp_path / "notes.txt").read_text() == "mine"
