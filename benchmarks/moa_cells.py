"""MoA on real cells of all 12 mechanisms: the trained VAE's posterior means beside every cheap baseline.

Cells: ../shared/bbbc021/images/single_cells_moa (1,945 crops, 103 treatments of 38 compounds plus DMSO, 54 plates).
Feature sets, all on the same cells: a 16 px thumbnail of the raw crop, window statistics, classic measurements of
the centre cell (cellvae.cell_features), pixel PCA-16 and PCA-k (k = the model's z) fitted on the cells the VAE
trained on, an untrained encoder of the same architecture, and each trained run's mu (mean over seeds). A cell has
no canonical orientation: every feature set is scored with each cell as it is and averaged over its 8
flips/rotations (cellvae.orientations; the product's default, response.analysis.orientations); the tables show the
config's setting, the margins take each baseline at its better setting.
Two protocols, both scored by cellvae.moa (NSC, NSCB, mAP with 95% bootstrap intervals over treatments):
- simple: features standardized over all cells, a treatment's profile = the mean of its cells, the mean profile
  subtracted, cosine;
- product: `cellvae moa-eval --cells` at the config's defaults (per-plate normalization, cells → wells →
  treatments).
Runs are trained with the command of issue 17 (no labels): the five shared DMSO plates plus the MoA crops,
z = 75, 64 px, 40 epochs; --train trains the seeds whose run folder is missing or unfinished (it resumes).

Usage: .venv/bin/python benchmarks/moa_cells.py --runs benchmarks/out/moa/default-s1 ... [--train] [--results FILE]
Prints one line per feature set and protocol, then `vae_nsc_minus_best_baseline=` (the smaller margin of the two
protocols) last.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA

from cellvae import cell_features, moa
from cellvae.cli.common import parse_channel_order
from cellvae.config import defaults
from cellvae.images import compose_arrays, read_image
from cellvae.margins import replace_section
from cellvae.orientations import ORIENTATIONS, orientation_mean
from cellvae.response_baselines import THUMBNAIL_SIDE, thumbnails, untrained_copy

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "bbbc021" / "images"
MOA_MANIFEST = SHARED / "single_cells_moa" / "manifest.csv"
DMSO_PLATES = sorted(SHARED.glob("single_cells_by_plate/*/DMSO"))
SECTION = "## MoA on real cells of all 12 mechanisms"
PCA_SMALL = 16
AGGREGATES = ("mean", "median")
INTRO = """Cells: the 1,945 shared crops of all 12 MoAs (103 treatments of 38 compounds, 54 plates; median 10 cells per
treatment). Every feature set on the same cells, scored by cellvae.moa (NSC, NSCB, mAP; 95% bootstrap over
treatments); chance NSC ≈ 0.06. The simple protocol is the issue's (features standardized over all cells,
treatment = mean of its cells, mean profile subtracted, cosine); the product protocol is `cellvae moa-eval --cells`
at the config's defaults (per plate against DMSO with the batch fallback, cells → wells → treatments). The VAE runs
were trained with the issue's command (five shared DMSO plates + the MoA manifest, no labels; z = 75, 64 px, 40
epochs, default train:); PCA is fitted on the same training cells.
Every feature set is scored with each cell as it is and averaged over its 8 flips/rotations (the product's default,
`response.analysis.orientations: 8`); the main tables show the default, the margins take each baseline at its
better setting. Rows "VAE mu, <setting>" are single-seed training ablations (the same command with one train:
setting changed). Command: `python benchmarks/moa_cells.py --runs benchmarks/out/moa/default-s1 … default-s3
--masked benchmarks/out/moa/masked --ablation LABEL=RUN … --results benchmarks/RESULTS.md` (the masked crops by
`benchmarks/masked_crops.py`).
"""


def train_command(out: Path, seed: int) -> list[str]:
    images = [arg for folder in DMSO_PLATES for arg in ("--images", str(folder))]
    return [
        *(sys.executable, "-m", "cellvae", "train", *images, "--images", str(MOA_MANIFEST)),
        *("--latent-dim", "75", "--size", "64", "--epochs", "40", "--seed", str(seed), "--out", str(out)),
    ]


def read_cells() -> tuple[pd.DataFrame, list]:
    """The MoA manifest with plate, well, compound, concentration, moa, batch and the raw crops (DAPI, Tub, Actin)."""
    table = pd.read_csv(MOA_MANIFEST)
    table["path"] = [str(MOA_MANIFEST.parents[2] / file) for file in table["file"]]
    table = moa.annotate_cells(table.rename(columns=moa.ALIASES), MOA_MANIFEST)
    return table, [np.load(path) for path in table["path"]]


def model_features(run: Path, table: pd.DataFrame, untrained_seed: int | None) -> dict:
    """{orientations: {name: cells × features}}: mu of the run's model (or, with untrained_seed, of a fresh model
    of its architecture, and pixel PCA-16 and PCA-k fitted on the run's training cells) for the MoA cells composed
    as the run composed its inputs, as they are (1) and averaged over their 8 flips/rotations (8)."""
    from cellvae.model import load_vae
    from cellvae.response import encode_images

    preprocessing = json.loads((run / "preprocessing.json").read_text())
    raw = [read_image(path, parse_channel_order(preprocessing["channel_order"])) for path in table["path"]]
    cells, _ = compose_arrays(
        raw, preprocessing["size"], preprocessing["percentiles"], preprocessing["scale"], preprocessing["ranges_rgb"]
    )
    vae = load_vae(run / "model.keras")
    if untrained_seed is None:
        name = f"VAE z={vae.latent_dim} (trained)"
        return {o: {name: encode_images(vae, cells, orientations=o)} for o in ORIENTATIONS}
    untrained = untrained_copy(vae, untrained_seed)
    found = {
        o: {f"untrained encoder z={vae.latent_dim}": encode_images(untrained, cells, orientations=o)}
        for o in ORIENTATIONS
    }
    training = np.load(run / "data" / "train.npy", mmap_mode="r").reshape(-1, cells[0].size) / 255.0
    for k in (PCA_SMALL, vae.latent_dim):
        pca = PCA(k, random_state=0).fit(training)
        for o in ORIENTATIONS:
            found[o][f"pixel PCA-{k}"] = in_chunks(
                lambda images: pca.transform(images.reshape(len(images), -1) / 255.0), cells, o
            )
    return found


def in_chunks(describe, images: np.ndarray, orientations: int, chunk: int = 256) -> np.ndarray:
    """orientation_mean of describe, chunk by chunk (8 views of every cell at once would not fit in memory)."""
    return np.concatenate(
        [
            orientation_mean(describe, images[start : start + chunk], orientations)
            for start in range(0, len(images), chunk)
        ]
    )


def simple_protocol(table: pd.DataFrame, features: list, bootstrap: int, seed: int, aggregate: str = "mean") -> dict:
    normalized, _ = moa.normalize(table, features, "standardize", 2)
    treatments = moa.treatment_profiles(normalized, features, aggregate)
    profiles = treatments[features].to_numpy(np.float64)
    return moa.score(treatments, profiles - profiles.mean(axis=0), bootstrap, seed)


def feature_rows(table: pd.DataFrame, values) -> tuple[pd.DataFrame, list]:
    """The cells' well keys beside their features (a frame, or a matrix named f0, f1, …) and the usable features."""
    frame = values if isinstance(values, pd.DataFrame) else pd.DataFrame(values).add_prefix("f")
    rows = pd.concat([table[moa.WELL_KEYS].reset_index(drop=True), frame.reset_index(drop=True)], axis=1)
    return rows, list(moa.clean_features(rows[list(frame.columns)])[0].columns)


