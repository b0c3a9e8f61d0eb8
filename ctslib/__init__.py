"""ctslib: the thin, typed library behind the CTS ultrasound severity study notebooks.

One subpackage per stage of the study (docs/architecture.md); the study's decisions (NCS limits, split
policy, hyper-parameters) are read in the notebooks, the reusable code lives here.
"""

import os

__version__ = "0.1.0"

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
"""TensorFlow's oneDNN kernels on, on every x86 CPU (an explicit ``TF_ENABLE_ONEDNN_OPTS=0`` wins).

TensorFlow switches them on by itself only on some CPUs: on a 2-core Intel Xeon with AVX-512 it did, on
a 2-core AMD EPYC with AVX2 only it did not, and there the shipped segmenter predicted 37 instead of 74
images/s and the transverse CNN trained at 94 instead of 174 images/s (``benchmarks/README.md``). Set
here, before anything imports TensorFlow, so notebooks, Ray workers, tests and benchmarks alike get it.
"""

GRADES: tuple[str, ...] = ("normal", "mild", "moderate", "severe")
"""The four severity levels, in ordinal order (index = class id everywhere)."""

PLANES: tuple[str, ...] = ("transverse", "longitudinal")
SIDES: tuple[str, ...] = ("L", "R")
