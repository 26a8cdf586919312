"""Numeric option types of the commands (cellvae.core.option_types): bounded, named in the error, bounds read from the
schema."""

import argparse

import pytest

from cellvae.cli import main
from cellvae.core.config import defaults, schema
from cellvae.core.option_types import bounded, positive_int, schema_number


@pytest.mark.parametrize(
    "kind, good, bad",
    [
        (positive_int, {"1": 1, "64": 64}, ["0", "-1", "1.5", "1e3", "x", ""]),
        (bounded(int, minimum=0), {"0": 0, "7": 7}, ["-1", "nan", "x"]),
        (bounded(float, above=0), {"0.5": 0.5, "1e3": 1000.0}, ["0", "-0.1", "nan", "inf", "1" + "0" * 400, "x"]),
        (bounded(float, minimum=0), {"0": 0.0, "2": 2.0}, ["-1e-9", "-inf", "nan", "x"]),
        (bounded(int, minimum=1, maximum=64), {"1": 1, "64": 64}, ["0", "65"]),
    ],
)
def test_bounded_types_accept_their_range_and_name_the_bound_otherwise(kind, good, bad):
    assert {text: kind(text) for text in good} == good
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError) as error:
            kind(text)
        assert str(error.value) == f"expected {kind.wanted}, got {text!r}"


def test_wanted_says_the_bounds():
    assert positive_int.wanted == "an integer >= 1"
    assert bounded(float, above=0).wanted == "a finite number > 0"
    assert bounded(int, minimum=1, maximum=64).wanted == "an integer from 1 to 64"
    assert bounded(float, maximum=1).wanted == "a finite number <= 1"


def test_schema_number_reads_type_and_bounds_of_a_config_key():
    assert schema_number("fetch.connections").wanted == "an integer from 1 to 64 (config fetch.connections)"
    assert schema_number("fetch.timeout_s").wanted == "a finite number > 0 (config fetch.timeout_s)"
    assert schema_number("synthetic.wells_per_compound").wanted == (  # through "#/definitions/positive_int"
        "an integer >= 1 (config synthetic.wells_per_compound)"
    )
    price = schema_number("cost.instances.gpu.price_per_hour")  # a property of a referenced definition
    assert price.wanted == "a finite number >= 0 (config cost.instances.gpu.price_per_hour)"


def _numeric_keys(node: dict, key: str = ""):
    """Every integer/number key of the schema with a default (definitions resolved)."""
    if "$ref" in node:
        node = schema()["definitions"][node["$ref"].rsplit("/", 1)[1]] | node
    if node.get("type") in ("integer", "number") and key:
        yield key
    for name, child in node.get("properties", {}).items():
        yield from _numeric_keys(child, f"{key}.{name}" if key else name)


def test_every_numeric_default_passes_its_own_bounds():
    keys = list(_numeric_keys(schema()))
    assert {"fetch.retries", "synthetic.width", "cost.instances.cpu.price_per_hour"} <= set(keys)
    for key in keys:
        default = defaults()
        for part in key.split("."):
            default = default[part]
        assert schema_number(key)(str(default)) == default, key


def test_embed_batch_size_names_its_bound(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["embed", "--model", "m.keras", "--images", "crops", "--out", "z.csv", "--batch-size", "many"])
    assert exit.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "cellvae embed: error: argument --batch-size: expected an integer >= 1, got 'many'"
    )


def test_help_is_short_and_shows_the_defaults(capsys):
    """Each command's --help: the description's first paragraph, every option explained, defaults shown."""
    helps = {}
    for command in ("train", "evaluate", "embed", "moa-eval"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        helps[command] = capsys.readouterr().out
    assert len(helps["train"].splitlines()) <= 100
    assert "dimensions of the latent space" in helps["train"] and "passes over the training cells" in helps["train"]
    assert "--kl-weight V         default 1.0" in helps["train"]
    assert "Images are composed exactly as" not in helps["train"]  # the details stay in the module's docstring
    analysis = defaults()["response"]["analysis"]
    for key in ("normalize", "min_controls", "bootstrap", "reference_cap"):
        assert f"(default: {analysis[key]})" in helps["moa-eval"]
    assert "(default: 256)" in helps["embed"] and "--json FILE" in helps["evaluate"]