def scores(table: pd.DataFrame, values, settings: dict) -> dict:
    """{protocol: {nsc, nscb, map: {value, ci}}} of one feature matrix."""
    rows, keep = feature_rows(table, values)
    results = {
        "simple": simple_protocol(rows, keep, settings["bootstrap"], settings["seed"], settings["aggregate"]),
        "product": moa.evaluate_rows(rows, keep, settings, cells=True),
    }
    return {protocol: {key: result[key] for key in ("nsc", "nscb", "map")} for protocol, result in results.items()}


NORMALIZATION_VARIANTS = {  # product protocol variants: (normalize, min_controls)
    "standardize (all cells)": ("standardize", 2),
    "plate-dmso, min_controls 2": ("plate-dmso", 2),
    "plate-dmso, min_controls 5": ("plate-dmso", 5),
    "plate-dmso, min_controls 10": ("plate-dmso", 10),
    "plate's own cells": ("plate-dmso", 1_000_000),
}


def normalization_ablation(table: pd.DataFrame, feature_sets: dict, settings: dict) -> str:
    """Markdown: NSC and mAP [95% CI] of each feature set under each normalization of the product protocol."""
    lines = [
        "| features | " + " | ".join(NORMALIZATION_VARIANTS) + " |",
        "|---" * (len(NORMALIZATION_VARIANTS) + 1) + "|",
    ]
    for name, values in feature_sets.items():
        rows, keep = feature_rows(table, values)
        cells = []
        for normalize, min_controls in NORMALIZATION_VARIANTS.values():
            variant = {**settings, "normalize": normalize, "min_controls": min_controls}
            result = moa.evaluate_rows(rows, keep, variant, cells=True)
            nsc, average = result["nsc"], result["map"]
            cells.append(f"{nsc['value']:.2f} [{nsc['ci'][0]:.2f}, {nsc['ci'][1]:.2f}] / {average['value']:.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    return "\n".join(lines) + "\n"


def aggregation_ablation(table: pd.DataFrame, feature_sets: dict, settings: dict) -> str:
    """Markdown: NSC / mAP of each feature set, cells into treatments by their mean vs their median."""
    lines = ["| features | " + " | ".join(f"{p}, {a}" for p in ("simple", "product") for a in AGGREGATES) + " |"]
    lines.append("|---" * 5 + "|")
    for name, values in feature_sets.items():
        found = {a: scores(table, values, {**settings, "aggregate": a}) for a in AGGREGATES}
        entries = [found[a][p] for p in ("simple", "product") for a in AGGREGATES]
        lines.append(
            f"| {name} | " + " | ".join(f"{e['nsc']['value']:.2f} / {e['map']['value']:.2f}" for e in entries) + " |"
        )
        print(lines[-1], flush=True)
    return "\n".join(lines) + "\n"


def subsampling_curve(table: pd.DataFrame, feature_sets: dict, settings: dict, repeats: int = 10) -> str:
    """Markdown: simple-protocol NSC with at most n cells per treatment (and per DMSO group), mean over repeats of
    the draw: how many cells each feature set needs."""
    sizes = (1, 2, 4, 8, None)
    lines = ["| features | " + " | ".join(f"≤ {n} cells" if n else "all cells" for n in sizes) + " |"]
    lines.append("|---" * (len(sizes) + 1) + "|")
    for name, values in feature_sets.items():
        rows, keep = feature_rows(table, values)
        means = []
        for n in sizes:
            found = []
            for repeat in range(repeats if n else 1):
                rng = np.random.default_rng(repeat)
                groups = rows.groupby(["compound", "concentration"]).indices.values()
                picked = [rng.choice(group, min(n or len(group), len(group)), replace=False) for group in groups]
                drawn = rows.iloc[np.sort(np.concatenate(picked))].reset_index(drop=True)
                found.append(simple_protocol(drawn, keep, 10, settings["seed"])["nsc"]["value"])
            means.append(f"{np.mean(found):.2f}")
        lines.append(f"| {name} | " + " | ".join(means) + " |")
        print(lines[-1], flush=True)
    return "\n".join(lines) + "\n"


def mean_over_seeds(results: list) -> dict:
    """Values and interval bounds averaged over seeds; the seeds' values kept beside."""
    merged = {}
    for protocol in results[0]:
        merged[protocol] = {}
        for key in results[0][protocol]:
            per_seed = [result[protocol][key] for result in results]
            merged[protocol][key] = {
                "value": float(np.mean([entry["value"] for entry in per_seed])),
                "ci": [float(np.mean([entry["ci"][i] for entry in per_seed])) for i in (0, 1)],
                "seeds": [round(entry["value"], 3) for entry in per_seed],
            }
    return merged


def table_markdown(rows: dict) -> str:
    def cell(entry):
        text = f"{entry['value']:.2f} [{entry['ci'][0]:.2f}, {entry['ci'][1]:.2f}]"
        return text + (f" (seeds {', '.join(map(str, entry['seeds']))})" if "seeds" in entry else "")

    lines = []
    for protocol in ("simple", "product"):
        lines += [
            f"\n{protocol} protocol:\n",
            "| features | NSC | NSCB | mAP |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {name} | " + " | ".join(cell(result[protocol][key]) for key in ("nsc", "nscb", "map")) + " |"
            for name, result in rows.items()
        ]
    return "\n".join(lines) + "\n"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", type=Path, required=True, help="run folders of `cellvae train`")
    parser.add_argument("--train", action="store_true", help="train (or resume) the runs first; --runs end in -s<seed>")
    parser.add_argument("--results", type=Path, help="markdown file whose MoA section is (re)written")
    parser.add_argument(
        "--masked",
        type=Path,
        help="output folder of benchmarks/masked_crops.py: its masked-s<seed> runs (beside it) are scored on its crops",
    )
    parser.add_argument(
        "--ablation",
        action="append",
        default=[],
        metavar="LABEL=RUN",
        help="a run trained with other train: settings (e.g. 'sigma per_channel=benchmarks/out/moa/perchannel-s1'), "
        "scored on the same cells as a row of its own",
    )
    return parser.parse_args()


def score_orientations(args, table: pd.DataFrame, crops: list, settings: dict) -> tuple[dict, dict, dict]:
    """Every feature set and the runs' mean over seeds, as they are and over 8 views: (orientations -> label ->
    scores, orientations -> label -> features, orientations -> the VAE's label)."""
    orientation_free = {  # the same under every flip/rotation (tests/test_cell_features.py)
        "window statistics": pd.DataFrame([cell_features.window_statistics(c) for c in crops]),
        "classic (centre cell)": pd.DataFrame([cell_features.classic_measurements(c) for c in crops]),
    }
    free_scores = {name: scores(table, values, settings) for name, values in orientation_free.items()}
    raw_crops = np.asarray(crops, np.float64)
    baseline_features = model_features(args.runs[0], table, 1)
    trained_features = [model_features(run, table, None) for run in args.runs]
    rows, features, vae_rows = {}, {}, {}
    for orientations in ORIENTATIONS:
        features[orientations] = {
            f"thumbnail {THUMBNAIL_SIDE}x{THUMBNAIL_SIDE}": in_chunks(thumbnails, raw_crops, orientations),
            **orientation_free,
            **baseline_features[orientations],
        }
        rows[orientations] = {}
        for name, values in features[orientations].items():
            rows[orientations][name] = free_scores.get(name) or scores(table, values, settings)
            print(orientations, name, json.dumps(rows[orientations][name]), flush=True)
        embedded = [found[orientations] for found in trained_features]
        trained = [scores(table, next(iter(found.values())), settings) for found in embedded]
        latent = re.search(r"z=(\d+)", next(iter(embedded[0])))[1]
        vae_rows[orientations] = f"VAE mu, default, z={latent} (mean of {len(args.runs)} seed(s))"
        rows[orientations][vae_rows[orientations]] = mean_over_seeds(trained)
        features[orientations][vae_rows[orientations]] = next(iter(embedded[0].values()))
        print(orientations, vae_rows[orientations], json.dumps(rows[orientations][vae_rows[orientations]]), flush=True)
    return rows, features, vae_rows


def ablation_rows(args, table: pd.DataFrame, settings: dict) -> dict:
    """label -> scores of the --masked runs (on their crops) and of the --ablation runs, at the chosen orientations."""
    chosen, found = settings["orientations"], {}
    if args.masked:
        masked_table = table.assign(path=pd.read_csv(args.masked / "moa.csv")["path"].to_numpy())
        for run in sorted(path for path in args.masked.parent.glob("masked-s*") if path.is_dir()):
            label = f"VAE mu, centre cell masked (inputs), {run.name}"
            masked = next(iter(model_features(run, masked_table, None)[chosen].values()))
            found[label] = scores(masked_table, masked, settings)
            print(label, json.dumps(found[label]), flush=True)
    for label, run in (entry.split("=", 1) for entry in args.ablation):
        values = next(iter(model_features(Path(run), table, None)[chosen].values()))
        row = f"VAE mu, {label}, {Path(run).name}"
        found[row] = scores(table, values, settings)
        print(label, json.dumps(found[row]), flush=True)
    return found


def margins_over_baselines(rows: dict, vae_scores: dict) -> dict:
    """protocol_metric -> the VAE's value minus the best baseline's (each baseline at its better orientations)."""
    margins = {}
    for protocol in ("simple", "product"):
        for key in ("nsc", "map"):
            best = max(
                result[protocol][key]["value"]
                for by_name in rows.values()
                for label, result in by_name.items()
                if "VAE mu" not in label
            )
            margins[f"{protocol}_{key}"] = vae_scores[protocol][key]["value"] - best
            print(f"vae_{key}_minus_best_baseline_{protocol}={margins[f'{protocol}_{key}']:.3f}")
    return margins


def main() -> None:
    args = parse_args()
    if not MOA_MANIFEST.is_file():
        sys.exit(f"moa_cells: {MOA_MANIFEST} not found (../shared beside the checkout)")
    if args.train:
        for run in args.runs:
            seed = int(re.search(r"-s(\d+)$", run.name)[1])
            subprocess.run(train_command(run, seed), check=True)
    settings = defaults()["response"]["analysis"]
    table, crops = read_cells()
    print(f"{len(table)} cells, {table.groupby(['compound', 'concentration']).ngroups - 1} treatments", flush=True)
    rows, features, vae_rows = score_orientations(args, table, crops, settings)
    chosen = settings["orientations"]
    name = vae_rows[chosen]
    table_rows = dict(rows[chosen]) | ablation_rows(args, table, settings)
    margins = margins_over_baselines(rows, table_rows[name])
    ablated = {label: values for label, values in features[chosen].items() if not label.startswith("thumbnail")}
    latent = re.search(r"z=(\d+)", name)[1]
    first_seed = f"VAE mu, default, z={latent}, {args.runs[0].name}"
    ablated[first_seed] = ablated.pop(name)
    focus = {label: ablated[label] for label in ("classic (centre cell)", f"pixel PCA-{latent}", first_seed)}
    if args.results:
        replace_section(
            args.results,
            SECTION,
            f"{SECTION}\n\n{INTRO}"
            + table_markdown(table_rows)
            + f"\nMargins of the VAE over the best baseline (each at its better orientations): {margins}\n"
            + "\nEach cell as it is (orientations 1) or averaged over its 8 flips/rotations (8), NSC / mAP:\n\n"
            + orientation_table(rows)
            + "\nNormalization of the product protocol (NSC [95% CI] / mAP; VAE: its first seed):\n\n"
            + normalization_ablation(table, ablated, settings)
            + "\nAggregation of cells into wells and treatments, NSC / mAP (VAE: its first seed):\n\n"
            + aggregation_ablation(table, focus, settings)
            + "\nCells per treatment each feature set needs: simple-protocol NSC with at most n cells per treatment"
            + " (a random draw, mean of 10 draws; VAE: its first seed):\n\n"
            + subsampling_curve(table, focus, settings),
        )
    print(f"vae_nsc_minus_best_baseline={min(margins['simple_nsc'], margins['product_nsc']):.3f}")


def orientation_table(rows: dict) -> str:
    """Markdown: NSC / mAP of each feature set under both protocols, cells as they are vs over their 8 views."""
    columns = [(protocol, orientations) for protocol in ("simple", "product") for orientations in ORIENTATIONS]
    lines = [
        "| features | " + " | ".join(f"{protocol}, orientations {o}" for protocol, o in columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for label in rows[ORIENTATIONS[0]]:
        entries = [rows[o][label][protocol] for protocol, o in columns]
        lines.append(
            f"| {label} | "
            + " | ".join(f"{entry['nsc']['value']:.2f} / {entry['map']['value']:.2f}" for entry in entries)
            + " |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
