"""Shared test fixtures: the real BBBC021 data beside the checkout, where present, and a workflow past its
selection checkpoint."""

from pathlib import Path
from typing import NamedTuple

import pytest

from cellvae.testing.workflow import REPO, local_config, local_source, snakemake

SHARED = REPO.parent / "shared" / "bbbc021"


@pytest.fixture(scope="session")
def shared_bbbc021() -> Path:
    """../shared/bbbc021 (real metadata, profiles, crops); skip where a fresh clone lacks it."""
    if not (SHARED / "metadata" / "BBBC021_v1_image.csv").exists():
        pytest.skip(f"real BBBC021 data not found at {SHARED} (only CI and dev machines have ../shared)")
    return SHARED


class Selection(NamedTuple):
    workdir: Path
    config: dict


@pytest.fixture(scope="session")
def selection(tmp_path_factory) -> Selection:
    """A workdir past the selection checkpoint (fetch_metadata and select_images run) of a tiny local source
    (cellvae.testing.workflow.local_source), so that a dry run shows the whole plan. Shared by the session: dry-run
    in it with its config (or a changed copy) passed each time; copy the folder to run anything for real."""
    root = tmp_path_factory.mktemp("selection")
    config = local_config(local_source(root / "source"))
    workdir = root / "work"
    workdir.mkdir()
    snakemake(workdir, "--cores", 1, "select_images", config=config)
    return Selection(workdir, config)
