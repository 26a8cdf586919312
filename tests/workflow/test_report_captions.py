"""Every caption of the demo's report renders with its rule's real wildcards and the demo config: no undefined
name, no empty value (Snakemake renders captions with Jinja2; an unknown wildcard silently printed nothing)."""

import re
from pathlib import Path

import jinja2
import pytest
from snakemake.api import SnakemakeApi
from snakemake.settings.types import (
    ConfigSettings,
    DeploymentSettings,
    OutputSettings,
    ResourceSettings,
    StorageSettings,
    WorkflowSettings,
)

from cellvae.testing.workflow import REPO

SAMPLE_WILDCARDS = {"model": "default-z16", "plate": "Week1_22123"}
EXPRESSION = re.compile(r"{{(.*?)}}", re.S)


def report_captions(workdir: Path) -> list:
    """(caption path, the rule's wildcard names, config) of every output marked for the report, and the front page."""
    with SnakemakeApi(OutputSettings()) as api:
        workflow = api.workflow(
            resource_settings=ResourceSettings(cores=1),
            config_settings=ConfigSettings(configfiles=[REPO / "config" / "config.yaml"]),
            storage_settings=StorageSettings(),
            workflow_settings=WorkflowSettings(),
            deployment_settings=DeploymentSettings(),
            snakefile=REPO / "Snakefile",
            workdir=workdir,
        )._workflow
        captions = [
            (Path(str(output.flags["report"].caption)), sorted(rule.wildcard_names), workflow.config)
            for rule in workflow.rules
            for output in rule.output
            if output.flags.get("report") and output.flags["report"].caption
        ]
        return captions + [(REPO / "report" / "workflow.rst", [], workflow.config)]


@pytest.fixture(scope="module")
def captions(tmp_path_factory):
    return report_captions(tmp_path_factory.mktemp("captions"))


def test_every_caption_renders_every_value(captions):
    assert len(captions) >= 15
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined)
    for path, wildcard_names, config in captions:
        snakemake = type("Snakemake", (), {})()
        snakemake.wildcards = type("Wildcards", (), {name: SAMPLE_WILDCARDS[name] for name in wildcard_names})()
        snakemake.config = config
        text = path.read_text()
        for expression in EXPRESSION.findall(text):
            try:
                value = environment.from_string("{{" + expression + "}}").render(snakemake=snakemake)
            except jinja2.UndefinedError as error:
                pytest.fail(f"{path.name}: {{{{{expression}}}}} is undefined ({error})")
            assert value.strip(), f"{path.name}: {{{{{expression}}}}} renders empty"
        environment.from_string(text).render(snakemake=snakemake)  # the whole caption, control blocks included
