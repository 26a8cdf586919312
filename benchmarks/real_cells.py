"""Real-cell benchmark: VAEs against baselines on plates they never saw (BBBC021 Week4 crops in ../shared).

Data: ../shared/bbbc021/images/single_cells_by_plate/manifest.csv (68×68×3 uint16 windows: DAPI, Tubulin,
Actin), composed at --size px exactly as `cellvae train` does (RGB = Tubulin, Actin, DAPI; intensity ranges
from the training cells). Fixed fold (the default; `--train-plates` changes it): models and baselines are fitted
on the DMSO cells of the three DMSO-only plates; everything is measured on the two plates that hold
cycloheximide (Week4_27801, Week4_27821), of which no cell was seen in training.

1. Reconstruction of the held-out plates' DMSO cells: each model (z = --latent-dims; `thesis` = the thesis
   settings, `default` = the config's train: defaults; --seeds) against PCA-k fitted on the training cells as the
   model sees them (8 flips/rotations where it trains on them): the VAE/PCA-k MSE ratio with a 95% paired bootstrap
   interval over fields, over the window and inside the centre cell, as --folds lopo does; the zero / mean / median
   images beside them.
2. Response on the held-out plates: features side by side — VAE mu, PCA-k of the pixels, an untrained encoder
   of the same architecture, classic per-cell features (scikit-image regionprops on an Otsu mask) —
   (a) DMSO-vs-cycloheximide balanced accuracy of a shrinkage LDA trained on one plate, tested on the other;
   (b) per plate, each concentration's cross-fitted Mahalanobis distance from DMSO (in DMSO standard deviations,
   cellvae.profiling.separation.mahalanobis_distance; it does not fall as features are added), whether it grows with
   concentration, and beside it the plate's within-well null: the same distance between the DMSO well's fields.
   Each figure is the mean over the seeds' models with a 95% interval from a delete-one-field jackknife
   (cellvae.study.plate_response.response_scores).
Writes reconstruction.csv and response.csv under --out and the section "## Fixed fold: ..." of --results.
Trained models are kept under --out and reused by a rerun (delete the folder to retrain).
Ablations (--models no-augment thesis-architecture constant-lr thesis-sigma): the default with one ingredient
taken away, and the thesis with only the sigma-VAE loss.
Usage: python benchmarks/real_cells.py [--epochs 30] [--seeds 1 2 3] [--latent-dims 16 75] [--models thesis default]
Last line: vae_over_pca_mse=<the default z = 75 model's held-out MSE (mean over seeds) / PCA-75's>

--folds lopo (cellvae.study.margins): leave one plate out over the five plates' DMSO cells: per fold, models (--models,
default `default`; --seeds, default 1 2) train on the other four plates' DMSO cells, and PCA is fitted on the same
cells in the augmentation the VAE sees (all 8 flips/rotations of each where the model's train.augment is on) — once,
with enough components for every PCA-k. Per fold and pooled over all folds (each field measured by the fold that
held it out): the VAE/PCA-k MSE ratio (VAE: the seeds' mean error per cell) with a 95% paired bootstrap interval
over fields (plate + well + site; --bootstrap resamplings), over the whole window (mse) and inside the centre cell
(mse_cell: its mask segmented from the crop itself, cellvae.profiling.cell_features, composed onto the canvas like the
crop);
the PCA-equivalent k (PCA-k's held-out MSE equals the VAE's). A plate has only 3-4 fields, so a fold's interval is
coarse; the pooled one resamples all 19. Writes the section "## Leave one plate out" (whole windows at 64 px; other
settings add theirs to the heading, e.g. "## Leave one plate out, 128 px masked") of --results (default
benchmarks/RESULTS.md). Settings are chosen on folds, never on the plate a figure is reported on: this mode chooses
none (models are MODELS over the config's defaults); the defaults were chosen by the ablation above on the fixed
fold, whose held-out plates Week4_27801 and Week4_27821 are two of the five folds here (flagged in the table); a new
choice must come from the training plates of each fold.
The product's setting (issue 18 goal 2): --folds lopo --size 128 --masked --latent-dims 150: the crops masked to
their centre cell and cut to its bounding box, composed at the common scale (png.scale, png.scale_quantile) like
`cellvae png`, z = 150 against PCA-150 (--held-out PLATE: one fold, a run of the 128 px model for a CPU-only
machine). Goal 4 (one sigma per channel): --models default per-channel-sigma. Smoke:
--max-cells-per-plate 40 --epochs 1 --seeds 1 --results /tmp/R.md.
Last line (lopo): lopo_ratio_max_upper=<largest upper 95% bound over folds of the first model's, first z's
whole-window VAE/PCA-k MSE ratio>
"""

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from cellvae.core.config import defaults, vae_settings  # noqa: E402
from cellvae.core.files import write_csv  # noqa: E402
from cellvae.core.option_types import positive_int  # noqa: E402
from cellvae.data.metadata import CONTROL  # noqa: E402
from cellvae.evaluation.baselines import Baselines, fit_pca  # noqa: E402
from cellvae.evaluation.metrics import reconstruction_metrics  # noqa: E402
from cellvae.imaging.images import compose_arrays, read_image  # noqa: E402
from cellvae.imaging.orientations import dihedral_variants  # noqa: E402
from cellvae.imaging.png import resolve_scale  # noqa: E402
from cellvae.imaging.shards import write_shard  # noqa: E402
from cellvae.model.vae import build_vae, load_vae  # noqa: E402
from cellvae.profiling.response import encode_images  # noqa: E402
from cellvae.study.ablations import MODELS, model_settings, train_model  # noqa: E402
from cellvae.study.margins import (  # noqa: E402
    centre_cell,
    centre_cell_masks,
    latent_comparison,
    latent_table,
    markdown_table,
    masked_crop,
    paired_comparison,
    pca_errors,
    pca_measures,
    replace_section,
    versus_pca,
)
from cellvae.study.plate_response import classic_features, field_names, response_scores, response_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT.parent / "shared" / "bbbc021" / "images" / "single_cells_by_plate" / "manifest.csv"
TRAIN_PLATES = ["Week4_27481", "Week4_27521", "Week4_27542"]
TUNED_ON = {"Week4_27801", "Week4_27821"}  # the fixed fold's held-out plates, on which the defaults were chosen


