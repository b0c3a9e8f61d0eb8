"""The report folder's ``index.html`` and ``manifest.json``.

The index (rendered from ``ctslib/report/templates/index.html.j2`` with Jinja2) opens with the verdict:
the paper's accuracy beside ours on the paper's frame split and on new participants (grouped CV),
the CSA baseline, the sanity flags and the deviations from the paper's recipe; then every warning a
stage recorded, a table of contents, the stages, the paper's named outputs (Table 1, Figures 2-3,
Table 2, Figure 4) and every table and figure by stage, in the study's order.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import platform
import re
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from ctslib.common.display import CV_BAND_READING, GRADCAM_READING, SYNTHETIC_NOTE, format_number, is_metric, shown_value
from ctslib.common.errors import InputError
from ctslib.data.acquisition import read_acquisition
from ctslib.common.io import read_records, read_report_warnings, write_json, write_text
from ctslib.common.machine import cpu_info, machine_line
from ctslib.common.paths import MODEL_STAGES, NOTEBOOKS_DIR, PROJECT_ROOT, STAGES, RunPaths
from ctslib.frames.prepare import FRAME_SIZE
from ctslib.report.pages import TEMPLATES_DIR
from ctslib.report.runner import StageResult
from ctslib.severity.recipe import DROPOUT, PAPER_RECIPE

PAPER_OUTPUTS: dict[str, str] = {
    "tables/table1.csv": "Table 1 - participants and NCS diagnoses",
    "figures/figure2.png": "Figure 2 - transverse model: loss and accuracy per epoch",
    "figures/figure3.png": "Figure 3 - longitudinal model: loss and accuracy per epoch",
    "tables/table2.csv": "Table 2 - accuracy and class-wise precision",
    "figures/figure4.png": "Figure 4 - confusion matrices",
    "figures/figure4_cv.png": "Beside Figure 4: confusion matrices on new participants (grouped CV; grouped split without CV)",
}

FIGURE_TITLES: dict[str, str] = {
    "figure2_grouped": "Transverse model on the participant-grouped split: loss and accuracy per epoch",
    "figure2_cv": "Transverse model, grouped cross-validation folds: loss and accuracy per epoch",
    "figure3_grouped": "Longitudinal model on the participant-grouped split: loss and accuracy per epoch",
    "figure3_cv": "Longitudinal model, grouped cross-validation folds: loss and accuracy per epoch",
    "leakage": "Accuracy by split policy, with chance and majority-class rates, and the leakage gap",
    "gradcam": "Grad-CAM saliency of the models trained on the grouped split",
}
"""Headings of figures that have no caption file (tables take theirs from the Markdown caption)."""

FIGURE_NOTES: dict[str, str] = {"gradcam": GRADCAM_READING, "figure2_cv": CV_BAND_READING, "figure3_cv": CV_BAND_READING}
"""What to read from a figure, shown under its heading on the index."""

def redact_data_path(command: list[str]) -> list[str]:
    """A run_all command line with the ``--data`` folder reduced to its name (a path can name a patient or a clinic)."""
    out, hide_next = [], False
    for arg in command:
        if hide_next:
            out.append(f"<data folder {Path(arg).name}>")
            hide_next = False
        elif arg == "--data":
            out.append(arg)
            hide_next = True
        elif arg.startswith("--data="):
            out.append(f"--data=<data folder {Path(arg.split('=', 1)[1]).name}>")
        else:
            out.append(arg)
    return out


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


def now_iso(timestamp: float | None = None) -> str:
    """A timestamp with its time zone, e.g. ``2026-12-02T05:10:00+00:00``."""
    moment = datetime.datetime.fromtimestamp(timestamp if timestamp is not None else datetime.datetime.now().timestamp())
    return moment.astimezone().isoformat(timespec="seconds")


def shown_folder(folder: Path, placeholder: str) -> str:
    """A run folder for the record: relative to the project when inside it, else its placeholder."""
    try:
        return Path(folder).resolve().relative_to(PROJECT_ROOT).as_posix()
    except ValueError:
        return placeholder


def run_folders(paths: RunPaths, data_dir: Path) -> dict[str, str]:
    """The folders a run's stages read and wrote, as a reader may see them (never a machine path).

    Inside the project they are project-relative (``work/default``); elsewhere ``<work>``, ``<report>``
    and ``<data folder NAME>``, the form ``redact_data_path`` uses on the command line.
    """
    data = shown_folder(data_dir, f"<data folder {Path(data_dir).name}>")
    return {"DATA_DIR": data, "WORK_DIR": shown_folder(paths.work, "<work>"),
            "REPORT_DIR": shown_folder(paths.report, "<report>")}


def effective_parameters(key: str, injected: dict[str, Any], folders: dict[str, str] | None = None) -> dict[str, Any]:
    """Every parameter a stage ran with: its notebook's declared defaults overridden by what was injected.

    ``folders`` (``run_folders``) replaces the notebooks' JupyterLab defaults of the run folders, which
    are not what the run used.
    """
    import ast

    from ctslib.report.runner import declared_parameters

    declared = {}
    for name, spec in declared_parameters(NOTEBOOKS_DIR / STAGES[key]).items():
        try:
            declared[name] = ast.literal_eval(spec.get("default", "None"))
        except (ValueError, SyntaxError):
            declared[name] = spec.get("default")
    return {**declared, **{k: v for k, v in {**(folders or {}), **injected}.items() if k in declared}}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def output_hashes(paths: RunPaths) -> dict[str, str]:
    """sha256 of every report table and figure and every saved model, by path (report- or work-relative)."""
    hashes = {}
    for folder in (paths.tables, paths.figures):
        if folder.exists():
            for f in sorted(folder.iterdir()):
                if f.is_file() and not f.name.startswith("."):
                    hashes[f.relative_to(paths.report).as_posix()] = _sha256(f)
    if paths.work.exists():
        for f in sorted(paths.work.glob("*/**/*.keras")):
            hashes["work/" + f.relative_to(paths.work).as_posix()] = _sha256(f)
    return hashes


def deviations(effective: dict[str, dict[str, Any]]) -> list[str]:
    """This run's departures from the paper's stated recipe, in words, from the effective parameters."""
    out = []
    for plane, key in MODEL_STAGES.items():
        params = effective.get(key)
        if not params:
            continue
        paper = PAPER_RECIPE[plane]
        if params.get("EPOCHS") != paper.epochs:
            out.append(f"{plane} model: {params.get('EPOCHS')} epochs (paper: {paper.epochs})")
        if params.get("BATCH_SIZE") != paper.batch_size:
            out.append(f"{plane} model: batch {params.get('BATCH_SIZE')} (paper: {paper.batch_size})")
        if "DROPOUT" in params:
            rates = params["DROPOUT"] if isinstance(params["DROPOUT"], list) else [params["DROPOUT"]] * len(paper.dropout)
            if [float(r) for r in rates] != paper.dropout:
                out.append(f"{plane} model: dropout {rates} after the dense layers (paper: {DROPOUT} after each)")
        if params.get("LEARNING_RATE") not in (None, 0.001):
            out.append(f"{plane} model: Adam learning rate {params['LEARNING_RATE']} (paper silent; Keras default 0.001)")
        if params.get("INPUT_SIZE"):
            crop_size = effective.get("03", {}).get("CROP_SIZE")
            size = params["INPUT_SIZE"]
            crops = (f"nerve-centred {crop_size} px crops shrunk to {size} px" if crop_size and crop_size != size
                     else f"{size} px nerve-centred crops")
            out.append(f"{plane} model: {crops} as input (paper: crop size not stated)")
        if params.get("CV_FOLDS"):
            out.append(f"{plane} model: also trained on a participant-grouped split and {params['CV_FOLDS']} grouped "
                       "CV folds (not in the paper)")
        if params.get("SEEDS", 1) and int(params.get("SEEDS", 1)) > 1:
            out.append(f"{plane} model: every split trained with {params['SEEDS']} seeds (training variance)")
    crop = effective.get("03", {})
    if crop.get("CROP_SIZE"):
        out.append(f"crops of {crop['CROP_SIZE']} px around the nerve found by our own U-Net (the paper's segmenter "
                   "is not published)")
    frames = effective.get("02", {})
    if frames.get("FRAME_SIZE") not in (None, FRAME_SIZE):
        out.append(f"frames of {frames['FRAME_SIZE']} px (paper: {FRAME_SIZE})")
    return out


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
    """Everything needed to say what produced this report (``git``: the commit read at start).

    ``parameters`` are the profile's injected values per stage; ``effective_parameters`` adds every
    default the notebooks declared, so each stage's full parameter set is on record.
    """
    result_list = list(results)
    records = {r.key: read_records(paths.records(r.key)) for r in result_list}
    effective = {}
    for r in result_list:
        try:
            effective[r.key] = effective_parameters(r.key, parameters.get(r.key, {}), run_folders(paths, data_dir))
        except Exception as err:  # a notebook that cannot be inspected must not lose the manifest
            effective[r.key] = {"error": f"{type(err).__name__}: {err}"}
    device = next((rec.get("tensorflow_device") for rec in records.values() if rec.get("tensorflow_device")), None)
    try:
        source = read_acquisition(data_dir).source
    except InputError:  # the manifest is written even when a stage stopped on that file
        source = "unknown"
    return {
        "profile": profile,
        "seed": next((p.get("SEED") for p in parameters.values() if "SEED" in p), None),
        "command": redact_data_path([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else [],
        # the folder's name and content hash, never its path (a path can name a patient or a clinic)
        "data": {"name": Path(data_dir).name, "source": source, "sha256": data_hash},
        "parameters": parameters,
        "effective_parameters": effective,
        "deviations_from_paper": deviations(effective),
        "stages": {r.key: {k: v for k, v in asdict(r).items() if k != "key"} for r in result_list},
        "records": records,
        "outputs_sha256": output_hashes(paths),
        "git": git or git_commit(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": cpu_info(),
        "tensorflow_device": device,
        "packages": package_versions(),
        "started": now_iso(started),
        "finished": now_iso(),
        "wall_seconds": round(time.time() - started, 1),
    }


# ----------------------------------------------------------------------------- index page


LONG_TABLE_ROWS = 15
"""Tables with more rows than this are folded on the index (``<details>``), with their row count."""


def format_cell(value: Any, *, column_is_int: bool = False, never_predicted: bool = False, name: str = "") -> str:
    """A table cell for a reader by the report's one rounding rule (``ctslib.common.display.format_number``).

    A column whose name starts with "paper" holds the paper's values: they keep the paper's digits.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return format_number(value, name=name, integer=column_is_int, paper=name.lower().startswith("paper"),
                         nan="never predicted" if never_predicted else "–")


