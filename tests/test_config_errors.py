"""A bad config fails at parse time (snakemake -n) in one short message naming the key (rules/common.smk)."""

import pytest
import yaml
from live_servers import REPO, snakemake

MAX_LINES = 20  # the error, Snakemake's profile line and the file/line it points at; never the schema


def config():
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def allowed(*path):
    """The keys the schema allows at a path, as the message lists them."""
    schema = yaml.safe_load((REPO / "config" / "config.schema.yaml").read_text())
    for key in path:
        schema = schema["properties"][key]
    return ", ".join(schema["properties"])


def dry_run(tmp_path, values, *args):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(values))
    return snakemake(tmp_path, "-n", *args, check=False, timeout=300)


def short_error(result):
    """Snakemake's whole output (it logs the error to stdout), once checked to be a failure in a few lines."""
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert len(output.strip().splitlines()) <= MAX_LINES, output[:3000]
    return output


def test_an_unknown_top_level_key_names_it_and_the_allowed_keys(tmp_path):
    output = short_error(dry_run(tmp_path, {**config(), "pngg": {"size": 64}}))
    assert f"config key pngg is not allowed; allowed keys at the top level: {allowed()} (" in output
    assert "source, fetch, synthetic," in output and "Failed validating" not in output


def test_an_unknown_nested_key_from_the_command_line_names_its_path(tmp_path):
    output = short_error(dry_run(tmp_path, config(), "--config", "png={sizee: 64}"))
    assert f"config key png.sizee is not allowed; allowed keys under png: {allowed('png')} (" in output
    assert "size, percentiles" in output


def test_a_wrong_value_names_the_key_and_the_rule(tmp_path):
    values = config()
    values["train"]["learning_rate"] = -1
    output = short_error(dry_run(tmp_path, values))
    assert "config key train.learning_rate: -1 is less than or equal to the minimum of 0" in output


def test_a_missing_key_is_named_with_its_path(tmp_path):
    values = config()
    del values["png"]["size"]
    output = short_error(dry_run(tmp_path, values))
    assert "config key png.size is missing (required;" in output


def test_latent_dims_from_the_command_line_are_numbers(tmp_path):
    result = dry_run(tmp_path, config(), "--config", "latent_dims=[16,48]")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "is not of type" not in result.stdout + result.stderr


def test_a_non_numeric_latent_dim_is_still_refused(tmp_path):
    output = short_error(dry_run(tmp_path, config(), "--config", "latent_dims=[z16]"))
    assert "config key latent_dims.0: 'z16' is not of type 'integer'" in output


@pytest.mark.parametrize("source", ["bbbc021", "/nonexistent/cellvae/bbbc021"])
def test_a_missing_local_source_folder_fails_at_parse_time(tmp_path, source):
    values = {**config(), "source": source}
    values["synthetic"]["enabled"] = False
    output = short_error(dry_run(tmp_path, values))
    folder = tmp_path / source if not source.startswith("/") else source
    assert f"config key source: folder {folder} does not exist;" in output
    assert "Job stats" not in output


def test_an_existing_local_source_folder_plans_the_run(tmp_path):
    values = {**config(), "source": "bbbc021"}
    values["synthetic"]["enabled"] = False
    (tmp_path / "bbbc021").mkdir()
    result = dry_run(tmp_path, values)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "select_images" in result.stdout