def load_crops(manifest_csv: Path, max_per_well: int | None = None) -> tuple[pd.DataFrame, list]:
    """The manifest (with absolute paths; a seeded sample of at most max_per_well cells of each well) and the raw
    crops in RGB order (Tubulin, Actin, DAPI)."""
    table = pd.read_csv(manifest_csv)
    if max_per_well:
        sample = table.sample(frac=1.0, random_state=0).groupby(["plate", "well"]).head(max_per_well)
        table = sample.sort_index().reset_index(drop=True)
    root = manifest_csv.parents[2]
    table["path"] = [str(root / file) for file in table["file"]]
    return table, [read_image(path, ("dapi", "tubulin", "actin")) for path in table["path"]]


PCA_MEMORY_BYTES = 16 << 30  # the augmented training cells of a fold in one PCA (IncrementalPCA above)


def lopo_cells(manifest: Path, max_per_plate: int | None, held_out: list | None) -> tuple[pd.DataFrame, list]:
    """The five plates' DMSO rows (a seeded sample of at most max_per_plate each) and their raw windows (RGB);
    held_out plates that the manifest lacks are refused before any window is read."""
    table = pd.read_csv(manifest)
    table = table[table["compound"] == CONTROL]
    unknown = sorted(set(held_out or []) - set(table["plate"]))
    if unknown:
        sys.exit(f"real_cells: --held-out {' '.join(unknown)}: no such plate in {manifest}")
    if max_per_plate:
        table = table.sample(frac=1.0, random_state=0).groupby("plate").head(max_per_plate).sort_index()
    table = table.reset_index(drop=True)
    return table, [read_image(manifest.parents[2] / file, ("dapi", "tubulin", "actin")) for file in table["file"]]


