"""One seeding function for every random step (Python, NumPy, TensorFlow/Keras)."""

from __future__ import annotations

import os
import random

import numpy as np


def set_determinism(seed: int, *, tensorflow: bool = True, op_determinism: bool = True) -> None:
    """Seed Python, NumPy and (optionally) TensorFlow/Keras, and ask TF for deterministic ops.

    Op determinism makes CPU training repeatable for the layers this study uses; on a GPU some
    kernels have no deterministic version and TensorFlow raises instead of silently varying.
    """
    os.environ["PYTHONHASHSEED"] = str(seed)  # inherited by subprocesses (e.g. data workers)
    random.seed(seed)
    np.random.seed(seed)
    if tensorflow:
        import tensorflow as tf

        tf.keras.utils.set_random_seed(seed)
        if op_determinism:
            tf.config.experimental.enable_op_determinism()


def rng(seed: int, *stream: int | str) -> np.random.Generator:
    """An independent NumPy generator for ``seed`` and a named sub-stream (e.g. a wrist id)."""
    words = [seed] + [int.from_bytes(str(s).encode(), "little") % (2**63) for s in stream]
    return np.random.default_rng(np.random.SeedSequence(words))
