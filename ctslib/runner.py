"""Run the study notebooks in order with papermill: stamps, resume, timing, peak memory, HTML.

A stage's *stamp* is the hash of everything that determines its outputs: the notebook file, the
parameters injected into it, the ctslib source code, the stamps of the stages it reads from, and
(for stages that read the data folder) the data's content hash. ``.stamp.json`` is written into the
stage's work folder only after the stage succeeded, so a stage killed mid-way has no stamp and is
rerun from a clean folder next time; a stage whose stamp matches is skipped.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from ctslib.errors import StageError
from ctslib.io import sha256_file, sha256_json, sha256_tree, write_json, write_text
from ctslib.paths import NOTEBOOKS_DIR, PROJECT_ROOT, STAGES, RunPaths

# Which earlier stages each stage reads (the data folder is read by every stage but 00).
DEPENDS: dict[str, tuple[str, ...]] = {
    "00": (),
    "01": ("00",),
    "02": ("00", "01"),
    "03": ("02",),
    "04": ("03",),
    "05": ("03",),
    "06": ("00", "01", "03", "04", "05"),
}
INJECTED = ("DATA_DIR", "WORK_DIR", "REPORT_DIR")
STAMP_FILE = ".stamp.json"


@dataclass
class StageResult:
    """What happened to one stage in this invocation."""

    key: str
    notebook: str
    status: str  # "ran", "skipped" (stamp matched), "failed", "not run"
    seconds: float = 0.0
    peak_rss_mb: float | None = None
    outputs: list[str] = field(default_factory=list)
    stamp: str = ""
    error: str = ""

    @property
    def stem(self) -> str:
        return Path(self.notebook).stem


def library_hash() -> str:
    """Hash of the ctslib sources: a library change reruns every stage."""
    return sha256_tree(PROJECT_ROOT / "ctslib", "**/*.py")


def declared_parameters(notebook: Path) -> dict[str, Any]:
    """Parameters declared in the notebook's ``parameters`` cell (papermill's inspection)."""
    import papermill as pm

    return pm.inspect_notebook(str(notebook))


def stage_parameters(
    key: str,
    notebook: Path,
    profile_params: dict[str, Any],
    common_keys: Iterable[str],
    injected: dict[str, Any],
) -> dict[str, Any]:
    """Parameters to inject into a stage, checked against what the notebook declares.

    Common profile parameters are passed only to notebooks that declare them; a stage-specific
    profile parameter the notebook does not declare is an error (a typo would otherwise be ignored).
    """
    declared = declared_parameters(notebook)
    common = set(common_keys)
    unknown = sorted(k for k in profile_params if k not in declared and k not in common)
    if unknown:
        raise StageError(f"profile sets {unknown} for stage {key}, but {notebook.name} declares no such parameter")
    params = {k: v for k, v in profile_params.items() if k in declared}
    params.update({k: v for k, v in injected.items() if k in declared})
    return params


def compute_stamp(notebook: Path, params: dict[str, Any], upstream: dict[str, str], data_hash: str, lib_hash: str) -> str:
    """The stamp of one stage (see module docstring)."""
    return sha256_json(
        {
            "notebook": sha256_file(notebook),
            "parameters": params,
            "upstream": upstream,
            "data": data_hash,
            "library": lib_hash,
        }
    )


def read_stamp(stage_dir: Path) -> dict[str, Any] | None:
    """The stamp record of a finished stage, or None."""
    path = stage_dir / STAMP_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None


class PeakMemory:
    """Polls the resident memory of this process's children (the notebook kernel) in a thread."""

    def __init__(self, interval_s: float = 0.25) -> None:
        self.interval_s = interval_s
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for child in me.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
            self.peak_bytes = max(self.peak_bytes, total)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mb(self) -> float:
        return round(self.peak_bytes / 2**20, 1)


def _report_files(paths: RunPaths) -> dict[str, tuple[int, int]]:
    files: dict[str, tuple[int, int]] = {}
    for folder in (paths.tables, paths.figures):
        if folder.exists():
            for f in folder.iterdir():
                if f.is_file() and not f.name.startswith("."):
                    st = f.stat()
                    files[f.relative_to(paths.report).as_posix()] = (st.st_mtime_ns, st.st_size)
    return files