def lopo_heading(args) -> str:
    """The RESULTS.md heading of a leave-one-plate-out setting (each setting its own section)."""
    if args.size == 64 and not args.masked:
        return "## Leave one plate out"
    return f"## Leave one plate out, {args.size} px{' masked' if args.masked else ''}"


def lopo_table(rows: pd.DataFrame, args, n_cells: int) -> str:
    """The markdown section of the leave-one-plate-out results."""
    setting = f"{args.size} px, " + ("masked centre cells at the common scale" if args.masked else "whole windows")
    lines = [
        lopo_heading(args),
        "",
        f"`benchmarks/real_cells.py --folds lopo` ({setting}; {n_cells} DMSO cells of five plates; "
        f"{args.epochs} epochs, seeds {' '.join(map(str, args.seeds))}). Each fold trains on four plates and is "
        "measured on the fifth; PCA is fitted on the same cells, in their 8 flips/rotations where the model trains on "
        "them. Ratio: VAE / PCA-k "
        "MSE (k = z) with a 95% paired bootstrap interval over fields; k equiv.: the k at which PCA-k matches the "
        "VAE. \\* plates on which the default settings were chosen (the fixed fold's held-out plates).",
        "",
        *markdown_table(rows, flagged=TUNED_ON),
        "",
        "The trivial baseline on the same cells, the mean training image (PCA-0), mse / mse_cell: "
        + "; ".join(
            f"{row['plate']} {row['mean_image_mse']:.5f} / {row['mean_image_mse_cell']:.5f}"
            for row in rows.drop_duplicates("plate").to_dict("records")
            if row["plate"] != "all"
        )
        + ".",
        "",
        *latent_table(rows, defaults()["analysis"]["iwae_samples"]),
    ]
    return "\n".join(lines) + "\n"


def lopo_crops(args, log) -> tuple[pd.DataFrame, list, list, float | None]:
    """(rows, raw windows or --masked crops, their centre cells' masks, the common scale or None) of lopo_cells."""
    png = defaults()["png"]
    table, raw = lopo_cells(args.manifest, args.max_cells_per_plate, args.held_out)
    segmented = [centre_cell(window) for window in raw]
    if not args.masked:
        return table, raw, segmented, None  # whole windows fill the canvas, as in the fixed fold
    # the product's crops; one scale from all crops' sizes (no label), larger ones rejected (QC)
    raw, segmented = map(list, zip(*[masked_crop(window, cell) for window, cell in zip(raw, segmented)]))
    scale = resolve_scale(png["scale"], [max(crop.shape[:2]) for crop in raw], args.size, png["scale_quantile"])
    fits = np.array([round(max(crop.shape[:2]) * (scale or 1.0)) <= args.size for crop in raw])
    log(f"masked crops at scale {scale:.3g}: {(~fits).sum()} larger than the canvas rejected")
    keep = [crop for crop, fit in zip(raw, fits) if fit], [cell for cell, fit in zip(segmented, fits) if fit]
    return table[fits].reset_index(drop=True), *keep, scale


def pca_curve(train_cells: np.ndarray, test_cells: np.ndarray, masks: np.ndarray, args) -> dict:
    """k -> PCA-k's errors on the test cells (cellvae.study.margins.pca_errors; k 0: the mean), PCA fitted once on the
    training cells with enough components for every k (--pca-max-k, twice the largest z)."""
    pca = fit_pca(train_cells, max(args.pca_max_k, 2 * max(args.latent_dims)), PCA_MEMORY_BYTES)
    ks = sorted({0, *np.geomspace(1, len(pca.components_), 24).round().astype(int), *args.latent_dims})
    return pca_errors(pca.mean_, pca.components_, test_cells, masks, ks)


