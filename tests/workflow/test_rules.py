"""What the rules share is written once: the paths several rules name are patterns in rules/common.smk (a model's
files named as `cellvae train` names them in a run folder), and a setting a rule needs whole is passed whole."""

import re

from cellvae.model.train import training_files
from cellvae.testing.workflow import REPO, planned_jobs, snakemake

RULE_FILES = [REPO / "Snakefile", *sorted((REPO / "rules").glob("*.smk"))]
SHARED_PATHS = [  # as they stand in the rules (a folder of cells in quotes: cells.csv is another file)
    '"results/png/{plate}/cells"',
    "results/models/",
    "results/analysis/{model}/metrics.json",
    "results/analysis/{model}/baselines.npz",
]


def test_each_shared_path_is_written_once_in_rules_common():
    for path in SHARED_PATHS:
        places = [(file.name, text.count(path)) for file in RULE_FILES if (text := file.read_text()).count(path)]
        assert places == [("common.smk", 1)], f"{path} written in {places}: name rules/common.smk's pattern"


def test_train_vae_writes_the_files_of_a_cli_run_folder(tmp_path):
    """The workflow's model folder holds what `cellvae train --out` writes, under the same names."""
    folder = "results/models/z16"
    output = snakemake(tmp_path, "-n", f"{folder}/model.keras", config={}).stdout
    planned = re.search(r"^rule train_vae:\n(?:\s+.*\n)*?\s+output: (.*)$", output, re.M)
    assert planned, output[-3000:]
    assert sorted(planned[1].split(", ")) == sorted(str(path) for path in training_files(folder).values())


def test_select_images_reads_the_response_selection_only(selection):
    """select_images gets response's selection (compounds, moas, exclude_wells) as one value, the one the parse-time
    check of a local source selects with: a change there reruns it, a change of the analysis settings does not."""
    workdir, config = selection
    response = config["response"]
    analysis = {**response, "analysis": {**response["analysis"], "normalize": "none"}}
    assert "select_images" not in planned_jobs(workdir, config={**config, "response": analysis})
    fewer_wells = {**response, "exclude_wells": ["B02"]}
    assert planned_jobs(workdir, config={**config, "response": fewer_wells})["select_images"] == 1