def shown_record(value: Any, name: str = "") -> str:
    """A recorded headline number for a reader, by the same rule (also inside lists and dicts)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return format_number(value, name=name)  # records name splits ("paper_..."), not the paper's values
    return json.dumps(shown_value(value, name), ensure_ascii=False)


def table_rows(csv_path: Path, max_rows: int = 60) -> tuple[list[str], list[list[str]], int]:
    """Header, formatted rows (at most ``max_rows``) and total row count of a report CSV."""
    df = pd.read_csv(csv_path)
    header = [str(c) for c in df.columns]
    int_columns = {c for c in df.columns if pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])
                   and df[c].notna().any() and df[c].dropna().apply(lambda v: float(v).is_integer()).all()
                   and not is_metric(str(c)) and not str(c).lower().startswith("paper")}
    rows = []
    for _, row in df.head(max_rows).iterrows():
        precision_row = str(row.get("metric", "")).startswith("precision_")
        rows.append([format_cell(row[c].item() if hasattr(row[c], "item") else row[c], column_is_int=c in int_columns,
                                 never_predicted=precision_row or str(c).startswith("precision_"), name=str(c))
                     for c in df.columns])
    return header, rows, len(df)


def caption_of(report: Path, rel: str) -> str:
    """A table's caption (first bold line of its Markdown) or a figure's title; else its file name."""
    stem = Path(rel).stem
    md = (report / rel).with_suffix(".md")
    if rel.endswith(".csv") and md.exists():
        first = md.read_text(encoding="utf-8").split("\n", 1)[0].strip()
        if first.startswith("**") and first.endswith("**"):
            return first.strip("*")
    return PAPER_OUTPUTS.get(rel) or FIGURE_TITLES.get(stem) or stem.replace("_", " ")


def output_item(report: Path, rel: str, made_by: str = "") -> dict[str, Any]:
    """What the template needs to show one table or figure."""
    kind = "figure" if rel.endswith(".png") else "table"
    # a stage often writes a table and a figure of the same name (qc_funnel): the kind keeps ids unique
    item = {"rel": rel, "name": Path(rel).stem, "id": f"{kind}-{Path(rel).stem}", "caption": caption_of(report, rel),
            "made_by": made_by, "kind": kind, "exists": (report / rel).exists(),
            "note": FIGURE_NOTES.get(Path(rel).stem, "") if kind == "figure" else "",
            "made_by_page": bool(made_by) and (report / f"{made_by}.html").exists()}
    if item["kind"] == "table" and item["exists"]:
        item["header"], item["rows"], item["n_rows"] = table_rows(report / rel)
        item["md"] = Path(rel).with_suffix(".md").as_posix() if (report / rel).with_suffix(".md").exists() else None
    return item


WARNING_KINDS: tuple[tuple[str, str, str], ...] = (
    ("lost_plane", r"^(?P<video>\S+) (?P<plane>transverse|longitudinal): no nerve found in any of its",
     "{n} wrist(s) lost their {planes} plane: no nerve was found in any kept frame, so those videos give no crops"),
    ("few_nerves", r"^\S+ (?:transverse|longitudinal): no nerve found in \d+ of",
     "{n} video(s) with no nerve found in a large share of their kept frames: fewer crops for those wrists"),
    ("qc_misses", r"videos had no nerve found in over .* true masks show no nerve",
     "QC kept frames without the nerve in view; the segmenter rejected them correctly (no effect on the models)"),
    ("empty_crops", r"crops .* are cut from frames whose true mask shows no nerve",
     "{n} plane(s) train and score on crops without a nerve: those crops carry the wrist's grade on something else"),
    ("sanity", r"sanity flags failed",
     "{n} model/split result(s) failed a sanity flag: there the model did not learn, or does no better than the "
     "commonest grade (see the verdict's sanity flags)"),
    ("qc_emptied", r"QC kept (?:none|no frame)",
     "{n} participant(s) or grade(s) emptied by quality control: left out of every later stage"),
    ("skipped", r"skipped as unreadable", "{n} line(s) on unreadable videos skipped (tables/skipped_inputs)"),
    ("text", r"burned-in text found", "{n} video(s) with burned-in text inside the image, blacked out before saving"),
    ("overlay", r"coloured overlays", "{n} video(s) with coloured overlays (contours, calipers) on the image"),
    ("masks_unused", r"nerve mask\(s\) is on a frame", "{n} video(s) whose masks lie on no extracted frame (unused)"),
)
"""Kinds of stage warnings: (kind, pattern of its messages, its effect in words with ``{n}`` and ``{planes}``)."""


def warning_groups(warnings: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Stage warnings grouped by kind, each with its effect in words, in the order of ``WARNING_KINDS``.

    Messages of no known kind are kept, one group per stage ("other"), so none is ever hidden.
    """
    import re

    groups: dict[str, dict[str, Any]] = {}
    for stage, messages in sorted(warnings.items()):
        for message in messages:
            kind = next((k for k, pattern, _ in WARNING_KINDS if re.search(pattern, message)), f"other-{stage}")
            group = groups.setdefault(kind, {"kind": kind, "stages": [], "messages": [], "planes": []})
            if stage not in group["stages"]:
                group["stages"].append(stage)
            group["messages"].append(message)
            hit = re.search(r" (transverse|longitudinal): no nerve found in any", message)
            if hit and hit.group(1) not in group["planes"]:
                group["planes"].append(hit.group(1))
    effects = {k: effect for k, _, effect in WARNING_KINDS}
    order = [k for k, _, _ in WARNING_KINDS]
    out = []
    for kind in sorted(groups, key=lambda k: (order.index(k) if k in order else len(order), k)):
        group = groups[kind]
        template = effects.get(kind, "{n} other warning(s)")
        group["effect"] = template.format(n=len(group["messages"]), planes=" or ".join(group["planes"]) or "a")
        out.append(group)
    return out