def trained_models(name: str, z: int, args, shard: Path, folder: Path, log) -> list:
    """Each seed's model of name at z, trained on shard once (kept under folder, reused by a rerun)."""
    return [
        load_vae(train_model(name, z, seed, args.epochs, shard, folder, log) / "model.keras") for seed in args.seeds
    ]


def leave_one_plate_out(args, log) -> int:
    """--folds lopo (see the module docstring): per held-out plate and pooled; writes lopo.csv and the section."""
    png = defaults()["png"]
    table, raw, segmented, scale = lopo_crops(args, log)
    fields = (table["plate"] + "/" + table["well"] + "/s" + table["site"].astype(str)).to_numpy()
    tag = f"lopo-{args.size}px{'-masked' if args.masked else ''}"
    tag += f"-max{args.max_cells_per_plate}" if args.max_cells_per_plate else ""
    rows, pooled, samples = [], {}, defaults()["analysis"]["iwae_samples"]
    for held in sorted(set(args.held_out or table["plate"])):
        test = (table["plate"] == held).to_numpy()
        training = [crop for crop, held_out in zip(raw, test) if not held_out]
        train_cells, ranges = compose_arrays(training, args.size, png["percentiles"], scale)
        test_cells, _ = compose_arrays([r for r, t in zip(raw, test) if t], args.size, None, scale, ranges)
        masks = centre_cell_masks([c for c, t in zip(segmented, test) if t], args.size, scale)
        pixels = masks.sum(axis=(1, 2)) * 3.0  # per cell, the values inside its centre cell
        fold = args.out / tag / held
        write_shard(fold / "train.npy", train_cells)
        log(f"fold {held}: {len(train_cells)} training cells, {test.sum()} held out")
        curves = {}  # augment -> (k -> PCA-k's errors): PCA fitted on the cells as the model sees them
        for name in args.models:
            augment = model_settings(name)["augment"]
            if augment not in curves:
                curves[augment] = pca_curve(
                    dihedral_variants(train_cells) if augment else train_cells, test_cells, masks, args
                )
            curve = curves[augment]
            for z in args.latent_dims:
                vaes = trained_models(name, z, args, fold / "train.npy", fold, log)
                compared, measured = versus_pca(vaes, curve[z], test_cells, masks, fields[test], pixels, args.bootstrap)
                pooled.setdefault((name, z), []).append(measured)
                latent = latent_comparison(vaes[0], train_cells, test_cells, fields[test], samples, args.bootstrap)
                rows.append(
                    {"model": name, "latent_dim": z, "plate": held, **compared, "pca_augmented": augment}
                    | pca_measures(curve, measured)
                    | latent
                )
                log(
                    f"{held} {name}-z{z}: ratio {rows[-1]['ratio']:.3f} [{rows[-1]['ratio_low']:.3f}, "
                    f"{rows[-1]['ratio_high']:.3f}], mse_cell ratio {rows[-1]['ratio_cell']:.3f}"
                )
    for (name, z), parts in [(key, parts) for key, parts in pooled.items() if len(parts) > 1]:
        measured = [np.concatenate(values) for values in zip(*parts)]
        rows.append({"model": name, "latent_dim": z, "plate": "all", **paired_comparison(*measured, args.bootstrap)})
    results = pd.DataFrame(rows)
    write_csv(results, args.out / tag / "lopo.csv")
    replace_section(args.results, lopo_heading(args), lopo_table(results, args, len(table)))
    pd.set_option("display.width", 250)
    print(results.round(5).to_string(index=False))
    first = results[(results["model"] == args.models[0]) & (results["latent_dim"] == args.latent_dims[0])]
    print(f"lopo_ratio_max_upper={first.loc[first['plate'] != 'all', 'ratio_high'].max():.4f}")
    return 0


