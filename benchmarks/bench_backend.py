"""Keras 3 backends compared: plain ``model.fit`` of the published CNNs under TensorFlow or JAX.

The package trains on TensorFlow (the pinned backend). This benchmark asks whether another
Keras 3 backend runs the *same* architecture and maths faster on this CPU: it builds the model
with ``ctslib.severity.models`` (pure Keras), compiles Adam + categorical cross-entropy and times
``model.fit`` on seeded random crops, under whatever backend ``KERAS_BACKEND`` selects. Run it
once per backend; JAX is not in the pinned environment, so it needs a side venv::

    .venv/bin/python benchmarks/bench_backend.py                         # TensorFlow (pinned)
    python3 -m venv /tmp/jaxvenv && /tmp/jaxvenv/bin/pip install keras==3.15.1 numpy==2.4.6 "jax[cpu]"
    KERAS_BACKEND=jax /tmp/jaxvenv/bin/python benchmarks/bench_backend.py

Prints the machine line (CPU, ``grep -c avx512f /proc/cpuinfo``, ISA cap in force), the backend
and its version, images/s of steady epochs (the first, which compiles, is dropped; median and
best), the step's GFLOP/s from the model's FLOP count, and the float32 matmul GFLOP/s of the same
backend, so the share of peak compares like with like.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from hardware import best_seconds, isa_line, matmul_gflops, train_step_flops  # noqa: E402


def backend_matmul_gflops(n: int = 2048, repeats: int = 10) -> float:
    """Best-of-``repeats`` float32 GFLOP/s of an n x n matmul compiled by the active Keras backend."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        return matmul_gflops(n, repeats)
    if backend != "jax":
        raise SystemExit(f"backend {backend!r}: only tensorflow and jax are measured here")
    import jax

    a = jax.numpy.asarray(np.random.default_rng(1).random((n, n), dtype=np.float32))
    b = jax.numpy.asarray(np.random.default_rng(2).random((n, n), dtype=np.float32))
    matmul = jax.jit(lambda x, y: x @ y)
    return 2.0 * n**3 / best_seconds(lambda: matmul(a, b).block_until_ready(), repeats) / 1e9


def backend_version() -> str:
    import keras

    name = keras.backend.backend()
    module = __import__("jax" if name == "jax" else "tensorflow")
    return f"{name} {module.__version__} (keras {keras.__version__})"


def time_fit(plane: str, size: int, images: int, epochs: int, seed: int) -> list[float]:
    """Images per second of each steady epoch of plain ``fit`` (paper batch size, no augmentation)."""
    import keras

    from ctslib.severity.models import build_model
    from ctslib.severity.recipe import PAPER_RECIPE

    gen = np.random.default_rng(seed)
    x = gen.random((images, size, size, 1), dtype=np.float32)
    y = keras.utils.to_categorical(gen.integers(0, 4, images), 4)
    keras.utils.set_random_seed(seed)
    model = build_model(plane, size)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy", metrics=["accuracy"])
    seconds: list[float] = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.perf_counter() - self.start)

    model.fit(x, y, batch_size=PAPER_RECIPE[plane].batch_size, epochs=epochs, verbose=0, callbacks=[Clock()])
    return [images / s for s in seconds[1:]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--planes", nargs="+", default=["transverse", "longitudinal"])
    parser.add_argument("--size", type=int, default=128, help="crop side (pixels)")
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--epochs", type=int, default=4, help="the first (compile) is dropped")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from ctslib.severity.models import build_model

    print(isa_line())
    print(f"backend: {backend_version()}; KERAS_BACKEND={os.environ.get('KERAS_BACKEND', '(unset)')}")
    peak = backend_matmul_gflops()
    print(f"float32 matmul 2048x2048 on this backend: {peak:.1f} GFLOP/s ({os.cpu_count()} threads)")
    for plane in args.planes:
        rates = time_fit(plane, args.size, args.images, args.epochs, args.seed)
        flops = train_step_flops(build_model(plane, args.size))
        median, best = float(np.median(rates)), max(rates)
        gflops = median * flops / 1e9
        print(f"{plane}: plain fit {median:.1f} img/s (best {best:.1f}) = {gflops:.1f} GFLOP/s = "
              f"{100 * gflops / peak:.1f} % of matmul peak; {len(rates)} steady epoch{'s' if len(rates) != 1 else ''} "
              f"of {args.images} images")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