BOXED_RECORDS = frozenset({"meaning", "verdict_sentence"})
"""Stage-06 records the index shows in the verdict box, so its headline-number table leaves them out."""


def lead_and_rest(text: str | None, lead_sentences: int = 2,
                  always: tuple[str, ...] = ("Against the CSA baseline",)) -> tuple[str, str]:
    """The opening of ``text`` for the first screen, and the rest (folded on the index).

    The verdict lists every paired comparison; a reader needs its opening and the comparison with the
    clinical baseline (sentences starting with one of ``always``) at once, the rest one click away.
    Sentences end at a full stop or colon followed by a space and a capital, so decimals such as 0.92
    never split one.
    """
    if not text:
        return "", ""
    sentences = re.split(r"(?<=[.:])\s+(?=[A-Z])", text.strip())
    lead = [s for i, s in enumerate(sentences) if i < lead_sentences or s.startswith(always)]
    rest = [s for i, s in enumerate(sentences) if not (i < lead_sentences or s.startswith(always))]
    return " ".join(lead), " ".join(rest)


def _status_rows(report: Path) -> list[dict[str, str]]:
    path = report / "tables" / "sanity_overview.csv"
    if not path.exists():
        return []
    return pd.read_csv(path, keep_default_na=False).to_dict("records")


