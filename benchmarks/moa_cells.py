"""MoA on real cells of all 12 mechanisms: the trained VAE's posterior means beside every baseline, on a protocol
frozen before scoring.

Cells: ../shared/bbbc021/images/single_cells_moa (1,945 crops, 103 treatments of 38 compounds plus DMSO, 54 plates).
Feature sets, all on the same cells: a 16 px thumbnail, window statistics, classic scikit-image measurements of the
centre cell (cellvae.profiling.cell_features), CellProfiler's own measurements of the centre cell (--cellprofiler: the
table
of benchmarks/cellprofiler_moa_features.py), pixel PCA-16 and PCA-k fitted on the cells the first run trained on,
an untrained encoder of the same architecture, and the runs' mu.

The protocol is the config's `response.analysis` (per plate against DMSO with the batch fallback, min_controls,
reference_cap, mean of cells into wells into treatments, each cell's mu averaged over its 8 flips/rotations),
fixed before the runs were scored (RESULTS.md records when). The VAE is scored at that protocol only (and, as the
second figure, with features standardized over all cells instead); every baseline on the grid normalizations
(plate-dmso, standardize) × orientations (1, 8) and taken at its best point, which can only flatter the baselines.
Seeds are averaged per treatment; every interval resamples compounds (cellvae.profiling.moa_paired), and the margin
over the
best baseline is a paired difference.

Usage: .venv/bin/python benchmarks/moa_cells.py --runs RUN-s1 RUN-s2 RUN-s3 [--train] [--cellprofiler TABLE]
       [--ablation LABEL=RUN[,RUN…] …] [--results benchmarks/RESULTS.md]
Prints a line per feature set and protocol point, then `vae_nsc_minus_best_baseline=` and `paired_ci_low=` last.
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

from cellvae.cli.common import parse_channel_order
from cellvae.core.config import defaults
from cellvae.imaging.images import compose_arrays, read_image
from cellvae.imaging.orientations import ORIENTATIONS, orientation_mean
from cellvae.profiling import cell_features, moa, profile_tables
from cellvae.profiling.moa_paired import compound_intervals, paired_difference, seed_average, treatment_scores
from cellvae.profiling.response_baselines import THUMBNAIL_SIDE, thumbnails, untrained_copy
from cellvae.study.margins import replace_section

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "bbbc021" / "images"
MOA_MANIFEST = SHARED / "single_cells_moa" / "manifest.csv"
DMSO_PLATES = sorted(SHARED.glob("single_cells_by_plate/*/DMSO"))
SECTION = "## MoA on real cells of all 12 mechanisms"
PCA_SMALL = 16
NORMALIZATIONS = ("plate-dmso", "standardize")  # the baselines' grid, with ORIENTATIONS
BOOTSTRAP = 2000
INTRO = """Cells: the 1,945 shared crops of all 12 MoAs (103 treatments of 38 compounds, 54 plates; median 10 cells per
treatment); chance NSC ≈ 0.06. Protocol frozen on 2026-12-08 before any run below was scored (config
`response.analysis`): per plate against DMSO (batch fallback, min_controls 5, the setting that best reproduces
Ljosa's published CellProfiler means and involves no model here), at most 50 cells of a treatment in the
normalization statistics (reference_cap), mean of cells into wells into treatments, cosine 1-NN; each cell's mu
averaged over its 8 flips/rotations. The VAE is scored there only (and, as the second figure, with features
standardized over all cells); every baseline on the grid normalization (plate-dmso, standardize) × orientations
(1, 8), reported at its best point by NSC. Seeds are averaged per treatment; intervals (95%) resample the 38
compounds, not the 103 treatments; the margin over the best baseline is a paired difference on the same compounds.
Command: `python benchmarks/moa_cells.py --runs RUN-s1 RUN-s2 RUN-s3 --cellprofiler TABLE --ablation … --results
benchmarks/RESULTS.md`; runs trained with `train_command` (five shared DMSO plates + the MoA manifest, no labels;
z = 75, 64 px, 20 epochs).
"""


def train_command(out: Path, seed: int, *settings: str) -> list[str]:
    images = [arg for folder in DMSO_PLATES for arg in ("--images", str(folder))]
    return [
        *(sys.executable, "-m", "cellvae", "train", *images, "--images", str(MOA_MANIFEST)),
        *("--latent-dim", "75", "--size", "64", "--epochs", "20", "--seed", str(seed), "--out", str(out), *settings),
    ]


def read_cells() -> tuple[pd.DataFrame, list]:
    """The MoA manifest with plate, well, compound, concentration, moa, batch and the raw crops (DAPI, Tub, Actin)."""
    table = pd.read_csv(MOA_MANIFEST)
    table["path"] = [str(MOA_MANIFEST.parents[2] / file) for file in table["file"]]
    table = profile_tables.annotate_cells(table.rename(columns=profile_tables.ALIASES), MOA_MANIFEST)
    return table, [np.load(path) for path in table["path"]]


def composed_cells(run: Path, table: pd.DataFrame) -> np.ndarray:
    """The MoA cells composed as the run composed its inputs (preprocessing.json)."""
    preprocessing = json.loads((run / "preprocessing.json").read_text())
    raw = [read_image(path, parse_channel_order(preprocessing["channel_order"])) for path in table["path"]]
    return compose_arrays(
        raw, preprocessing["size"], preprocessing["percentiles"], preprocessing["scale"], preprocessing["ranges_rgb"]
    )[0]


def run_mu(run: Path, table: pd.DataFrame, orientations: int) -> np.ndarray:
    """mu of the run's model for the MoA cells, averaged over `orientations` views."""
    from cellvae.model.vae import load_vae
    from cellvae.profiling.response import encode_images

    return encode_images(load_vae(run / "model.keras"), composed_cells(run, table), orientations=orientations)


def learned_baselines(run: Path, table: pd.DataFrame) -> dict:
    """{orientations: {name: cells × features}}: an untrained encoder of the run's architecture, and pixel PCA-16
    and PCA-k fitted on the run's training cells."""
    from cellvae.model.vae import load_vae
    from cellvae.profiling.response import encode_images

    cells = composed_cells(run, table)
    vae = load_vae(run / "model.keras")
    untrained = untrained_copy(vae, 1)
    found = {
        o: {f"untrained encoder z={vae.latent_dim}": encode_images(untrained, cells, orientations=o)}
        for o in ORIENTATIONS
    }
    training = np.load(run / "data" / "train.npy", mmap_mode="r").reshape(-1, cells[0].size) / 255.0
    for k in (PCA_SMALL, vae.latent_dim):
        pca = PCA(k, random_state=0).fit(training)
        for o in ORIENTATIONS:
            describe = lambda images: pca.transform(images.reshape(len(images), -1) / 255.0)  # noqa: E731
            found[o][f"pixel PCA-{k}"] = in_chunks(describe, cells, o)
    return found


def in_chunks(describe, images: np.ndarray, orientations: int, chunk: int = 256) -> np.ndarray:
    """orientation_mean of describe, chunk by chunk (8 views of every cell at once would not fit in memory)."""
    parts = [
        orientation_mean(describe, images[start : start + chunk], orientations)
        for start in range(0, len(images), chunk)
    ]
    return np.concatenate(parts)


def scored(table: pd.DataFrame, values, settings: dict) -> pd.DataFrame:
    """Per-treatment hits of one feature matrix (a frame, or cells × features) under settings."""
    frame = values if isinstance(values, pd.DataFrame) else pd.DataFrame(values).add_prefix("f")
    frame = frame.reset_index(drop=True)
    rows = pd.concat([table[moa.WELL_KEYS].reset_index(drop=True), frame], axis=1)
    keep = list(moa.clean_features(rows[list(frame.columns)])[0].columns)
    return treatment_scores(moa.evaluate_rows(rows, keep, {**settings, "bootstrap": 1}, cells=True))


def cellprofiler_features(path: Path, table: pd.DataFrame) -> pd.DataFrame:
    """CellProfiler's measurements of each MoA cell (benchmarks/cellprofiler_moa_features.py), in the table's order;
    a crop without a cell found takes each feature's median."""
    measured = pd.read_csv(path) if path.suffix != ".parquet" else pd.read_parquet(path)
    measured = measured.set_index("file").loc[table["file"]]
    numeric = measured.select_dtypes("number")
    features = numeric[[c for c in numeric.columns if c.startswith(("Cells_", "Nuclei_", "Cytoplasm_"))]]
    # a crop where CellProfiler found no cell (29 of 1,945) takes each feature's median: the same cells for every set
    return features.fillna(features.median())


def baseline_grid(args, table: pd.DataFrame, crops: list, settings: dict) -> dict:
    """name -> {(normalize, orientations): treatment scores} of every baseline."""
    free = {  # the same under every flip/rotation
        "window statistics": pd.DataFrame([cell_features.window_statistics(c) for c in crops]),
        "classic (scikit-image, centre cell)": pd.DataFrame([cell_features.classic_measurements(c) for c in crops]),
    }
    if args.cellprofiler:
        free["CellProfiler (centre cell)"] = cellprofiler_features(args.cellprofiler, table)
    by_orientation = learned_baselines(args.runs[0], table)
    raw = np.asarray(crops, np.float64)
    for o in ORIENTATIONS:
        by_orientation[o][f"thumbnail {THUMBNAIL_SIDE}x{THUMBNAIL_SIDE}"] = in_chunks(thumbnails, raw, o)
    grid = {}
    for normalize in NORMALIZATIONS:
        point = {**settings, "normalize": normalize}
        for name, values in free.items():
            grid.setdefault(name, {})[(normalize, 1)] = scored(table, values, point)
        for o in ORIENTATIONS:
            for name, values in by_orientation[o].items():
                grid.setdefault(name, {})[(normalize, o)] = scored(table, values, point)
    return grid


def vae_scores(runs: list, table: pd.DataFrame, settings: dict) -> dict:
    """normalize -> seed-averaged treatment scores of the runs at the frozen orientations."""
    mus = [run_mu(run, table, settings["orientations"]) for run in runs]
    return {n: seed_average([scored(table, mu, {**settings, "normalize": n}) for mu in mus]) for n in NORMALIZATIONS}


def cell(entry: dict) -> str:
    return "–" if entry["value"] is None else f"{entry['value']:.2f} [{entry['ci'][0]:.2f}, {entry['ci'][1]:.2f}]"


def row(label: str, point: str, scores: pd.DataFrame) -> str:
    intervals = compound_intervals(scores, BOOTSTRAP, 0)
    line = f"| {label} | {point} | " + " | ".join(cell(intervals[m]) for m in ("nsc", "nscb", "map")) + " |"
    print(line, flush=True)
    return line


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", type=Path, required=True, help="the default's run folders, one a seed")
    parser.add_argument("--train", action="store_true", help="train (or resume) the runs first; --runs end in -s<seed>")
    parser.add_argument("--cellprofiler", type=Path, help="CellProfiler's per-cell table of the MoA crops")
    parser.add_argument("--results", type=Path, help="markdown file whose MoA section is (re)written")
    parser.add_argument(
        "--ablation",
        action="append",
        default=[],
        metavar="LABEL=RUN[,RUN…]",
        help="runs trained with other train: settings, scored at the frozen protocol as a row of their own",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if not MOA_MANIFEST.is_file():
        sys.exit(f"moa_cells: {MOA_MANIFEST} not found (../shared beside the checkout)")
    if args.train:
        for run in args.runs:
            subprocess.run(train_command(run, int(re.search(r"-s(\d+)$", run.name)[1])), check=True)
    settings = defaults()["response"]["analysis"]
    frozen = (settings["normalize"], settings["orientations"])
    table, crops = read_cells()
    print(f"{len(table)} cells, {table.groupby(['compound', 'concentration']).ngroups - 1} treatments", flush=True)
    header = ["| features | normalization, orientations | NSC | NSCB | mAP |", "|---|---|---|---|---|"]
    lines = header.copy()
    vae = vae_scores(args.runs, table, settings)
    label = f"VAE mu, default ({len(args.runs)} seeds averaged)"
    for normalize in NORMALIZATIONS:
        lines.append(row(label, f"{normalize}, {settings['orientations']}", vae[normalize]))
    best_name, best_point, best = None, None, None
    for name, points in baseline_grid(args, table, crops, settings).items():
        point, scores = max(points.items(), key=lambda item: np.nanmean(item[1]["nsc"]))
        lines.append(row(name, f"{point[0]}, {point[1]} (its best)", scores))
        if best is None or np.nanmean(scores["nsc"]) > np.nanmean(best["nsc"]):
            best_name, best_point, best = name, point, scores
    ablations = header.copy()
    for entry in args.ablation:
        ablation, runs = entry.split("=", 1)
        runs = [Path(run) for run in runs.split(",")]
        scores = seed_average([scored(table, run_mu(run, table, frozen[1]), settings) for run in runs])
        ablations.append(row(f"{ablation} ({len(runs)} seed(s))", f"{frozen[0]}, {frozen[1]}", scores))
    margin = paired_difference(vae[frozen[0]], best, BOOTSTRAP, 0)
    summary = (
        f"VAE (frozen protocol) minus the best baseline, {best_name} at {best_point[0]}, orientations {best_point[1]}: "
        + "; ".join(f"{m.upper()} {cell(margin[m]['difference'])}" for m in ("nsc", "nscb", "map"))
    )
    print(summary)
    if args.results:
        text = f"{SECTION}\n\n{INTRO}\n" + "\n".join(lines) + f"\n\n{summary}.\n"
        if args.ablation:
            text += (
                "\nTraining variants, each at the frozen protocol (seeds averaged):\n\n" + "\n".join(ablations) + "\n"
            )
        replace_section(args.results, SECTION, text)
    nsc = margin["nsc"]["difference"]
    print(f"vae_nsc_minus_best_baseline={nsc['value']:.3f}")
    print(f"paired_ci_low={nsc['ci'][0]:.3f}")


if __name__ == "__main__":
    main()
