"""Executed-notebook pages of a report that store each image and the page style once.

Design: a figure a notebook saves with ``ctslib.common.io.save_figure`` already exists as
``reports/<run>/figures/<name>.png`` (the file the index shows and the manifest hashes). Its copy in
the executed ``.ipynb`` becomes a Markdown image link to that file, which JupyterLab and the HTML
page both resolve from ``reports/<run>/``; the PNG bytes are then stored once instead of three
times (file, ``.ipynb``, HTML). JupyterLab's page style (about 0.26 MB) is written once as
``notebook.css`` and every notebook page links it instead of inlining it. Figures a notebook shows
without saving stay embedded: they exist nowhere else.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ctslib.common.io import FIGURE_FILE_KEY, write_text

SHARED_CSS = "notebook.css"
"""The notebook pages' shared style sheet, in the report folder."""

_FIGURE_NAME = re.compile(r"^[\w.-]+/[\w.-]+\.png$")

EXTRA_CSS = """
* { -webkit-print-color-adjust: exact; }
a.anchor-link { display: none; }
.jp-InputArea, .jp-InputArea-editor { overflow: hidden; }
.jp-OutputArea-output pre { line-height: inherit; font-family: inherit; }
.jp-RenderedText pre { color: var(--jp-content-font-color1); font-size: var(--jp-code-font-size); }
.jp-Collapser { display: none; }
.jp-OutputArea-output { overflow-x: auto; }
"""
"""The few rules nbconvert's lab template adds inline, plus tables that scroll inside their box."""


def link_saved_figures(nb: Any, report_dir: Path) -> int:
    """Replace, in place, every output tagged by ``save_figure`` whose file exists with a link to it.

    Returns how many outputs were replaced. A tag that names a missing file (or an odd name) keeps
    its embedded image, so a page never shows a broken link.
    """
    replaced = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            rel = out.get("metadata", {}).get(FIGURE_FILE_KEY)
            if out.get("output_type") != "display_data" or not isinstance(rel, str):
                continue
            if not _FIGURE_NAME.match(rel) or not (report_dir / rel).is_file():
                continue
            out["data"] = {"text/markdown": f"![{rel}]({rel})", "text/plain": f"<figure {rel}>"}
            out["metadata"] = {FIGURE_FILE_KEY: rel}
            replaced += 1
    return replaced


ORPHAN_STDERR = re.compile(r"^\s*from \.autonotebook import tqdm as notebook_tqdm\s*$")
"""The source line Python prints under tqdm's ``TqdmWarning`` (which ``ctslib.report.runner`` already drops)."""


def drop_orphan_lines(nb: Any) -> None:
    """Remove, in place, stderr lines that only make sense beside a warning the page no longer shows."""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                text = out.get("text", "")
                out["text"] = "\n".join(line for line in text.split("\n") if not ORPHAN_STDERR.match(line))


def lab_css() -> str:
    """JupyterLab's light-theme page style as nbconvert's ``lab`` template would inline it."""
    from jupyter_core.paths import jupyter_path

    for folder in jupyter_path("nbconvert", "templates", "lab", "static"):
        static = Path(folder)
        if (static / "index.css").is_file():
            return "\n".join((static / name).read_text(encoding="utf-8") for name in ("index.css", "theme-light.css"))
    raise FileNotFoundError("nbconvert's lab template (static/index.css) is not installed")


def write_shared_css(report_dir: Path) -> Path:
    """Write ``notebook.css`` into the report folder unless it is already there with the same text."""
    path = report_dir / SHARED_CSS
    text = lab_css() + EXTRA_CSS
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        write_text(path, text)
    return path


def prepare_page(executed: Path) -> Any:
    """The executed notebook with saved figures linked (also rewritten on disk), after writing the shared CSS.

    Called by ``export_html`` before it renders the page.
    """
    import nbformat

    nb = nbformat.read(str(executed), as_version=4)
    if link_saved_figures(nb, executed.parent):
        write_text(executed, nbformat.writes(nb))
    drop_orphan_lines(nb)
    write_shared_css(executed.parent)
    return nb


TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"

NOISE_TEXT = (
    r"cuInit|cuda_|cudart_stub|NodeDef|TqdmWarning|oneDNN custom operations|Unable to register cu|computation placer|"
    r"TF-TRT|rebuild TensorFlow with the appropriate compiler flags|This TensorFlow binary is optimized"
)
"""Words of TensorFlow/CUDA start-up notes: no GPU here, which CPU kernels run; nothing about the study."""

NOISE_LINE = re.compile(
    r"^\s*(?:[EWIF]\d{4} \d\d:\d\d:\d\d|WARNING: All log messages before absl|"
    rf"WARNING:absl|WARNING:tensorflow|absl::|.*(?:{NOISE_TEXT}))"
)
"""A stderr line from TensorFlow/absl/CUDA start-up or tqdm, not from the study."""


def _clean_stderr(text: str) -> str:
    """``text`` without library log lines and progress-bar redraws (``\\r``-overwritten lines)."""
    kept = []
    for line in text.split("\n"):
        if "\r" in line or NOISE_LINE.match(line):
            continue
        kept.append(line)
    return "\n".join(kept) + ("\n" if kept else "")


def clean_outputs(nb: Any) -> Any:
    """Drop TensorFlow/absl log lines and tqdm blocks from a notebook's stderr outputs (in place)."""
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        outputs = []
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                out["text"] = _clean_stderr(out.get("text", ""))
                if not out["text"].strip():
                    continue
            outputs.append(out)
        cell["outputs"] = outputs
    return nb


def export_html(executed: Path, html: Path) -> None:
    """Export an executed notebook to offline HTML atomically.

    Saved figures are linked and the style sheet shared (``ctslib.report.pages``); nothing is loaded from a CDN
    (the ``notebook`` template in ``TEMPLATES_DIR`` drops require.js, MathJax and Mermaid); stderr noise
    from TensorFlow, absl and tqdm is removed; the page links back to ``index.html``.
    """
    from nbconvert import HTMLExporter

    nb = clean_outputs(prepare_page(executed))  # saved figures linked, shared CSS written (ctslib.report.pages)
    exporter = HTMLExporter(template_name="notebook", extra_template_basedirs=[str(TEMPLATES_DIR)])
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": executed.stem}})
    write_text(html, body)
