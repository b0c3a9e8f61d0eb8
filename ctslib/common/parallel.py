"""Fixed parallelism: ordered process pools for per-video work, and tf.data pipelines without the autotuner.

``ordered_map`` (stage 00 renders videos, stage 02 extracts them): results come back in the order
of the inputs whatever the number of processes, so a stage's outputs never depend on ``WORKERS``.
With one worker it is a plain loop in this process (what a student stepping through a notebook
gets; nothing is spawned). ``steady`` (the segmenter's and the severity models' input pipelines)
keeps a tf.data pipeline on the parallelism it was built with.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

import cv2

T = TypeVar("T")
R = TypeVar("R")


def _one_opencv_thread() -> None:
    cv2.setNumThreads(1)  # one process per core; OpenCV's own threads would only compete


def ordered_map(func: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """``func`` over ``items``, results in input order; a pool of ``workers`` processes when > 1.

    ``func`` and the items must pickle (a module-level function, plain data). The pool uses
    "spawn": fresh interpreters, because forking a process that already runs threads (OpenCV,
    TensorFlow, a Jupyter kernel, pytest plugins) can deadlock the children. An exception in a
    worker is raised here, at its item, after the items before it were yielded.
    """
    items = list(items)
    if workers <= 1 or len(items) <= 1:
        yield from map(func, items)
        return
    pool = ProcessPoolExecutor(max_workers=min(workers, len(items)), initializer=_one_opencv_thread,
                               mp_context=multiprocessing.get_context("spawn"))
    try:
        yield from pool.map(func, items, chunksize=1)
    finally:  # on an error (or a consumer that stops early) the items not yet started are dropped
        pool.shutdown(wait=True, cancel_futures=True)


def steady(dataset):
    """``dataset`` with tf.data's autotuner switched off: it runs with the parallelism it was built with.

    Measured on a 2-core CPU (``benchmarks/bench_train.py``): with the autotuner on, about half of
    the training epochs ran on one core (wall time equal to CPU time) and throughput swung between
    350 and 650 images/s from one epoch to the next; with it off, every epoch used both cores
    (590-660 images/s). Fixed, small parallelism keeps both cores on the model.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)
