"""What a speed figure needs beside it: the CPU, its instruction set, and the machine's float32 peak.

* ``isa_line()``: CPU model, ``grep -c avx512f /proc/cpuinfo``, AVX2 present, and the oneDNN cap
  in force (``ONEDNN_MAX_CPU_ISA``; TensorFlow's convolutions follow it, NumPy's BLAS does not) and
  whether TensorFlow's oneDNN kernels are on (``TF_ENABLE_ONEDNN_OPTS``; ctslib turns them on);
* ``matmul_gflops()``: measured float32 GFLOP/s of a square matrix multiply in TensorFlow (oneDNN),
  the practical ceiling a training step is compared with;
* ``train_step_flops()``: floating-point operations of one training step per image, counted from
  the model's layers (convolutions and dense layers; forward x 3 for forward + backward).

Usage (prints the machine line and the matmul figure)::

    python benchmarks/hardware.py
    ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/hardware.py
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # as `import ctslib` does: oneDNN on every x86 CPU

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ctslib.common.machine import cpu_info, machine_line  # noqa: E402


def cpu_flags() -> set[str]:
    """SIMD flags of the first CPU that decide TensorFlow's speed (empty off Linux)."""
    return {flag for flag, present in cpu_info()["isa"].items() if present}


def avx512f_count() -> int:
    """What ``grep -c avx512f /proc/cpuinfo`` prints: lines naming avx512f (0 on an AVX2-only machine)."""
    path = Path("/proc/cpuinfo")
    return sum("avx512f" in line for line in path.read_text().splitlines()) if path.exists() else 0


def isa_in_force() -> str:
    """The instruction set TensorFlow's oneDNN kernels may use here: the cap if one is set, else the CPU's best."""
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA")
    flags = cpu_flags()
    native = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "below AVX2"
    return f"{cap} (ONEDNN_MAX_CPU_ISA cap; CPU has {native})" if cap else native


def isa_line() -> str:
    """One line to print beside every speed figure (the CPU part is the one run_all records per stage)."""
    return (f"CPU: {machine_line(cpu_info())}; grep -c avx512f /proc/cpuinfo = {avx512f_count()}; "
            f"oneDNN ISA in force: {isa_in_force()}; "
            f"TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS', '(unset)')}")


def matmul_gflops(n: int = 2048, repeats: int = 10) -> float:
    """Best-of-``repeats`` float32 GFLOP/s of an n x n TensorFlow matmul (2 n^3 operations each)."""
    import tensorflow as tf

    a = tf.random.stateless_uniform((n, n), seed=(1, 2))
    b = tf.random.stateless_uniform((n, n), seed=(3, 4))
    matmul = tf.function(lambda x, y: tf.matmul(x, y))
    return 2.0 * n**3 / best_seconds(lambda: matmul(a, b).numpy(), repeats) / 1e9


def best_seconds(call, repeats: int) -> float:
    """Shortest wall time of ``repeats`` calls of ``call()``, after one untimed call (trace, warm-up)."""
    call()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def forward_flops(model) -> int:
    """Multiply-adds x 2 of the model's Conv2D and Dense layers for one image (others are left out)."""
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            kh, kw = layer.kernel_size
            c_in = layer.input.shape[-1]
            total += 2 * h * w * kh * kw * c_in * c_out
        elif isinstance(layer, keras.layers.Dense):
            total += 2 * layer.input.shape[-1] * layer.units
    return int(total)


def train_step_flops(model) -> int:
    """FLOPs of one training step per image: forward + backward (gradients of inputs and weights) = 3 x forward.

    Batch normalisation, pooling, activations, dropout and the optimiser update are memory-bound and
    not counted, so the GFLOP/s derived from this is a lower bound of the arithmetic actually done.
    """
    return 3 * forward_flops(model)


def main() -> int:
    print(isa_line())
    for n in (1024, 2048):
        print(f"float32 matmul {n}x{n}: {matmul_gflops(n):.1f} GFLOP/s ({os.cpu_count()} threads)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
