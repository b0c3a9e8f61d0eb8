"""Run the study notebooks in order with papermill: stamps, resume, timing, peak memory, HTML.

A stage's *stamp* is the hash of everything that determines its outputs: the notebook file, the
parameters injected into it, the ctslib source code, the stamps of the stages it reads from, and
(for stages that read the data folder) the data's content hash. ``.stamp.json`` is written into the
stage's work folder only after the stage succeeded, so a stage killed mid-way has no stamp and is
rerun from a clean folder next time; a stage whose stamp matches is skipped.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from ctslib.common.errors import StageError
from ctslib.common.io import sha256_file, sha256_json, sha256_tree, write_json
from ctslib.common.machine import cpu_info, machine_line
from ctslib.common.paths import NOTEBOOKS_DIR, PROJECT_ROOT, STAGES, USGRA_SEG_DIR, RunPaths
from ctslib.report.kernel import run_notebook
from ctslib.report.pages import export_html

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
KERNEL_DIR = ".run"
"""Folder inside a run's work folder where the notebook kernels start; it holds links to the run's
folders and data, so injected folders are run-relative and no machine path reaches an executed notebook."""
DATA_LINK = "input_data"
"""Name of the link to a user's data folder inside the kernel folder (see ``data_parameter``)."""
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
    machine: str = ""  # ctslib.common.machine.machine_line of the CPU the stage ran on (times mean nothing without it)

    @property
    def stem(self) -> str:
        return Path(self.notebook).stem


def library_hash() -> str:
    """Hash of the ctslib sources, templates and shipped weights: a library change reruns every stage."""
    root = PROJECT_ROOT / "ctslib"
    return sha256_json([sha256_tree(root, pattern) for pattern in ("**/*.py", "templates/**/*", "weights/*")])


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


def link_to(link: Path, target: Path) -> bool:
    """Point the symbolic link ``link`` at ``target`` (re-pointing an old link); False where it cannot be made.

    A real file or folder named ``link`` is never removed.
    """
    try:
        if link.is_symlink():
            if Path(os.readlink(link)) == Path(target):
                return True
            link.unlink()
        elif link.exists():
            return False
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target, target_is_directory=True)
    except OSError:
        return False
    return True


def kernel_folder(paths: RunPaths) -> Path:
    """The folder the notebook kernels of a run start in (see ``KERNEL_DIR``)."""
    return paths.work / KERNEL_DIR


def data_parameter(data_dir: Path, work: Path, synthetic: bool) -> str:
    """The ``DATA_DIR`` injected into notebooks: a path relative to the kernel folder ``<work>/.run``.

    A path can name a patient or a clinic, and executed notebooks land in ``reports/``. User data
    (``--data``) are reached through a link ``<work>/.run/input_data`` -> the data folder; the
    synthetic default through ``<work>/.run/data`` -> its parent, so its folder keeps its name
    (``data/smoke``). Where links cannot be made, the absolute path is the fallback (and said so);
    the report's final scrub (``ctslib.report.privacy``) then hides it.
    """
    run_dir = Path(work) / KERNEL_DIR
    if synthetic:
        link, value = run_dir / "data", f"data/{Path(data_dir).name}"
        target = Path(data_dir).parent
        target.mkdir(parents=True, exist_ok=True)
    else:
        link, value, target = run_dir / DATA_LINK, DATA_LINK, Path(data_dir)
    if not link_to(link, target):
        print(f"note: cannot link the data folder into {run_dir}; notebooks get its absolute path")
        return str(data_dir)
    return value


def injected_folders(paths: RunPaths, data_dir: Path, synthetic: bool) -> dict[str, str]:
    """``DATA_DIR``, ``WORK_DIR`` and ``REPORT_DIR`` for the notebooks, relative to the kernel folder.

    The kernel starts in ``<work>/.run``, which holds links ``work`` and ``report`` to the run's folders
    and one to the data (``data_parameter``): the parameter cell of an executed notebook then reads
    ``WORK_DIR = "work"``, never a machine path.
    """
    run_dir = kernel_folder(paths)
    run_dir.mkdir(parents=True, exist_ok=True)
    paths.report.mkdir(parents=True, exist_ok=True)
    out = {"DATA_DIR": data_parameter(data_dir, paths.work, synthetic)}
    for name, link, target in (("WORK_DIR", "work", paths.work), ("REPORT_DIR", "report", paths.report)):
        out[name] = link if link_to(run_dir / link, target) else str(target)
    return out


