"""Each training of a plane's model (one split, one seed) as an independent task: here, or on Ray.

Stage 04/05 trains one model per split (the paper's split, the grouped split, each CV fold
``cvK``) and, with several seeds, again per seed (``<split>~sK``). Those trainings share nothing
but their inputs, so they can run side by side. ``run_trainings`` runs a list of ``TrainingJob``
and yields their results **in job order**, whatever order they finish in:

* ``workers == 1`` and no ``RAY_ADDRESS``: one after the other in this process, exactly as
  before (Ray is not imported; TensorFlow uses every core for each training);
* ``workers > 1``: a local Ray head in this process (``ray.init(num_cpus=workers)``, no dashboard,
  stopped afterwards); each training is a Ray task in a worker process given ``cpus_per_task``
  cores, and its TensorFlow uses that many threads;
* ``RAY_ADDRESS`` set (e.g. a cluster started with ``ray start --head``): the tasks go to that
  cluster, which schedules as many side by side as its CPUs (and GPUs) allow. Its workers must
  import this ctslib and read the crop files at the same paths (one machine, or a shared disk).

On a GPU, ``gpus_per_task`` (e.g. 0.25: four trainings share one GPU) reserves a share of a GPU
per task and switches on TensorFlow's memory growth; with 0 (the default) the workers train on
their CPUs. Workers always run with TensorFlow's op determinism, as the notebooks do.

The results are the same up to float rounding, not bit for bit: TensorFlow's CPU kernels split
their sums across threads, so a training on 1 thread and the same training on 2 threads round
differently (measured: up to 0.01 in a loss after 2 epochs). With the same thread count they are
identical (``tests/test_tasks.py``). A worker's log lines are printed when its result comes back,
in job order, so the log reads as a serial run's.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ctslib.common.errors import StageError
from ctslib.common.handoff import PREDICTION_COLUMNS
from ctslib.common.io import write_csv
from ctslib.common.paths import RunPaths
from ctslib.severity.split import SPLIT_COLUMNS, check_split
from ctslib.severity.train import SplitResult, TrainSettings, save_model, train_split

RAY_ADDRESS_ENV = "RAY_ADDRESS"
"""Environment variable naming a running Ray cluster (Ray's own convention)."""


@dataclass(frozen=True)
class TrainingJob:
    """One training: the split it trains on, its seed, and the name its results carry."""

    split: str
    seed: int
    name: str


def replicate_name(split: str, k: int) -> str:
    """Split name of seed replicate ``k`` (0: the split itself; ``cv0~s1``: fold 0 trained with seed + 1)."""
    return split if k == 0 else f"{split}~s{k}"


def training_jobs(splits: Sequence[str], seed: int, seeds: int = 1) -> list[TrainingJob]:
    """Every split with ``seed``, then every split again with seed + 1, ... (the order results are written in)."""
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    return [TrainingJob(split, seed + k, replicate_name(split, k)) for k in range(seeds) for split in splits]


def train_job(frames: pd.DataFrame, split_table: pd.DataFrame, settings: TrainSettings, job: TrainingJob) -> SplitResult:
    """Train one job (``ctslib.severity.train.train_split``); its history, predictions and summary carry ``job.name``."""
    result = train_split(frames, split_table, job.split, settings, job.seed)
    if job.name != job.split:
        result.split = result.summary["split"] = job.name
        result.history["split"] = job.name
        result.predictions["split"] = job.name
    return result


# ----------------------------------------------------------------------------- worker side
@dataclass(frozen=True)
class KerasFile:
    """A trained model as the bytes of its ``.keras`` file: how it travels back from a worker.

    ``save(path)`` writes the file, so ``ctslib.severity.train.save_model`` takes it like a Keras model.
    """

    data: bytes

    @classmethod
    def of(cls, model: Any) -> KerasFile:
        with tempfile.TemporaryDirectory(prefix="ctslib_model_") as tmp:
            path = Path(tmp) / "model.keras"
            model.save(path)
            return cls(path.read_bytes())

    def save(self, path: str | Path) -> None:
        Path(path).write_bytes(self.data)


@dataclass(frozen=True)
class WorkerSetup:
    """How TensorFlow starts in a worker process: CPU threads, and whether it may use a GPU."""

    threads: int
    gpu: bool


_CONFIGURED: list[WorkerSetup] = []  # the setup this process's TensorFlow started with


def configure_tensorflow(setup: WorkerSetup) -> None:
    """Set TensorFlow's thread counts, GPU use (memory growth) and op determinism before it starts.

    Raises:
        RuntimeError: this process's TensorFlow already started with another setup.
    """
    if _CONFIGURED:
        if _CONFIGURED[0] != setup:
            raise RuntimeError(f"TensorFlow in this worker started with {_CONFIGURED[0]}, not {setup}")
        return
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if setup.gpu:
        for gpu in gpus:
            tf.config.experimental.set_memory_growth(gpu, True)
    elif gpus:
        tf.config.set_visible_devices([], "GPU")
    tf.config.threading.set_intra_op_parallelism_threads(setup.threads)
    tf.config.threading.set_inter_op_parallelism_threads(setup.threads)
    tf.config.experimental.enable_op_determinism()
    _CONFIGURED.append(setup)


def train_in_worker(frames: pd.DataFrame, split_table: pd.DataFrame, settings: TrainSettings, job: TrainingJob,
                    setup: WorkerSetup) -> tuple[SplitResult, str]:
    """A Ray task: one job trained in a worker process; returns its result (models as files) and its log."""
    configure_tensorflow(setup)
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        result = train_job(frames, split_table, settings, job)
    result.best_model, result.last_model = KerasFile.of(result.best_model), KerasFile.of(result.last_model)
    return result, log.getvalue()


# ----------------------------------------------------------------------------- driver side
def import_ray():
    """``import ray`` without the notices it prints in a notebook kernel (tqdm's and ipywidgets' hints)."""
    logging.getLogger("ray.widgets.util").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import ray
    return ray


def uses_ray(workers: int) -> bool:
    """Whether trainings go to Ray: more than one worker, or a cluster named by ``RAY_ADDRESS``."""
    return workers > 1 or bool(os.environ.get(RAY_ADDRESS_ENV))


@contextlib.contextmanager
def ray_session(num_cpus: int) -> Iterator[None]:
    """Ray for the block: the cluster at ``RAY_ADDRESS``, else a local head with ``num_cpus`` CPUs.

    A session started here is shut down afterwards (a cluster keeps running); one that is already
    running (``ray.init`` by the caller) is used as it is and left running.
    """
    ray = import_ray()
    if ray.is_initialized():
        yield
        return
    quiet: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
    if os.environ.get(RAY_ADDRESS_ENV):
        ray.init(address="auto", **quiet)  # Ray reads RAY_ADDRESS (and the cluster's token, if it uses one)
    else:  # "local": a new head even when another cluster runs on this machine
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, **quiet)
    try:
        yield
    finally:
        ray.shutdown()


