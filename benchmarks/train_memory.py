"""Peak RSS of a training process as the data grows: 1 epoch on N cells vs 10 N cells.

Each size trains in a fresh subprocess (same model, batch, shuffle buffer and cache budget; the
budget holds the N cells, not the 10 N, as a real data set outgrows memory). Prints the peak RSS
of each and, on the last line, rss_ratio=<peak RSS at 10 N / peak RSS at N> (goal <= 1.2).
Usage: python benchmarks/train_memory.py [--cells N] [--size PX]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child(shard, size, cache_mb, shuffle_buffer, batch_size):
    """Train one epoch on the shard and print the peak RSS (MiB) as JSON."""
    from cellvae.model.train import train_on_shards, training_files

    with tempfile.TemporaryDirectory() as out:
        summary = train_on_shards(
            [shard],
            [],
            latent_dim=16,
            epochs=1,
            **training_files(out),
            log=lambda message: None,
            verbose=0,
            architecture="thesis",  # as measured (benchmarks/RESULTS.md)
            reconstruction_loss="mse",
            augment=False,
            lr_schedule="constant",
            learning_rate=5e-4,
            batch_size=batch_size,
            cache_mb=cache_mb,
            shuffle_buffer=shuffle_buffer,
            mixed_precision=False,
            xla=False,
        )
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {"cells": summary["n_train"], "peak_rss_mib": peak_mib, "images_per_second": summary["images_per_second"]}
        )
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, default=2000)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--shuffle-buffer", type=int, default=2000)
    parser.add_argument("--child", nargs=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    cell_bytes = args.size * args.size * 3
    cache_mb = max(1, int(2 * args.cells * cell_bytes / 2**20) + 1)  # fits N cells, not 10 N
    if args.child:
        child(args.child[0], args.size, cache_mb, args.shuffle_buffer, args.batch_size)
        return
    import numpy as np

    from cellvae.imaging.shards import write_shard

    rng = np.random.default_rng(0)
    results = []
    with tempfile.TemporaryDirectory() as directory:
        for n_cells in (args.cells, 10 * args.cells):
            shard = Path(directory) / f"cells{n_cells}.npy"
            cells = np.empty((n_cells, args.size, args.size, 3), np.uint8)
            for start in range(0, n_cells, 1000):
                block = cells[start : start + 1000]
                block[:] = rng.integers(0, 256, block.shape, dtype=np.uint8)
            write_shard(shard, cells)
            del cells
            env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
            run = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    str(shard),
                    "--cells",
                    str(args.cells),
                    "--size",
                    str(args.size),
                    "--batch-size",
                    str(args.batch_size),
                    "--shuffle-buffer",
                    str(args.shuffle_buffer),
                ],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            results.append(json.loads(run.stdout.strip().splitlines()[-1]))
            print(
                f"{n_cells} cells of {args.size} px (cache budget {cache_mb} MiB): peak RSS "
                f"{results[-1]['peak_rss_mib']:.0f} MiB, {results[-1]['images_per_second']:.0f} img/s",
                flush=True,
            )
    print(f"rss_ratio={results[1]['peak_rss_mib'] / results[0]['peak_rss_mib']:.3f}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
