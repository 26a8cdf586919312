"""Shared test fixtures: the real BBBC021 data beside the checkout, where present."""

from pathlib import Path

import pytest
from snakemake_runner import REPO

SHARED = REPO.parent / "shared" / "bbbc021"


@pytest.fixture(scope="session")
def shared_bbbc021() -> Path:
    """../shared/bbbc021 (real metadata, profiles, crops); skip where a fresh clone lacks it."""
    if not (SHARED / "metadata" / "BBBC021_v1_image.csv").exists():
        pytest.skip(f"real BBBC021 data not found at {SHARED} (only CI and dev machines have ../shared)")
    return SHARED