def export_html(executed: Path, html: Path) -> None:
    """Export an executed notebook to standalone HTML (images embedded) atomically."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab")
    body, _ = exporter.from_filename(str(executed))
    write_text(html, body)


def execute_stage(
    key: str,
    params: dict[str, Any],
    paths: RunPaths,
    *,
    kernel: str = "python3",
    progress: bool = True,
) -> tuple[float, float, list[str]]:
    """Execute one notebook into ``reports/<run>/`` and export its HTML.

    Returns (seconds, peak kernel memory in MiB, report files the stage wrote). Raises papermill's
    ``PapermillExecutionError`` when a cell fails; the executed notebook then holds the traceback.
    """
    import papermill as pm

    notebook = NOTEBOOKS_DIR / STAGES[key]
    executed = paths.report / notebook.name
    stage_dir = paths.stage_dir(key)
    if stage_dir.exists():
        shutil.rmtree(stage_dir)  # a rerun starts clean: no leftovers of a killed attempt
    stage_dir.mkdir(parents=True)
    paths.report.mkdir(parents=True, exist_ok=True)
    before = _report_files(paths)
    start = time.perf_counter()
    with PeakMemory() as memory:
        pm.execute_notebook(
            str(notebook),
            str(executed),
            parameters=params,
            kernel_name=kernel,
            cwd=str(NOTEBOOKS_DIR),
            progress_bar=progress,
            request_save_on_cell_execute=True,
        )
    seconds = round(time.perf_counter() - start, 1)
    after = _report_files(paths)
    written = sorted(name for name, sig in after.items() if before.get(name) != sig)
    export_html(executed, executed.with_suffix(".html"))
    return seconds, memory.peak_mb, written


@dataclass
class RunPlan:
    """What to run: stages in order, which are forced, and the parameter source.

    ``synthetic`` says whether stage 00 (the generator) is part of this run's data path; with
    ``--data`` it is not, and no stage depends on it.
    """

    stages: list[str]
    forced: set[str]
    parameters: Callable[[str], dict[str, Any]]
    common_keys: list[str]
    synthetic: bool


def run_stages(
    plan: RunPlan,
    paths: RunPaths,
    data_dir: Path,
    *,
    kernel: str = "python3",
    progress: bool = True,
    extra: dict[str, Any] | None = None,
    echo: Callable[[str], None] = print,
) -> tuple[list[StageResult], str]:
    """Run (or skip) every planned stage in order; stop at the first failure.

    ``extra`` holds injected run options such as ``SKIP_BAD_INPUTS`` (passed where declared).
    Returns the stage results and the content hash of the data folder ("" if no stage read it).
    """
    import papermill as pm

    lib_hash = library_hash()
    stamps: dict[str, str] = {}
    results: list[StageResult] = []
    data_hash = ""
    injected = {"DATA_DIR": str(data_dir), "WORK_DIR": str(paths.work), "REPORT_DIR": str(paths.report), **(extra or {})}
    # Stamps of stages not planned in this invocation (e.g. --only 04) still feed their dependents.
    for key in STAGES:
        done = read_stamp(paths.stage_dir(key))
        if done:
            stamps[key] = done["stamp"]
    total = len(plan.stages)
    for position, key in enumerate(plan.stages, start=1):
        notebook = NOTEBOOKS_DIR / STAGES[key]
        label = f"[{position}/{total}] {notebook.stem}"
        if key != "00" and not data_hash:
            if not data_dir.exists():
                raise StageError(f"data folder {data_dir} does not exist")
            data_hash = sha256_tree(data_dir)
        missing = [d for d in DEPENDS[key] if (d != "00" or plan.synthetic) and d not in stamps]
        if missing:
            raise StageError(
                f"stage {key} needs stage(s) {missing} to have run first: run without --only, or with --from {missing[0]}"
            )
        params = stage_parameters(key, notebook, plan.parameters(key), plan.common_keys, injected)
        upstream = {d: stamps[d] for d in DEPENDS[key] if d in stamps}
        stamp = compute_stamp(notebook, params, upstream, data_hash if key != "00" else "", lib_hash)
        done = read_stamp(paths.stage_dir(key))
        executed = paths.report / notebook.name
        outputs_present = executed.exists() and (key != "00" or data_dir.exists())
        if key not in plan.forced and done and done.get("stamp") == stamp and outputs_present:
            echo(f"{label}: up to date (stamp {stamp[:10]}), skipped")
            results.append(StageResult(key, notebook.name, "skipped", done.get("seconds", 0.0),
                                       done.get("peak_rss_mb"), done.get("outputs", []), stamp))
            stamps[key] = stamp
            continue
        echo(f"{label}: running")
        stamps.pop(key, None)
        try:
            seconds, peak, outputs = execute_stage(key, params, paths, kernel=kernel, progress=progress)
        except pm.PapermillExecutionError as err:
            msg = f"{err.ename}: {err.evalue}"
            results.append(StageResult(key, notebook.name, "failed", error=msg, stamp=stamp))
            echo(f"{label}: FAILED in cell {err.exec_count}: {msg}\n  traceback: {executed}")
            return results, data_hash
        result = StageResult(key, notebook.name, "ran", seconds, peak, outputs, stamp)
        write_json(paths.stage_dir(key) / STAMP_FILE, {**asdict(result), "finished": time.strftime("%Y-%m-%dT%H:%M:%S")})
        stamps[key] = stamp
        results.append(result)
        echo(f"{label}: done in {seconds:.1f} s, peak kernel memory {peak:.0f} MiB")
    return results, data_hash

