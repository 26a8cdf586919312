"""Do VAE latent profiles separate real DMSO from cycloheximide ("Protein synthesis") cells?

The 1,614 real BBBC021 single-cell crops in ../shared/bbbc021/images/single_cells (plate Week4_27801;
68×68×3 uint16, DAPI, Tubulin, Actin) are preprocessed exactly as the PNG stage does (one channel_ranges
over all cells, compose_cell to size px, RGB = Tubulin, Actin, DAPI). A VAE is trained on DMSO cells only
(as the pipeline trains on DMSO), then every cell is encoded to mu and each class compared with
`cellvae.profiles.separation`; an untrained encoder of the same architecture is the baseline.
Usage: python benchmarks/real_crops_separation.py [--size 32] [--latent-dim 16] [--epochs 15]
Last line: cycloheximide_vs_dmso_accuracy=<balanced accuracy of the trained model>
"""
import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from cellvae.model import build_vae  # noqa: E402
from cellvae.png import channel_ranges, compose_cell  # noqa: E402
from cellvae.profiles import encode_images, separation  # noqa: E402

SINGLE_CELLS = Path(__file__).resolve().parents[1].parent / "shared" / "bbbc021" / "images" / "single_cells"
RGB_FROM_NPY = [1, 2, 0]            # .npy channels DAPI, Tubulin, Actin → RGB Tubulin, Actin, DAPI


def real_crops(size: int) -> tuple[np.ndarray, np.ndarray]:
    """(DMSO, cycloheximide) uint8 cells, preprocessed like the PNG stage."""
    groups = [sorted((SINGLE_CELLS / name).glob("*.npy")) for name in ("DMSO", "Protein_synthesis")]
    if not all(groups):
        sys.exit(f"real crops not found in {SINGLE_CELLS}")
    raw = [[np.load(path)[..., RGB_FROM_NPY] for path in paths] for paths in groups]
    ranges = channel_ranges(raw[0] + raw[1])
    return tuple(np.stack([compose_cell(cell, ranges, size) for cell in cells]) for cells in raw)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--latent-dim", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    dmso, treated = real_crops(args.size)
    print(f"{len(dmso)} DMSO and {len(treated)} cycloheximide cells at {args.size} px")
    keras.utils.set_random_seed(args.seed)
    vae = build_vae(args.size, args.latent_dim)
    untrained = separation(encode_images(vae, dmso), encode_images(vae, treated), seed=args.seed)
    print(f"untrained encoder: {untrained}")
    vae.compile(optimizer=keras.optimizers.Adam(5e-4), jit_compile=False)
    vae.fit(dmso.astype("float32") / 255.0, batch_size=32, epochs=args.epochs, verbose=2)
    trained = separation(encode_images(vae, dmso), encode_images(vae, treated), seed=args.seed)
    print(f"trained on DMSO, z={args.latent_dim}, {args.epochs} epochs: {trained}")
    print(f"cycloheximide_vs_dmso_accuracy={trained['accuracy']:.3f}")


if __name__ == "__main__":
    main()