def report_prefixes(paths: RunPaths, data_dir: Path) -> list[tuple[str, str]]:
    """Absolute folders of this run and machine that must not appear in its report, with their placeholders."""
    from ctslib.report.privacy import known_prefixes

    run_dir = kernel_folder(paths)
    data = [run_dir / DATA_LINK, run_dir / "data" / Path(data_dir).name, paths.work / DATA_LINK, data_dir]
    return known_prefixes(work=[run_dir / "work", paths.work], report=[run_dir / "report", paths.report],
                          data=data, project=PROJECT_ROOT, shared=[(USGRA_SEG_DIR, "<usgra-seg>")])


def terminal_text(text: str, paths: RunPaths, data_dir: Path) -> str:
    """An error for the terminal: the links of the kernel folder replaced by the user's own data folder."""
    run_dir = kernel_folder(paths)
    for link in (run_dir / DATA_LINK, run_dir / "data" / Path(data_dir).name):
        text = text.replace(str(link), str(data_dir))
    return text


def make_private(paths: RunPaths, data_dir: Path, results: Iterable[StageResult] = ()) -> list[Path]:
    """The report's final privacy pass: no machine path in any text file, no real ID in a failed stage's pages.

    Error texts of ``results`` are pseudonymised and scrubbed in place (they go to the index and the
    manifest). Returns the report files that changed.
    """
    from ctslib.report.privacy import id_replacements, private_text, scrub_report

    prefixes = report_prefixes(paths, data_dir)
    ids = id_replacements(paths.id_map_csv, Path(data_dir) / "cohort.csv")
    failed = []
    for result in results:
        if result.error:
            result.error = private_text(result.error, prefixes, ids)
        if result.status == "failed":
            failed += [result.notebook, f"{result.stem}.html"]
    return scrub_report(paths.report, prefixes, replacements=ids, pseudonymise=failed)


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
        run_notebook(notebook, executed, params, kernel=kernel, progress=progress,
                     cwd=kernel_folder(paths) if kernel_folder(paths).is_dir() else NOTEBOOKS_DIR)
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
    injected = {**injected_folders(paths, data_dir, plan.synthetic), **(extra or {})}
    # The injected folders are run-relative and the same for every run: the real ones go into the stamp.
    folders = {"work": str(paths.work), "report": str(paths.report), **({"data": str(data_dir)} if plan.synthetic else {})}
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
        stamp = compute_stamp(notebook, {**params, "_folders": folders}, upstream, data_hash if key != "00" else "", lib_hash)
        done = read_stamp(paths.stage_dir(key))
        executed = paths.report / notebook.name
        outputs_present = executed.exists() and (key != "00" or data_dir.exists())
        if key not in plan.forced and done and done.get("stamp") == stamp and outputs_present:
            echo(f"{label}: up to date (stamp {stamp[:10]}), skipped")
            results.append(StageResult(key, notebook.name, "skipped", done.get("seconds", 0.0),
                                       done.get("peak_rss_mb"), done.get("outputs", []), stamp,
                                       machine=done.get("machine", "")))
            stamps[key] = stamp
            continue
        echo(f"{label}: running")
        stamps.pop(key, None)
        try:
            seconds, peak, outputs = execute_stage(key, params, paths, kernel=kernel, progress=progress)
        except pm.PapermillExecutionError as err:
            msg = f"{err.ename}: {err.evalue}"
            with contextlib.suppress(Exception):  # the traceback page is a courtesy; the .ipynb holds it anyway
                export_html(executed, executed.with_suffix(".html"))
            # the terminal names the user's own file; the report gets the private text (make_private)
            echo(f"{label}: FAILED in cell {err.exec_count}: {terminal_text(msg, paths, data_dir)}\n  traceback: {executed}")
            results.append(StageResult(key, notebook.name, "failed", error=msg, stamp=stamp))
            return results, data_hash
        result = StageResult(key, notebook.name, "ran", seconds, peak, outputs, stamp, machine=machine_line(cpu_info()))
        finished = datetime.datetime.now().astimezone().isoformat(timespec="seconds")  # with its time zone
        write_json(paths.stage_dir(key) / STAMP_FILE, {**asdict(result), "finished": finished})
        stamps[key] = stamp
        results.append(result)
        echo(f"{label}: done in {seconds:.1f} s, peak kernel memory {peak:.0f} MiB")
    return results, data_hash

