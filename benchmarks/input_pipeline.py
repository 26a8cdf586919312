"""Input pipeline speed: our shard pipeline (cellvae.imaging.shards.cell_dataset) vs
keras.utils.image_dataset_from_directory on the same PNGs, interleaved in one process.

1. Input only (no model): images per second delivered per full shuffled pass, best of --rounds.
2. Training: steps per second of the same VAE and batch fed by each input, best of --rounds (both: as timeit
   does: noise only slows a round; on the 2-core dev VM whole rounds run at one fixed lower rate, seen
   for either input alike: 1.95 steps/s at 64 px against 2.9-3.6 otherwise), medians printed beside.
The PNGs are those of a pipeline run (--pngs, e.g. results/png/<plate>/cells) or, by default,
synthetic blob cells written to a temporary folder. Prints train_steps_ratio=<ours / baseline> (best rounds),
then, last, input_ratio=<ours / baseline> (goal >= 5).
Usage: python benchmarks/input_pipeline.py [--pngs DIR] [--cells N] [--size PX] [--rounds R]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402

from cellvae.core.config import defaults, vae_settings  # noqa: E402
from cellvae.imaging.dataset import write_shards  # noqa: E402
from cellvae.imaging.shards import cell_dataset  # noqa: E402
from cellvae.model.vae import build_vae  # noqa: E402

TRAIN = defaults()["train"]  # the tf.data settings training uses by default


def blob_pngs(directory, n_cells, size, seed=0):
    """Synthetic cells: a few coloured ellipses per PNG on black."""
    rng = np.random.default_rng(seed)
    rows, columns = np.mgrid[:size, :size]
    for i in range(n_cells):
        image = np.zeros((size, size, 3), np.uint8)
        for _ in range(3):
            centre, radii = rng.uniform(0.3, 0.7, 2) * size, rng.uniform(0.1, 0.3, 2) * size
            inside = ((rows - centre[0]) / radii[0]) ** 2 + ((columns - centre[1]) / radii[1]) ** 2 < 1
            image[inside] = rng.integers(40, 256, 3)
        Image.fromarray(image).save(directory / f"cell{i:05d}.png")


def baseline_dataset(png_dir, size, batch_size, seed):
    """The stock Keras way: decode the PNGs every epoch, scale to [0, 1]."""
    images = keras.utils.image_dataset_from_directory(
        png_dir, labels=None, image_size=(size, size), batch_size=batch_size, shuffle=True, seed=seed, verbose=False
    )
    return images.map(lambda batch: batch / 255.0, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def images_per_second(dataset):
    start = time.perf_counter()
    count = sum(int(batch.shape[0]) for batch in dataset)
    return count / (time.perf_counter() - start)


def steps_per_second(vae, dataset, steps):
    vae.fit(dataset.repeat(), steps_per_epoch=steps, epochs=1, verbose=0)  # warm: build the step function
    start = time.perf_counter()
    vae.fit(dataset.repeat(), steps_per_epoch=steps, epochs=1, verbose=0)
    return steps / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pngs", help="folder of PNG cells (default: synthetic)")
    parser.add_argument("--cells", type=int, default=2000, help="synthetic cells (without --pngs)")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--train-steps", type=int, default=10)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        png_dir = Path(args.pngs) if args.pngs else Path(directory) / "pngs"
        if not args.pngs:
            png_dir.mkdir()
            blob_pngs(png_dir, args.cells, args.size)
        paths = sorted(png_dir.glob("*.png"))
        manifest = pd.DataFrame({"path": [str(p) for p in paths], "split": "train", "plate": "P"})
        start = time.perf_counter()
        shards = sorted(set(write_shards(manifest, Path(directory) / "shards")["shard"]))
        print(
            f"{len(paths)} PNGs of {args.size} px; shards written in {time.perf_counter() - start:.1f} s (once, "
            "by the dataset stage)",
            flush=True,
        )

        ours = cell_dataset(
            shards,
            args.batch_size,
            shuffle=True,
            seed=1,
            shuffle_buffer=TRAIN["shuffle_buffer"],
            cache_bytes=TRAIN["cache_mb"] << 20,
            parallel_reads=TRAIN["parallel_reads"],
        )
        baseline = baseline_dataset(png_dir, args.size, args.batch_size, seed=1)
        images_per_second(ours)  # fill the cache: steady state is epochs 2+
        rates = {"ours": [], "baseline": []}
        for _ in range(args.rounds):  # interleaved
            rates["ours"].append(images_per_second(ours))
            rates["baseline"].append(images_per_second(baseline))
        input_rates = {name: max(values) for name, values in rates.items()}
        input_medians = {name: statistics.median(values) for name, values in rates.items()}
        print(
            f"input only: ours {input_rates['ours']:.0f} img/s, image_dataset_from_directory "
            f"{input_rates['baseline']:.0f} img/s (best of {args.rounds}; medians {input_medians['ours']:.0f} "
            f"and {input_medians['baseline']:.0f})",
            flush=True,
        )

        keras.utils.set_random_seed(1)
        vae = build_vae(args.size, 150, **vae_settings())
        vae.compile(optimizer=keras.optimizers.Adam(5e-4), jit_compile=False)
        steps = {"ours": [], "baseline": []}
        for round_ in range(args.rounds):  # interleaved, alternating which goes first
            for name in ["ours", "baseline"] if round_ % 2 == 0 else ["baseline", "ours"]:
                dataset = ours if name == "ours" else baseline
                steps[name].append(steps_per_second(vae, dataset, args.train_steps))
        for name, values in steps.items():
            print(
                f"training z=150, batch {args.batch_size}, {name}: steps/s per round "
                + " ".join(f"{value:.2f}" for value in values),
                flush=True,
            )
        best = {name: max(values) for name, values in steps.items()}
        median = {name: statistics.median(values) for name, values in steps.items()}
        print(f"train_steps_ratio_median={median['ours'] / median['baseline']:.3f}")
    print(f"train_steps_ratio={best['ours'] / best['baseline']:.3f}")
    print(f"input_ratio={input_rates['ours'] / input_rates['baseline']:.2f}")


if __name__ == "__main__":
    main()
