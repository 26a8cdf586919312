"""The "Results at a glance" page from small hand-made metrics, latent, response and cost files."""

import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from cellvae.profiling.glance import glance_html, verdict, write_glance
from cellvae.testing.workflow import REPO

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH: make setup-test installs it")


class Cells(HTMLParser):
    """The text of each table row's cells (header row included), in order."""

    def __init__(self):
        super().__init__()
        self.rows, self.cell = [], None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self.cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.rows[-1].append(self.cell.strip())
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def section_table(page, title) -> dict:
    """model -> {column: text} of the table under the heading title."""
    parser = Cells()
    parser.feed(page.split(f"<h2>{title}</h2>")[1].split("<h2>")[0])
    header, *rows = parser.rows
    return {row[0]: dict(zip(header, row)) for row in rows}


def write_inputs(folder):
    metrics = pd.DataFrame(
        [
            {"method": "vae", "model": "z16", "latent_dim": 16, "mse": 0.008, "ssim": 0.71},
            {"method": "pca-16", "model": None, "latent_dim": 16, "mse": 0.010, "ssim": 0.65},
            {"method": "vae", "model": "z32", "latent_dim": 32, "mse": 0.0066, "ssim": 0.74},
            {"method": "pca-32", "model": None, "latent_dim": 32, "mse": 0.006, "ssim": 0.76},
            {"method": "mean", "model": None, "latent_dim": 0, "mse": 0.03, "ssim": 0.2},
        ]
    )
    metrics.to_csv(folder / "metrics.csv", index=False)
    latent = {}
    for model, kl in (("z16", 12.5), ("z32", 20.25)):
        latent[model] = folder / f"{model}.json"
        latent[model].write_text(
            json.dumps({"kl_nats": kl, "active_units": 7, "nll_per_pixel": -1.5, "ppca_nll_per_pixel": -1.2})
        )
    pd.DataFrame(
        [
            {"model": "z16", "method": "VAE mu", "nsc": 0.52, "nsc_low": 0.42, "nsc_high": 0.61, "nscb": 0.4},
            {"model": "z16", "method": "pca", "nsc": 0.46, "nsc_low": 0.36, "nsc_high": 0.55, "nscb": 0.3},
        ]
    ).to_csv(folder / "summary.csv", index=False)
    pd.DataFrame(
        [{"stage": "train", "model": "z16", "instance_type": "g5", "jobs": 1, "hours": 0.5, "cost": 0.5}]
    ).to_csv(folder / "cost.csv", index=False)
    return folder / "metrics.csv", latent, folder / "cost.csv", folder / "summary.csv"


def test_the_page_shows_each_models_mse_beside_pca_and_a_verdict(tmp_path):
    metrics, latent, cost, summary = write_inputs(tmp_path)
    page = glance_html(metrics, latent, cost, summary)
    assert "<h1>Results at a glance</h1>" in page
    rows = section_table(page, "Models against baselines")
    assert (rows["z16"]["mse"], rows["z16"]["pca_mse"]) == ("0.008", "0.01")
    assert (rows["z32"]["mse"], rows["z32"]["pca_mse"]) == ("0.0066", "0.006")
    assert rows["z16"]["mse_ratio_to_pca"] == "0.800"
    assert "z16 beats PCA-16 by 20.0% in MSE" in page
    assert "z32 is worse than PCA-32 by 10.0% in MSE" in page
    assert "0.520 [0.420, 0.610]" in page  # the MoA table with its interval
    assert "20.25" in page and "g5" in page  # latent section and cost


def test_without_the_response_stage_there_is_no_moa_section(tmp_path):
    metrics, latent, cost, _ = write_inputs(tmp_path)
    page = glance_html(metrics, latent, cost, None)
    assert "MoA retrieval" not in page and "Cost" in page


def test_verdict_without_a_pca_baseline():
    assert verdict("z8", float("nan"), "PCA-8")[0] == "z8: no PCA-8 baseline to compare with"


def rendered_dom(page: Path) -> str:
    """The DOM of a local HTML file after headless Chromium ran its scripts (10 s of virtual time)."""
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"]
        + ["--virtual-time-budget=10000", "--dump-dom", page.resolve().as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.browser
@needs_chromium
def test_the_page_renders_its_tables_in_chromium(tmp_path):
    metrics, latent, cost, summary = write_inputs(tmp_path)
    write_glance(metrics, latent, cost, tmp_path / "glance.html", summary)
    dom = rendered_dom(tmp_path / "glance.html")
    assert "<h1>Results at a glance</h1>" in dom and dom.count("<table") == 4
    assert "z16 beats PCA-16 by 20.0% in MSE" in dom


@pytest.mark.browser
@needs_chromium
def test_the_demo_report_opens_on_the_glance_page_and_the_loss_curves():
    """The report of a demo run (make demo; or CELLVAE_REPORT=path/to/report.html) in headless Chromium: its menu
    names the "Results at a glance" category first, and it holds the loss curves."""
    report = Path(os.environ.get("CELLVAE_REPORT", REPO / "results" / "report.html"))
    if not report.is_file():
        pytest.skip(f"no report at {report}: run make demo (or set CELLVAE_REPORT) to check it in a browser")
    dom = rendered_dom(report)
    assert "Results at a glance" in dom, "the report's DOM does not name the glance page"
    assert dom.index("Results at a glance") < dom.index("Models against baselines")
    assert "loss_curves.png" in dom or "loss curves" in dom
