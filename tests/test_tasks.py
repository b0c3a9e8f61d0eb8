"""Trainings as tasks: one after the other in this process, or side by side as Ray tasks, same files.

TensorFlow's CPU kernels round differently with different thread counts, so the in-process
reference runs in a subprocess with one TensorFlow thread, like each Ray task (one CPU each):
then every number must be identical, not merely close.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from ctslib.common.errors import StageError
from ctslib.common.paths import RunPaths
from ctslib.severity.tasks import TrainingJob, check_resources, training_jobs, uses_ray

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed")

PLANE, SIZE, SEED = "transverse", 32, 2026
SPLITS = ["grouped", "cv0"]  # with SEEDS = 2: grouped, cv0, grouped~s1, cv0~s1
SEEDS = 2
NAMES = ["grouped", "cv0", "grouped~s1", "cv0~s1"]


def train_toy(work: Path, out: Path, workers: int) -> None:
    """Train the toy transverse model on every job with ``workers``; write the hand-off files under ``out``."""
    from ctslib.severity.inputs import read_crops
    from ctslib.common.seed import set_determinism
    from ctslib.severity.split import make_splits
    from ctslib.severity.tasks import train_plane
    from ctslib.severity.train import TrainSettings

    if workers == 1:
        set_determinism(SEED)  # what the notebooks do; Ray workers switch op determinism on themselves
    frames = read_crops(RunPaths(work, work).crops_csv, PLANE)
    table = make_splits(frames, seed=SEED, cv_folds=2, policies=("grouped",))
    settings = TrainSettings(PLANE, SIZE, epochs=2, batch_size=16, verbose=1, log_every=1)
    summary = train_plane(frames, table, settings, seed=SEED, paths=RunPaths(out, out / "report"),
                          splits=SPLITS, seeds=SEEDS, workers=workers)
    summary.drop(columns=[c for c in summary if "second" in c]).to_csv(out / "summary.csv", index=False)
    (out / "ray_modules.txt").write_text(" ".join(sorted(m for m in sys.modules if m.split(".")[0] == "ray")))


@pytest.fixture(scope="module")
def toy_work(tmp_path_factory) -> Path:
    from ctslib.severity.inputs import write_toy_crops

    work = tmp_path_factory.mktemp("tasks_work")
    write_toy_crops(work, plane=PLANE, participants_per_grade=2, frames_per_wrist=4, crop_size=SIZE, seed=4)
    return work


@pytest.fixture(scope="module")
def reference(toy_work, tmp_path_factory) -> Path:
    """workers=1 (in process) in a fresh interpreter whose TensorFlow has one thread."""
    out = tmp_path_factory.mktemp("tasks_reference")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1", TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, __file__, str(toy_work), str(out)], env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def assert_same_hand_off(expected: Path, actual: Path) -> None:
    """The same split, history, predictions and summary, bit for bit; the same model files and weights."""
    import keras
    import numpy as np

    a, b = RunPaths(expected, expected), RunPaths(actual, actual)
    for file in (a.split_csv(PLANE).name, a.history_csv(PLANE).name, a.predictions_csv(PLANE).name):
        pd.testing.assert_frame_equal(pd.read_csv(b.model_dir(PLANE) / file), pd.read_csv(a.model_dir(PLANE) / file),
                                      check_exact=True, obj=file)
    pd.testing.assert_frame_equal(pd.read_csv(actual / "summary.csv"), pd.read_csv(expected / "summary.csv"),
                                  check_exact=True)
    assert list(pd.read_csv(b.history_csv(PLANE))["split"].drop_duplicates()) == NAMES  # job order kept
    assert sorted(p.name for p in b.model_dir(PLANE).glob("*.keras")) == sorted(
        f"{n}_{w}.keras" for n in NAMES for w in ("best", "last"))
    for name, which in (("grouped", "best"), ("cv0~s1", "last")):
        want = keras.models.load_model(a.model_file(PLANE, name, which), compile=False).get_weights()
        got = keras.models.load_model(b.model_file(PLANE, name, which), compile=False).get_weights()
        assert all(np.array_equal(x, y) for x, y in zip(want, got, strict=True)), (name, which)


# --------------------------------------------------------------------------- no Ray needed
def test_jobs_are_every_split_then_every_split_again_per_extra_seed():
    assert training_jobs(["paper", "cv0"], 5, seeds=2) == [
        TrainingJob("paper", 5, "paper"), TrainingJob("cv0", 5, "cv0"),
        TrainingJob("paper", 6, "paper~s1"), TrainingJob("cv0", 6, "cv0~s1"),
    ]
    with pytest.raises(ValueError, match="seeds"):
        training_jobs(["paper"], 5, seeds=0)


def test_ray_is_used_for_several_workers_or_a_named_cluster(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert (uses_ray(1), uses_ray(2)) == (False, True)
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    assert uses_ray(1)


def test_tasks_the_cluster_cannot_place_are_refused():
    check_resources({"CPU": 2.0}, cpus_per_task=1, gpus_per_task=0.0)
    check_resources({"CPU": 2.0, "GPU": 1.0}, cpus_per_task=2, gpus_per_task=0.5)
    with pytest.raises(StageError, match="GPUS_PER_TASK = 0.5, but the Ray cluster has 0 GPU"):
        check_resources({"CPU": 2.0}, cpus_per_task=1, gpus_per_task=0.5)
    with pytest.raises(StageError, match="3 CPU"):
        check_resources({"CPU": 2.0}, cpus_per_task=3, gpus_per_task=0.0)


def test_one_worker_trains_in_process_without_importing_ray(reference):
    assert (reference / "ray_modules.txt").read_text() == ""
    assert list(pd.read_csv(reference / "summary.csv")["split"]) == NAMES


# --------------------------------------------------------------------------- Ray
@needs_ray
def test_two_local_ray_workers_write_the_same_files(toy_work, reference, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    train_toy(toy_work, tmp_path, workers=2)
    assert_same_hand_off(reference, tmp_path)
    log = capsys.readouterr().out
    assert "4 trainings as Ray tasks on 2 CPUs, 1 CPU thread(s) each" in log
    assert log.index("[transverse / grouped]") < log.index("[transverse / cv0]")  # each task's log, in job order


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


HEAD_START_ATTEMPTS = 3
"""A loaded machine can make a Ray head miss its own 30 s start-up wait ("The current node timed out
during startup ... the GCS has become overloaded"); a fresh head on a fresh port is tried again."""


def _stop(head: subprocess.Popen) -> None:
    head.send_signal(signal.SIGTERM)  # `ray start --block` stops the processes it started
    try:
        head.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(head.pid, signal.SIGKILL)  # the session this fixture created, nothing else
        head.wait()


def _start_head(env: dict[str, str], wait_s: float = 90) -> tuple[subprocess.Popen | None, int, str]:
    """A 2-CPU Ray head on a free port: ``(process, port, "")``, or ``(None, port, its output)`` if it failed."""
    port = _free_port()
    head = subprocess.Popen(
        [str(Path(sys.executable).with_name("ray")), "start", "--head", "--num-cpus", "2", "--port", str(port),
         "--include-dashboard=false", "--disable-usage-stats", "--block"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(head.stdout), daemon=True).start()
    deadline = time.monotonic() + wait_s
    while not any("Ray runtime started" in line for line in lines):
        if head.poll() is not None or time.monotonic() > deadline:
            if head.poll() is None:
                _stop(head)
            return None, port, "".join(lines)[-3000:]
        time.sleep(0.2)
    return head, port, ""


@pytest.fixture
def ray_cluster(monkeypatch):
    """A 2-CPU Ray head started with ``ray start --block`` (stopped by signalling that process only)."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    failures: list[str] = []
    for _ in range(HEAD_START_ATTEMPTS):
        head, port, output = _start_head(env)
        if head is not None:
            break
        failures.append(output)
    else:
        pytest.fail(f"ray start failed {HEAD_START_ATTEMPTS} times; last output:\n" + failures[-1])
    try:
        monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
        yield port
    finally:
        _stop(head)


@needs_ray
def test_tasks_on_the_cluster_at_ray_address_write_the_same_files(toy_work, reference, tmp_path, ray_cluster):
    import ray

    train_toy(toy_work, tmp_path, workers=1)  # RAY_ADDRESS is set: Ray even with one worker
    assert_same_hand_off(reference, tmp_path)
    assert (tmp_path / "ray_modules.txt").read_text() != ""
    assert not ray.is_initialized()  # disconnected; the cluster itself is the fixture's to stop


if __name__ == "__main__":  # the reference run of ``reference``: python tests/test_tasks.py WORK OUT
    train_toy(Path(sys.argv[1]), Path(sys.argv[2]), workers=1)