def check_resources(available: dict[str, float], cpus_per_task: int, gpus_per_task: float) -> None:
    """Refuse tasks the Ray cluster could never place (they would wait forever).

    Raises:
        StageError: fewer CPUs or GPUs in the cluster than one task asks for.
    """
    if available.get("CPU", 0) < cpus_per_task:
        raise StageError(f"each training asks Ray for {cpus_per_task} CPU(s); the cluster has {available.get('CPU', 0):g}")
    if gpus_per_task > 0 and available.get("GPU", 0) < gpus_per_task:
        raise StageError(f"GPUS_PER_TASK = {gpus_per_task:g}, but the Ray cluster has {available.get('GPU', 0):g} GPU(s): "
                         "set GPUS_PER_TASK = 0 to train on CPUs")


def run_trainings(frames: pd.DataFrame, split_table: pd.DataFrame, settings: TrainSettings,
                  jobs: Sequence[TrainingJob], *, workers: int = 1, cpus_per_task: int = 1,
                  gpus_per_task: float = 0.0, echo: Callable[[str], None] = print) -> Iterator[SplitResult]:
    """Train every job; yield the results in job order, each as soon as it and those before it are done.

    Args:
        frames: one plane's crops (``ctslib.severity.inputs.read_crops``).
        split_table: ``split.csv`` rows of every split the jobs name.
        settings: the training recipe (the same for every job).
        jobs: what to train (``training_jobs``).
        workers: 1 = in this process, one after the other; more = Ray tasks side by side on a
            local Ray head with ``workers * cpus_per_task`` CPUs (ignored when ``RAY_ADDRESS`` is set).
        cpus_per_task: CPU cores (= TensorFlow threads) of each Ray task.
        gpus_per_task: share of a GPU each Ray task reserves (0: train on CPUs).
        echo: where the Ray path prints each training's log.

    With Ray, a yielded result's models are ``KerasFile`` objects (saved ``.keras`` bytes), not
    Keras models; ``ctslib.severity.train.save_model`` writes either.
    """
    if workers < 1 or cpus_per_task < 1:
        raise ValueError(f"workers and cpus_per_task must be >= 1, got {workers}, {cpus_per_task}")
    if gpus_per_task < 0:
        raise ValueError(f"gpus_per_task must be >= 0, got {gpus_per_task}")
    if not uses_ray(workers):
        return (train_job(frames, split_table, settings, job) for job in jobs)
    return _ray_trainings(frames, split_table, settings, list(jobs), workers, cpus_per_task, gpus_per_task, echo)


