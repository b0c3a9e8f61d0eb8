"""The report folder's ``index.html`` and ``manifest.json``.

The index links every stage's executed notebook (HTML + ipynb), shows the paper's named outputs
first (Table 1, Figures 2-3, Table 2, Figure 4), then every table and figure grouped by the stage
that made it, and the headline numbers each stage recorded.
"""

from __future__ import annotations

import html
import json
import platform
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from ctslib.io import read_records, write_json, write_text
from ctslib.paths import PROJECT_ROOT, RunPaths
from ctslib.runner import StageResult

PAPER_OUTPUTS: dict[str, str] = {
    "tables/table1.csv": "Table 1 - participants and NCS diagnoses",
    "figures/figure2.png": "Figure 2 - transverse model: loss and accuracy per epoch",
    "figures/figure3.png": "Figure 3 - longitudinal model: loss and accuracy per epoch",
    "tables/table2.csv": "Table 2 - accuracy and class-wise precision",
    "figures/figure4.png": "Figure 4 - confusion matrices",
}

SYNTHETIC_NOTE = (
    "These results come from the embedded SYNTHETIC dataset. They show that the pipeline works end to "
    "end; they do not test the clinical claim of the paper."
)


def data_source(data_dir: Path) -> str:
    """'synthetic' or 'real', from acquisition.json's ``source`` (real when unstated)."""
    acquisition = Path(data_dir) / "acquisition.json"
    if acquisition.exists():
        try:
            return str(json.loads(acquisition.read_text(encoding="utf-8")).get("source", "real"))
        except json.JSONDecodeError:
            return "real"
    return "real"