def index_context(paths: RunPaths, manifest: dict[str, Any], results: Iterable[StageResult]) -> dict[str, Any]:
    """Everything the index template shows, gathered from the report folder and the manifest."""
    report = paths.report
    result_list = sorted(results, key=lambda r: r.key)
    made_by = {out: r.stem for r in result_list for out in r.outputs}
    records_06 = manifest.get("records", {}).get("06", {})
    verdict = output_item(report, "tables/verdict.csv", made_by.get("tables/verdict.csv", "")) if (
        report / "tables" / "verdict.csv").exists() else None
    stages = []
    for r in result_list:
        html_page = (report / f"{r.stem}.html").exists()
        stages.append({"stem": r.stem, "key": r.key, "status": r.status, "error": r.error, "seconds": r.seconds,
                       "peak": r.peak_rss_mb, "machine": r.machine, "html": html_page,
                       "ipynb": (report / f"{r.stem}.ipynb").exists()})
    sections = []
    for r in result_list:
        extra = [o for o in r.outputs if o not in PAPER_OUTPUTS and o != "tables/verdict.csv"
                 and (o.endswith(".csv") or o.endswith(".png"))]
        records = read_records(paths.records(r.key))
        if extra or records:
            sections.append({"stem": r.stem, "anchor": f"stage-{r.key}", "html": (report / f"{r.stem}.html").exists(),
                             "records": [(k, shown_record(v, k)) for k, v in records.items()
                                         if not (r.key == "06" and k in BOXED_RECORDS)],
                             "outputs": [output_item(report, o, r.stem) for o in extra]})
    from ctslib.evaluate.meaning import meaning_box  # here: ctslib.evaluate pulls in scikit-learn

    verdict_lead, verdict_more = lead_and_rest(records_06.get("verdict_sentence"))
    warnings = read_report_warnings(report)

    return {
        "meaning": meaning_box(records_06.get("meaning"), manifest.get("deviations_from_paper", [])),
        "manifest": manifest,
        "machine": machine_line(manifest.get("cpu", {})),
        "synthetic": manifest["data"]["source"] == "synthetic",
        "synthetic_note": SYNTHETIC_NOTE,
        "verdict": verdict,
        "verdict_sentence": records_06.get("verdict_sentence"),
        "verdict_lead": verdict_lead,
        "verdict_more": verdict_more,
        "deviations": manifest.get("deviations_from_paper", []),
        "flags": _status_rows(report),
        "warnings": warnings,
        "warning_groups": warning_groups(warnings),
        "long_table_rows": LONG_TABLE_ROWS,
        "stages": stages,
        "paper_outputs": [output_item(report, rel, made_by.get(rel, "")) for rel in PAPER_OUTPUTS],
        "sections": sections,
        "commit": str(manifest["git"].get("commit"))[:12],
    }


def build_index(paths: RunPaths, manifest: dict[str, Any], results: Iterable[StageResult]) -> str:
    """The report's index page (HTML text), rendered from ``templates/index.html.j2``."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
                             autoescape=jinja2.select_autoescape(["html", "j2"]), trim_blocks=True, lstrip_blocks=True)
    return env.get_template("index.html.j2").render(**index_context(paths, manifest, results))


def write_report(paths: RunPaths, manifest: dict[str, Any], results: Iterable[StageResult]) -> Path:
    """Write manifest.json and index.html into the report folder; returns the index path."""
    result_list = list(results)
    write_json(paths.manifest, manifest)
    index = paths.report / "index.html"
    write_text(index, build_index(paths, manifest, result_list))
    return index