def _ray_trainings(frames, split_table, settings, jobs, workers, cpus_per_task, gpus_per_task, echo):
    ray = import_ray()
    with ray_session(workers * cpus_per_task):
        check_resources(ray.cluster_resources(), cpus_per_task, gpus_per_task)
        task = ray.remote(train_in_worker).options(num_cpus=cpus_per_task, num_gpus=gpus_per_task, max_retries=0)
        setup = WorkerSetup(threads=cpus_per_task, gpu=gpus_per_task > 0)
        frames_ref, table_ref = ray.put(frames), ray.put(split_table)
        pending = [task.remote(frames_ref, table_ref, settings, job, setup) for job in jobs]
        gpu = f" and {gpus_per_task:g} GPU" if gpus_per_task else ""
        echo(f"{len(jobs)} trainings as Ray tasks on {ray.cluster_resources().get('CPU', 0):g} CPUs, "
             f"{cpus_per_task} CPU thread(s){gpu} each")
        for i in range(len(pending)):
            result, log = ray.get(pending[i])
            pending[i] = None  # frees the finished task's object
            if log:
                echo(log.rstrip("\n"))
            yield result


# ----------------------------------------------------------------------------- a plane's stage
def train_plane(frames: pd.DataFrame, split_table: pd.DataFrame, settings: TrainSettings, seed: int,
                paths: RunPaths, splits: list[str] | None = None, seeds: int = 1, workers: int = 1,
                gpus_per_task: float = 0.0) -> pd.DataFrame:
    """Train one plane's model on every split and write the stage's hand-off files.

    Writes ``split.csv`` first, then per split ``<split>_best.keras`` and ``<split>_last.keras``,
    and (rewritten after each split, so finished splits survive an interruption) ``history.csv``
    and ``predictions.csv``. Every split starts from the same seed. With ``seeds`` > 1 every split
    is trained again with seed + 1, ... (named ``<split>~s1`` ...): the spread of those results is
    training variance (same validation participants, only initialisation, order and augmentation differ).

    Each split and seed is one independent training (``ctslib.severity.tasks``): with ``workers`` = 1 they
    run here one after the other; with more (or ``RAY_ADDRESS`` set) they run as Ray tasks side by
    side, ``gpus_per_task`` of a GPU each (0: CPU). Files are written in the same order either way.

    Returns:
        One summary row per split and seed (sizes, best/final validation accuracy, timings).
    """
    split_table = split_table[list(SPLIT_COLUMNS)]
    check_split(split_table)
    jobs = training_jobs(splits or list(dict.fromkeys(split_table["split"])), seed, seeds)
    write_csv(split_table, paths.split_csv(settings.plane))
    histories, predictions, summaries = [], [], []
    results = run_trainings(frames, split_table, settings, jobs, workers=workers, gpus_per_task=gpus_per_task,
                            echo=lambda line: print(line, flush=True))
    for job, result in zip(jobs, results):
        save_model(result.best_model, paths.model_file(settings.plane, job.name, "best"))
        save_model(result.last_model, paths.model_file(settings.plane, job.name, "last"))
        histories.append(result.history)
        predictions.append(result.predictions)
        summaries.append({**result.summary, "seed": job.seed})
        write_csv(pd.concat(histories, ignore_index=True), paths.history_csv(settings.plane))
        write_csv(pd.concat(predictions, ignore_index=True)[list(PREDICTION_COLUMNS)],
                  paths.predictions_csv(settings.plane))
    return pd.DataFrame(summaries)