def parse_args(argv=None) -> argparse.Namespace:
    """The options, with the defaults of the mode chosen (--folds)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, default=MANIFEST)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "real_cells")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seeds", type=int, nargs="+", help="default: 1 2 3 (fixed), 1 2 (lopo)")
    parser.add_argument("--latent-dims", type=int, nargs="+", help="default: 16 75 (fixed), 75 (lopo)")
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), help="default: thesis default (fixed), default")
    parser.add_argument("--train-plates", nargs="+", default=TRAIN_PLATES)
    parser.add_argument("--folds", choices=["fixed", "lopo"], default="fixed")
    parser.add_argument("--masked", action="store_true", help="lopo: crops masked to the centre cell, common scale")
    parser.add_argument("--max-cells-per-plate", type=positive_int, help="lopo: a seeded sample of each plate's cells")
    parser.add_argument("--max-cells-per-well", type=positive_int, help="fixed: a seeded sample of each well's cells")
    parser.add_argument("--held-out", nargs="+", help="lopo: only the folds that hold out these plates (default: all)")
    parser.add_argument("--bootstrap", type=positive_int, default=2000, help="lopo: resamplings of the fields")
    parser.add_argument("--pca-max-k", type=positive_int, default=256, help="lopo: PCA components (>= 2 z)")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    args = parser.parse_args(argv)
    lopo = args.folds == "lopo"
    args.seeds = args.seeds or ([1, 2] if lopo else [1, 2, 3])
    args.latent_dims = args.latent_dims or ([75] if lopo else [16, 75])
    args.models = args.models or (["default"] if lopo else ["thesis", "default"])
    for option in ("masked", "held_out"):
        if getattr(args, option) and not lopo:
            parser.error(f"--{option.replace('_', '-')} is a --folds lopo option")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if not args.manifest.is_file():
        print(f"skipped: {args.manifest} not found (the real crops live in ../shared beside the checkout)")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)

    def log(message):
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    return leave_one_plate_out(args, log) if args.folds == "lopo" else fixed_fold(args, log)


FIXED_HEADING = "## Fixed fold: reconstruction and response on two never-seen plates"


def fixed_fold(args, log) -> int:
    """The fixed fold (see the module docstring): reconstruction.csv, response.csv and the section FIXED_HEADING."""
    table, raw = load_crops(args.manifest, args.max_cells_per_well)
    dmso = (table["compound"] == CONTROL).to_numpy()
    in_train = table["plate"].isin(args.train_plates).to_numpy()
    test_plates = sorted(set(table["plate"]) - set(args.train_plates))
    response_plates = sorted(set(table.loc[~dmso, "plate"]) - set(args.train_plates))
    percentiles = defaults()["png"]["percentiles"]
    train_cells, ranges = compose_arrays([c for c, keep in zip(raw, dmso & in_train) if keep], args.size, percentiles)
    test_cells, _ = compose_arrays(raw, args.size, percentiles, ranges=ranges)
    shard = args.out / f"train-{args.size}px.npy"
    write_shard(shard, train_cells)
    held_out = ~in_train & dmso
    masks = centre_cell_masks([centre_cell(w) for w, keep in zip(raw, held_out) if keep], args.size)
    pixels, fields = masks.sum(axis=(1, 2)) * 3.0, field_names(table)[held_out]
    log(
        f"{len(train_cells)} training cells ({', '.join(args.train_plates)}); {held_out.sum()} held-out DMSO "
        f"cells ({', '.join(test_plates)}); response plates {', '.join(response_plates)}"
    )
    response = table["plate"].isin(response_plates).to_numpy()
    feature_sets = {"classic": [np.array([classic_features(cell) for cell, keep in zip(raw, response) if keep])]}
    rows, trivial, curves = [], [], {}
    for k in args.latent_dims:
        baselines = Baselines.fit(train_cells, k)
        trivial = trivial or baseline_rows(baselines, test_cells[held_out])
        feature_sets[f"pca-{k}"] = [baselines.pca_codes(test_cells[response])]
        for name in args.models:
            augment = model_settings(name)["augment"]
            if augment not in curves:
                fitted_on = dihedral_variants(train_cells) if augment else train_cells
                curves[augment] = pca_curve(fitted_on, test_cells[held_out], masks, args)
            vaes = trained_models(name, k, args, shard, args.out, log)
            compared, measured = versus_pca(
                vaes, curves[augment][k], test_cells[held_out], masks, fields, pixels, args.bootstrap
            )
            plates = " + ".join(test_plates)
            rows.append(
                {"model": name, "latent_dim": k, "plate": plates, **compared, "pca_augmented": augment}
                | pca_measures(curves[augment], measured)
            )
            for vae in vaes:
                for label, values in model_features(vae, name, test_cells[response]).items():
                    feature_sets.setdefault(label, []).append(values)
    cells = table[response].reset_index(drop=True)
    responses = []
    for label, sets in feature_sets.items():
        valid = ~np.isnan(np.stack(sets)).any(axis=(0, 2))
        scores = response_scores([v[valid] for v in sets], cells[valid].reset_index(drop=True), response_plates)
        responses.append({"features": label, "sets": len(sets), **scores})
        log(f"response of {label}: lda {scores['lda_accuracy']:.3f}")
    reconstruction, responses = pd.DataFrame(rows), pd.DataFrame(responses)
    write_csv(pd.concat([pd.DataFrame(trivial), reconstruction]), args.out / "reconstruction.csv")
    write_csv(responses, args.out / "response.csv")
    section = fixed_fold_section(reconstruction, trivial, responses, args, response_plates, int(held_out.sum()))
    replace_section(args.results, FIXED_HEADING, section)
    print(section)
    if "default" in args.models and 75 in args.latent_dims:
        chosen = reconstruction[(reconstruction["model"] == "default") & (reconstruction["latent_dim"] == 75)]
        print(f"vae_over_pca_mse={chosen['ratio'].iloc[0]:.4f}")
    return 0


def fixed_fold_section(reconstruction, trivial: list, responses, args, plates: list, n_held_out: int) -> str:
    """The markdown section FIXED_HEADING: reconstruction against PCA with paired intervals and the trivial
    baselines, then the response table."""
    constant = ", ".join(f"{row['method']} image {row['mse']:.5f}" for row in trivial)
    lines = [
        FIXED_HEADING,
        "",
        f"`benchmarks/real_cells.py` ({args.size} px whole windows; models and PCA fitted on the DMSO cells of "
        f"{', '.join(args.train_plates)}; {args.epochs} epochs, seeds {' '.join(map(str, args.seeds))}).",
        "",
        f"Reconstruction of the {n_held_out} DMSO cells of {' and '.join(plates)}: VAE (the seeds' mean error per "
        "cell) / PCA-k MSE, k = z, PCA fitted on the cells as the model sees them (8 flips/rotations where it "
        "trains on them), with a 95% paired bootstrap interval over fields. Trivial baselines, MSE over the "
        f"window: {constant}.",
        "",
        *markdown_table(reconstruction),
        "",
        *response_table(responses, plates),
    ]
    return "\n".join(lines) + "\n"


def baseline_rows(baselines: Baselines, cells: np.ndarray) -> list:
    """Reconstruction rows of the zero / mean / median images (the trivial baselines; PCA is compared paired)."""
    return [
        {"method": name, "latent_dim": 0, **reconstruction_metrics(cells, reconstruct, masked=False)}
        for name, reconstruct in baselines.reconstructors().items()
        if name != "pca"
    ]


def model_features(vae, name: str, cells: np.ndarray) -> dict:
    """label -> per-cell features of the response cells: the trained model's mu and an untrained encoder's of the
    same settings."""
    settings, k = model_settings(name), vae.latent_dim
    untrained = build_vae(cells.shape[1], k, **vae_settings(settings))
    return {
        f"{name}-z{k} mu": encode_images(vae, cells),
        f"untrained-{settings['architecture']}-z{k}": encode_images(untrained, cells),
    }


if __name__ == "__main__":
    sys.exit(main())
