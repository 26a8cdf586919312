"""The report's first page, "Results at a glance": each model beside its baselines (MSE, SSIM, the ratio to PCA-k),
its latent section, the MoA scores with their intervals, the cost and a one-line verdict per model, as one HTML page
built from the files the analysis, response and cost stages wrote."""

import html
import json
from pathlib import Path

import pandas as pd

from cellvae.core.files import atomic_write

STYLE = """
body { font-family: sans-serif; margin: 1.5em; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f0f0f0; }
.verdict { font-weight: bold; }
.better { color: #1a7f37; }
.worse { color: #b42318; }
"""


def _interval(value, low, high, digits=3) -> str:
    """'v [low, high]', or just 'v' where the interval was not computed."""
    if pd.isna(value):
        return ""
    text = f"{value:.{digits}f}"
    if not (pd.isna(low) or pd.isna(high)):
        text += f" [{low:.{digits}f}, {high:.{digits}f}]"
    return text


def model_rows(metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per model: its MSE and SSIM beside PCA-k's (k = its latent dimension), the mean and median images'
    MSE, and the ratio of its MSE to PCA-k's (with its interval where metrics.csv has mse_ratio_low/high)."""
    baselines = metrics[metrics["method"] != "vae"].set_index("method")
    rows = []
    for _, row in metrics[metrics["method"] == "vae"].iterrows():
        pca_name = f"pca-{int(row['latent_dim'])}"
        pca = baselines.loc[pca_name] if pca_name in baselines.index else None
        ratio = row["mse"] / pca["mse"] if pca is not None and pca["mse"] > 0 else float("nan")
        rows.append(
            {
                "model": row["model"],
                "latent_dim": int(row["latent_dim"]),
                "mse": row["mse"],
                "pca_mse": pca["mse"] if pca is not None else float("nan"),
                "mean_mse": baselines.loc["mean", "mse"] if "mean" in baselines.index else float("nan"),
                "ssim": row.get("ssim", float("nan")),
                "pca_ssim": pca["ssim"] if pca is not None and "ssim" in pca else float("nan"),
                "mse_ratio_to_pca": _interval(ratio, row.get("mse_ratio_low"), row.get("mse_ratio_high")),
                "ratio": ratio,
                "pca": pca_name.upper(),
            }
        )
    return pd.DataFrame(rows)


def verdict(model: str, ratio: float, pca: str) -> tuple[str, str]:
    """The one-line verdict of a model and its CSS class ('better' or 'worse')."""
    if pd.isna(ratio):
        return f"{model}: no {pca} baseline to compare with", "worse"
    if ratio < 1:
        return f"{model} beats {pca} by {(1 - ratio) * 100:.1f}% in MSE", "better"
    return f"{model} is worse than {pca} by {(ratio - 1) * 100:.1f}% in MSE", "worse"


def latent_table(latent_jsons: dict) -> pd.DataFrame:
    """model -> latent.json: KL, active units and NLL per pixel beside probabilistic PCA's."""
    rows = []
    for model, path in latent_jsons.items():
        latent = json.loads(Path(path).read_text())
        rows.append(
            {
                "model": model,
                "kl_nats": latent.get("kl_nats"),
                "active_units": latent.get("active_units"),
                "nll_per_pixel": latent.get("nll_per_pixel"),
                "ppca_nll_per_pixel": latent.get("ppca_nll_per_pixel"),
            }
        )
    return pd.DataFrame(rows)


ENDS = ("_low", "_high")


def moa_table(summary: pd.DataFrame) -> pd.DataFrame:
    """summary.csv of compare_responses: NSC, NSCB and mAP each as 'value [low, high]' per model and method."""
    table = summary[["model", "method"]].copy()
    missing = pd.Series(float("nan"), index=summary.index)
    for key in ("nsc", "nscb", "map"):
        if key in summary:
            table[key] = [
                _interval(value, low, high)
                for value, low, high in zip(summary[key], *(summary.get(f"{key}{end}", missing) for end in ENDS))
            ]
    return table


def _section(title: str, table: pd.DataFrame, note: str = "") -> str:
    body = table.to_html(index=False, na_rep="", float_format=lambda value: f"{value:.4g}", border=0)
    return f"<h2>{html.escape(title)}</h2>\n" + (f"<p>{html.escape(note)}</p>\n" if note else "") + body


def glance_html(metrics_csv, latent_jsons: dict, cost_csv, response_csv=None) -> str:
    """The "Results at a glance" page (HTML) from metrics.csv, each model's latent.json, the cost table and, where
    the response stage ran, its summary.csv."""
    models = model_rows(pd.read_csv(metrics_csv))
    verdicts = [verdict(row["model"], row["ratio"], row["pca"]) for _, row in models.iterrows()]
    parts = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8"><title>Results at a glance</title>',
        f"<style>{STYLE}</style></head><body>",
        "<h1>Results at a glance</h1>",
        "<ul>",
        *[f'<li class="verdict {kind}">{html.escape(text)}</li>' for text, kind in verdicts],
        "</ul>",
        _section(
            "Models against baselines",
            models.drop(columns=["ratio", "pca"]),
            "Held-out cells; pca_mse and pca_ssim: PCA with as many components as the model's latent dimensions.",
        ),
        _section("Latent space", latent_table(latent_jsons), "NLL per pixel: lower is better."),
    ]
    if response_csv is not None and Path(response_csv).is_file():
        parts.append(
            _section("MoA retrieval", moa_table(pd.read_csv(response_csv)), "95% bootstrap intervals in brackets.")
        )
    parts += [_section("Cost", pd.read_csv(cost_csv)), "</body></html>"]
    return "\n".join(parts) + "\n"


def write_glance(metrics_csv, latent_jsons: dict, cost_csv, html_path, response_csv=None) -> str:
    page = glance_html(metrics_csv, latent_jsons, cost_csv, response_csv)
    atomic_write(html_path, lambda path: Path(path).write_text(page))
    return page
