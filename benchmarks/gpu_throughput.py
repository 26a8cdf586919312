"""Training throughput (images/s) of the default and the thesis VAE, for a GPU machine when one is lent.

Keras 3 on any backend (the device machines have JAX and PyTorch, no TensorFlow: run with KERAS_BACKEND=jax and
Keras installed from a wheel). Random uint8 cells in memory (the model scales them itself), so the figure is the
model's, not the input pipeline's; the first --warmup steps (compilation) are not timed.
Usage: KERAS_BACKEND=jax python benchmarks/gpu_throughput.py [--size 128] [--latent-dim 150] [--batch-size 512]
       [--steps 200] [--mixed-precision true]
Last line: images_per_second=<the default model's>
"""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the package, without installing it

import keras  # noqa: E402
import numpy as np  # noqa: E402

from cellvae.core.config import vae_settings  # noqa: E402
from cellvae.model.vae import build_vae  # noqa: E402

MODELS = {
    "default": dict(architecture="wide", reconstruction_loss="gaussian"),
    "thesis": dict(architecture="thesis", reconstruction_loss="mse"),
}


def throughput(name, size, latent_dim, batch_size, steps, warmup, mixed_precision) -> float:
    """Images per second of `steps` training steps on random cells, after `warmup` untimed ones."""
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed_precision else "float32")
    vae = build_vae(size, latent_dim, **vae_settings(MODELS[name]))
    keras.mixed_precision.set_global_policy("float32")
    vae.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=True)
    cells = np.random.default_rng(0).integers(0, 256, (batch_size * 8, size, size, 3), dtype=np.uint8)
    vae.fit(cells, batch_size=batch_size, steps_per_epoch=warmup, epochs=1, verbose=0)
    start = time.perf_counter()
    vae.fit(cells, batch_size=batch_size, steps_per_epoch=steps, epochs=1, verbose=0)
    return steps * batch_size / (time.perf_counter() - start)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--latent-dim", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--mixed-precision", choices=["true", "false"], default="true")
    args = parser.parse_args(argv)
    device = keras.backend.backend()
    if device == "jax":
        import jax

        device += f" on {jax.devices()[0].device_kind}"
    print(
        f"backend {device}, {args.size} px, z = {args.latent_dim}, batch {args.batch_size}, "
        f"mixed precision {args.mixed_precision}",
        flush=True,
    )
    rates = {}
    for name in ("thesis", "default"):
        rates[name] = throughput(
            name, args.size, args.latent_dim, args.batch_size, args.steps, args.warmup, args.mixed_precision == "true"
        )
        print(f"{name}: {rates[name]:,.0f} images/s", flush=True)
    print(f"images_per_second={rates['default']:.0f}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
