"""Atomic file output, named tables/figures for the report, and ``record`` for headline numbers.

Everything a stage writes goes through a temporary file in the target folder followed by
``os.replace``, so a run killed mid-write never leaves a half-written file under its final name.
"""

from __future__ import annotations

import hashlib
import json
import linecache
import math
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def source_name(filename: str) -> str:
    """A source file's path below the Python path entry that holds it: ``ctslib/evaluate/tables.py``, ``tqdm/auto.py``."""
    full = os.path.abspath(filename)
    names = [full[len(base) + 1:] for base in (os.path.abspath(e) for e in sys.path if e)
             if full.startswith(base.rstrip(os.sep) + os.sep)]
    return min(names, key=len) if names else os.path.basename(full)


def format_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                   line: str | None = None) -> str:
    """Python's warning text with the source named below its package root, not by its absolute path.

    Warnings printed in a notebook kernel land in the executed notebook, and a checkout's or a
    virtual environment's path names a machine and a user.
    """
    source = (line if line is not None else linecache.getline(filename, lineno)).strip()
    return f"{source_name(filename)}:{lineno}: {category.__name__}: {message}\n" + (f"  {source}\n" if source else "")


warnings.formatwarning = format_warning  # every kernel imports ctslib.common.io before the study's code warns


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp" + target.suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give them the user's usual mode
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as pretty, key-sorted JSON atomically (NumPy scalars converted)."""
    return write_text(path, json.dumps(to_jsonable(obj), indent=2, sort_keys=True) + "\n")


def write_csv(df: pd.DataFrame, path: str | Path, *, index: bool = False) -> Path:
    """Write ``df`` as CSV atomically, with a stable float format so reruns are byte-identical."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=index, lineterminator="\n", float_format="%.6g")
    return Path(path)


def to_jsonable(value: Any) -> Any:
    """Convert NumPy / pandas / Path values (recursively) into plain JSON types."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (np.floating, float)):
        f = float(value)
        return None if math.isnan(f) else f
    if isinstance(value, Path):
        return str(value)
    return value


def markdown_table(df: pd.DataFrame, *, index: bool = False, floatfmt: str = ".3g") -> str:
    """Render ``df`` as a GitHub-flavoured Markdown table (via pandas + tabulate)."""
    return df.to_markdown(index=index, floatfmt=floatfmt) + "\n"


def write_table(
    df: pd.DataFrame,
    name: str,
    tables_dir: str | Path,
    *,
    index: bool = False,
    caption: str | None = None,
    floatfmt: str = ".3g",
) -> pd.DataFrame:
    """Write a report table as ``<name>.csv`` (machines) and ``<name>.md`` (the HTML report).

    Returns ``df`` unchanged so a notebook cell can end with it and show it.
    """
    tables = Path(tables_dir)
    write_csv(df, tables / f"{name}.csv", index=index)
    md = markdown_table(df, index=index, floatfmt=floatfmt)
    if caption:
        md = f"**{caption}**\n\n{md}"
    write_text(tables / f"{name}.md", md)
    return df


FIGURE_FILE_KEY = "ctslib_figure"
"""Output metadata naming the report file a displayed figure was saved as (see ``ctslib.report.pages``)."""


def save_figure(fig: Any, name: str, figures_dir: str | Path, *, dpi: int = 120) -> Path:
    """Save a Matplotlib figure as ``<figures_dir>/<name>.png`` atomically.

    In a notebook kernel the saved PNG is shown (once, tagged with its report file) and the figure
    closed, so ``ctslib.report.pages`` can replace the notebook's copy with a link to that file: the report
    then stores each image once.
    """
    path = Path(figures_dir) / f"{name}.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png", metadata={"Software": None})
    _show_saved(fig, path)
    return path


def _show_saved(fig: Any, path: Path) -> None:
    """Display the saved PNG in a running IPython kernel (tagged with its report-relative name) and close ``fig``."""
    try:
        from IPython import get_ipython
        from IPython.display import Image, display
    except ImportError:
        return
    shell = get_ipython()
    if shell is None or not hasattr(shell, "kernel"):
        return
    import matplotlib.pyplot as plt

    display(Image(filename=str(path)), metadata={FIGURE_FILE_KEY: f"{path.parent.name}/{path.name}"})
    plt.close(fig)


def record(name: str, value: Any, record_file: str | Path, *, show: bool = True) -> Any:
    """Store a headline number of a stage in its ``record.json`` (read by tests and the report).

    Like scrapbook's ``glue``: the executed notebook states its key numbers, and a test or the
    report index reads them back without parsing notebook outputs.
    """
    path = Path(record_file)
    data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    data[name] = to_jsonable(value)
    write_json(path, data)
    if show:
        from ctslib.common.display import shown_value

        # the stored value keeps full precision; the reader sees the report's rounding rule
        print(f"record: {name} = {shown_value(data[name], name)}")
    return value


def read_records(record_file: str | Path) -> dict[str, Any]:
    """The numbers a stage recorded, or an empty dict if it recorded none yet."""
    path = Path(record_file)
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_tree(root: str | Path, pattern: str = "**/*") -> str:
    """Hex SHA-256 over the relative names and bytes of every file under ``root`` (sorted)."""
    base = Path(root)
    digest = hashlib.sha256()
    for path in sorted(p for p in base.glob(pattern) if p.is_file()):
        digest.update(path.relative_to(base).as_posix().encode())
        digest.update(sha256_file(path).encode())
    return digest.hexdigest()


def sha256_json(obj: Any) -> str:
    """Hex SHA-256 of ``obj`` as canonical JSON (sorted keys)."""
    return hashlib.sha256(json.dumps(to_jsonable(obj), sort_keys=True).encode()).hexdigest()


def warn_report(stage: str, message: str, report_dir: str | Path, *, show: bool = True) -> str:
    """Record a data-quality warning that the report index shows at the top (``warnings.json``).

    Stages call this for anything a reader must not miss (a participant that QC emptied, a video
    where no nerve was found, a collapsed model). Warnings are kept per stage, so a re-run of a
    stage replaces its own warnings (see ``clear_report_warnings``) and never duplicates them.
    """
    path = Path(report_dir) / "warnings.json"
    data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    messages = data.setdefault(str(stage), [])
    if message not in messages:
        messages.append(message)
    write_json(path, data)
    if show:
        print(f"WARNING (stage {stage}): {message}")
    return message


class StageNotes:
    """What every stage object says to the report: its headline numbers and its warnings.

    A stage's dataclass inherits this and provides ``key`` (the stage key, "02" ... "06") and
    ``paths`` (its ``RunPaths``), so recording and warning are written once for all stages.
    """

    key: str
    paths: Any

    def record(self, name: str, value: Any) -> Any:
        """Record a headline number in this stage's ``record.json``."""
        return record(name, value, self.paths.records(self.key))

    def warn(self, message: str) -> None:
        """Put a warning on the report index (and print it)."""
        warn_report(self.key, message, self.paths.report)


def clear_report_warnings(stage: str, report_dir: str | Path) -> None:
    """Forget the warnings a stage recorded earlier (call at the start of the stage)."""
    path = Path(report_dir) / "warnings.json"
    if not path.exists():
        return
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.pop(str(stage), None) is not None:
        write_json(path, data)


def read_report_warnings(report_dir: str | Path) -> dict[str, list[str]]:
    """Every stage's recorded warnings, ``{stage: [message, ...]}`` (empty when none)."""
    path = Path(report_dir) / "warnings.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