def git_commit() -> dict[str, Any]:
    """The project's git commit and whether the work tree had uncommitted changes."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False).stdout.strip()

    commit = git("rev-parse", "HEAD")
    return {"commit": commit or None, "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def package_versions(requirements: Path = PROJECT_ROOT / "requirements.txt") -> dict[str, str | None]:
    """Installed versions of the pinned top-level packages."""
    versions: dict[str, str | None] = {}
    for line in requirements.read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        name = line.split("==")[0].strip()
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def build_manifest(
    *,
    profile: str,
    parameters: dict[str, dict[str, Any]],
    data_dir: Path,
    data_hash: str | None,
    results: Iterable[StageResult],
    paths: RunPaths,
    started: float,
    git: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything needed to say what produced this report (``git``: the commit read at start)."""
    result_list = list(results)
    return {
        "profile": profile,
        "seed": next((p.get("SEED") for p in parameters.values() if "SEED" in p), None),
        "data": {"dir": str(data_dir), "source": data_source(data_dir), "sha256": data_hash},
        "parameters": parameters,
        "stages": {r.key: {k: v for k, v in asdict(r).items() if k != "key"} for r in result_list},
        "records": {r.key: read_records(paths.records(r.key)) for r in result_list},
        "git": git or git_commit(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "wall_seconds": round(time.time() - started, 1),
    }


def _table_html(csv_path: Path, max_rows: int = 60) -> str:
    df = pd.read_csv(csv_path, keep_default_na=False)
    note = ""
    if len(df) > max_rows:
        note = f"<p class='note'>first {max_rows} of {len(df)} rows; full table in the CSV</p>"
        df = df.head(max_rows)
    return df.to_html(index=False, border=0, classes="table", escape=True, float_format=lambda v: f"{v:.3g}") + note


def _output_html(report: Path, rel: str, title: str | None = None) -> str:
    path = report / rel
    name = html.escape(Path(rel).stem)
    heading = f"<h4>{html.escape(title or name)}</h4>"
    if rel.endswith(".png"):
        return f"{heading}<a href='{html.escape(rel)}'><img src='{html.escape(rel)}' alt='{name}'></a>"
    if rel.endswith(".csv"):
        md = path.with_suffix(".md")
        links = f"<a href='{html.escape(rel)}'>CSV</a>" + (f" · <a href='{html.escape(Path(rel).with_suffix('.md').as_posix())}'>Markdown</a>" if md.exists() else "")
        return f"{heading}<p class='links'>{links}</p>{_table_html(path)}"
    return ""


STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table.table,table.stages{border-collapse:collapse;font-size:0.9em;margin:0.5em 0}
table.table td,table.table th,table.stages td,table.stages th{border:1px solid #ccc;padding:3px 8px;text-align:left}
img{max-width:100%;border:1px solid #ddd}
.banner{background:#fff4d6;border:1px solid #e0b84a;padding:0.8em 1em;border-radius:6px}
.failed{color:#b00020;font-weight:bold}.note,.links{color:#666;font-size:0.85em}
code{background:#f4f4f4;padding:0 3px}
"""


def build_index(paths: RunPaths, manifest: dict[str, Any], results: Iterable[StageResult]) -> str:
    """The report's index page (HTML text)."""
    report = paths.report
    result_list = list(results)
    made_by = {out: r.stem for r in result_list for out in r.outputs}
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>CTS study report: {html.escape(manifest['profile'])}</title>",
             f"<style>{STYLE}</style></head><body>",
             "<h1>CTS ultrasound severity study: reproduction report</h1>",
             f"<p>Profile <code>{html.escape(manifest['profile'])}</code>, seed <code>{manifest['seed']}</code>, "
             f"data source <b>{html.escape(manifest['data']['source'])}</b>, git commit "
             f"<code>{html.escape(str(manifest['git']['commit'])[:12])}</code>{' (uncommitted changes)' if manifest['git']['dirty'] else ''}, "
             f"finished {html.escape(manifest['finished'])} after {manifest['wall_seconds']:.0f} s. "
             "<a href='manifest.json'>manifest.json</a> records parameters, input hashes and package versions.</p>"]
    if manifest["data"]["source"] == "synthetic":
        parts.append(f"<p class='banner'>{html.escape(SYNTHETIC_NOTE)}</p>")
    parts.append("<h2>Stages</h2><table class='stages'><tr><th>stage</th><th>report</th><th>status</th><th>time (s)</th><th>peak kernel memory (MiB)</th></tr>")
    for r in result_list:
        status = f"<span class='failed'>failed: {html.escape(r.error)}</span>" if r.status == "failed" else html.escape(r.status)
        links = ""
        if (report / f"{r.stem}.html").exists():
            links = f"<a href='{r.stem}.html'>HTML</a> · <a href='{r.stem}.ipynb'>notebook</a>"
        elif (report / f"{r.stem}.ipynb").exists():
            links = f"<a href='{r.stem}.ipynb'>notebook (traceback)</a>"
        peak = "" if r.peak_rss_mb is None else f"{r.peak_rss_mb:.0f}"
        parts.append(f"<tr><td>{html.escape(r.stem)}</td><td>{links}</td><td>{status}</td><td>{r.seconds:.1f}</td><td>{peak}</td></tr>")
    parts.append("</table>")
    parts.append("<h2>The paper's tables and figures</h2>")
    for rel, title in PAPER_OUTPUTS.items():
        if (report / rel).exists():
            parts.append(_output_html(report, rel, f"{title} (made by {made_by.get(rel, '?')})"))
        else:
            parts.append(f"<h4>{html.escape(title)}</h4><p class='note'>not produced in this run</p>")
    parts.append("<h2>All outputs by stage</h2>")
    for r in result_list:
        extra = [o for o in r.outputs if o not in PAPER_OUTPUTS and (o.endswith(".csv") or o.endswith(".png"))]
        records = read_records(paths.records(r.key))
        if not extra and not records:
            continue
        parts.append(f"<h3>{html.escape(r.stem)}</h3>")
        if records:
            rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(json.dumps(v))}</td></tr>" for k, v in records.items())
            parts.append(f"<table class='table'><tr><th>headline number</th><th>value</th></tr>{rows}</table>")
        parts.extend(_output_html(report, o) for o in extra)
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(paths: RunPaths, manifest: dict[str, Any], results: Iterable[StageResult]) -> Path:
    """Write manifest.json and index.html into the report folder; returns the index path."""
    result_list = list(results)
    write_json(paths.manifest, manifest)
    index = paths.report / "index.html"
    write_text(index, build_index(paths, manifest, result_list))
    return index

