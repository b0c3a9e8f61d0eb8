"""No machine path and no real participant ID anywhere under ``reports/``, in successful and failed runs.

Unit tests of ``ctslib.report.privacy`` (the scrub and pseudonymise functions), then two runs: the
session's smoke report is searched byte by byte for the run's absolute folders, the project, the
Python prefix and the home folder; and a tiny real-data-layout folder whose stage 02 fails on a
corrupt mask of participant ``CTS01`` must fail with a clear message while its report names neither
``CTS01`` nor any of those folders nor the data folder.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from ctslib.common.paths import PROJECT_ROOT, RunPaths
from ctslib.report.privacy import (
    PARTICIPANT_TOKEN,
    cohort_ids,
    id_replacements,
    known_prefixes,
    pseudonymise_text,
    scrub_report,
    scrub_text,
)
from ctslib.report.index import run_folders
from ctslib.report.runner import KERNEL_DIR, injected_folders, report_prefixes, terminal_text

# -- scrub -----------------------------------------------------------------------------------------


def test_scrub_replaces_the_most_specific_folder_and_only_whole_components(tmp_path):
    work = tmp_path / "project" / "work" / "default"
    prefixes = known_prefixes(work=[work], report=[tmp_path / "project" / "reports" / "default"],
                              project=tmp_path / "project", python=[tmp_path / "venv"], home=tmp_path / "home")
    text = (f'WORK_DIR = "{work}"\n{tmp_path}/project/notebooks/04.ipynb\n{tmp_path}/venv/lib/x.py:21: TqdmWarning\n'
            f"{tmp_path}/project-old/file and {tmp_path}/home/ann.txt")
    out = scrub_text(text, prefixes)
    assert 'WORK_DIR = "<work>"' in out
    assert "<project>/notebooks/04.ipynb" in out  # the project's work folder is <work>, the rest <project>
    assert "<python>/lib/x.py:21: TqdmWarning" in out
    assert f"{tmp_path}/project-old/file" in out  # not a component of the project folder: kept
    assert "<home>/ann.txt" in out


def test_scrub_sees_links_resolved_and_escapes_placeholders_in_html(tmp_path):
    real = tmp_path / "real_venv"
    real.mkdir()
    (tmp_path / "venv").symlink_to(real)
    prefixes = known_prefixes(python=[tmp_path / "venv"], home=tmp_path / "nobody")
    assert scrub_text(f"{real}/site-packages/tqdm/auto.py", prefixes) == "<python>/site-packages/tqdm/auto.py"
    assert scrub_text(f"<pre>{tmp_path}/venv/a.py</pre>", prefixes, html=True) == "<pre>&lt;python&gt;/a.py</pre>"


def test_known_prefixes_never_include_the_file_system_root():
    prefixes = known_prefixes(work=[Path("/")], python=[], home=Path("/"))
    assert all(prefix != "/" for prefix, _ in prefixes)
    assert scrub_text("/usr/lib and /tmp", prefixes) == "/usr/lib and /tmp"


# -- pseudonymise ----------------------------------------------------------------------------------


def test_pseudonymise_replaces_ids_in_video_names_and_sentences_but_not_inside_other_words():
    ids = {"CTS01": "P001", "CTS012": "P002"}
    text = "masks/CTS01_L_transverse/0.png; wrist CTS012 R; XCTS01 and CTS01b stay"
    assert pseudonymise_text(text, ids) == "masks/P001_L_transverse/0.png; wrist P002 R; XCTS01 and CTS01b stay"


def test_short_and_numeric_ids_are_replaced_only_in_video_names():
    ids = {"7": "P002", "12": "P001"}
    text = "cohort.csv, row 7: videos/12_R_longitudinal.avi and 7_l_Transverse; 12 frames"
    assert pseudonymise_text(text, ids) == "cohort.csv, row 7: videos/P001_R_longitudinal.avi and P002_l_Transverse; 12 frames"


def test_id_replacements_use_the_id_map_and_a_neutral_token_for_ids_without_pseudonym(tmp_path):
    (tmp_path / "cohort.csv").write_text("\ufeffparticipant_id;side\nCTS02;L\nCTS01;R\nNEW9;L\n;\n", encoding="utf-8")
    assert cohort_ids(tmp_path / "cohort.csv") == ["CTS01", "CTS02", "NEW9"]
    (tmp_path / "id_map.csv").write_text("participant_id,source_id\nP001,CTS01\nP002,CTS02\n")
    ids = id_replacements(tmp_path / "id_map.csv", tmp_path / "cohort.csv")
    assert ids == {"CTS01": "P001", "CTS02": "P002", "NEW9": PARTICIPANT_TOKEN}
    assert id_replacements(tmp_path / "missing.csv", tmp_path / "cohort.csv")["CTS01"] == PARTICIPANT_TOKEN
    assert cohort_ids(tmp_path / "nothing.csv") == []


def test_scrub_report_rewrites_text_files_and_pseudonymises_only_the_chosen_ones(tmp_path):
    report, work = tmp_path / "report", tmp_path / "work"
    (report / "tables").mkdir(parents=True)
    (report / "tables" / "t.csv").write_text(f"path\n{work}/01/x.png\nCTS01\n")
    (report / "02_frame_extraction_qc.ipynb").write_text(json.dumps({"text": f"{work}/masks/CTS01_L_transverse"}))
    (report / "figures").mkdir()
    png = b"\x89PNG\r\n\x1a\n" + str(work).encode()
    (report / "figures" / "f.png").write_bytes(png)
    prefixes = known_prefixes(work=[work], report=[report], python=[], home=tmp_path / "nobody")
    changed = scrub_report(report, prefixes, replacements={"CTS01": "P001"},
                           pseudonymise=["02_frame_extraction_qc.ipynb"])
    assert sorted(p.name for p in changed) == ["02_frame_extraction_qc.ipynb", "t.csv"]
    assert (report / "tables" / "t.csv").read_text() == "path\n<work>/01/x.png\nCTS01\n"  # stages pseudonymise their own
    assert json.loads((report / "02_frame_extraction_qc.ipynb").read_text()) == {"text": "<work>/masks/P001_L_transverse"}
    assert (report / "figures" / "f.png").read_bytes() == png  # binary figures are left alone
    (report / "02_frame_extraction_qc.html").write_text("<pre>masks/NEW9_L_transverse</pre>")
    scrub_report(report, prefixes, replacements={"NEW9": PARTICIPANT_TOKEN}, pseudonymise=["02_frame_extraction_qc.html"])
    assert (report / "02_frame_extraction_qc.html").read_text() == "<pre>masks/&lt;participant&gt;_L_transverse</pre>"


# -- what the runner injects and records -------------------------------------------------------------


def test_injected_folders_are_run_relative_links_and_the_manifest_names_no_machine_path(tmp_path):
    data = tmp_path / "Clinic_Doe_Jane" / "DATA"
    data.mkdir(parents=True)
    paths = RunPaths(work=tmp_path / "w", report=tmp_path / "r")
    injected = injected_folders(paths, data, synthetic=False)
    assert injected == {"DATA_DIR": "input_data", "WORK_DIR": "work", "REPORT_DIR": "report"}
    run_dir = paths.work / KERNEL_DIR
    for name, target in (("DATA_DIR", data), ("WORK_DIR", paths.work), ("REPORT_DIR", paths.report)):
        assert (run_dir / injected[name]).resolve() == target.resolve()
    assert run_folders(paths, data) == {"DATA_DIR": "<data folder DATA>", "WORK_DIR": "<work>", "REPORT_DIR": "<report>"}
    inside = RunPaths(work=PROJECT_ROOT / "work" / "x", report=PROJECT_ROOT / "reports" / "x")
    assert run_folders(inside, PROJECT_ROOT / "data" / "synthetic" / "smoke") == {
        "DATA_DIR": "data/synthetic/smoke", "WORK_DIR": "work/x", "REPORT_DIR": "reports/x"}
    link_path = f"{run_dir / 'input_data'}/masks/CTS01_L_transverse/0.png"
    assert scrub_text(link_path, report_prefixes(paths, data)) == "<data>/masks/CTS01_L_transverse/0.png"
    assert terminal_text(link_path, paths, data) == f"{data}/masks/CTS01_L_transverse/0.png"


def test_synthetic_data_keeps_its_folder_name_through_the_link(tmp_path):
    data = tmp_path / "synthetic" / "smoke"  # not generated yet: stage 00 writes it through the link
    paths = RunPaths(work=tmp_path / "w", report=tmp_path / "r")
    value = injected_folders(paths, data, synthetic=True)["DATA_DIR"]
    assert value == "data/smoke"
    assert os.path.realpath(paths.work / KERNEL_DIR / value) == os.path.realpath(data)


# -- whole runs ------------------------------------------------------------------------------------


def forbidden_strings(paths: RunPaths, *extra: Path) -> dict[str, str]:
    """Absolute folders that must not appear in a report, each as given and with links resolved."""
    folders = {"work": paths.work, "report": paths.report, "project": PROJECT_ROOT, "python": Path(sys.prefix),
               "home": Path.home(), **{f"extra{i}": p for i, p in enumerate(extra)}}
    out = {}
    for name, folder in folders.items():
        for variant in {str(folder), os.path.realpath(folder)}:
            out[variant] = name
    return out


def leaks(report: Path, needles: dict[str, str]) -> list[str]:
    """``file: what`` for every file under ``report`` whose bytes contain one of ``needles``."""
    found = []
    for path in sorted(p for p in report.rglob("*") if p.is_file()):
        content = path.read_bytes()
        found += [f"{path.relative_to(report)}: {what} ({needle})" for needle, what in needles.items()
                  if needle.encode() in content]
    return found


@pytest.mark.notebooks
def test_smoke_report_holds_no_machine_path(smoke_run):
    smoke_run.require_ok()
    report = smoke_run.paths.report
    assert len([p for p in report.rglob("*") if p.is_file()]) > 20
    assert leaks(report, forbidden_strings(smoke_run.paths)) == []
    executed = json.loads((report / "01_cohort_ncs_labelling.ipynb").read_text(encoding="utf-8"))
    injected = next(c for c in executed["cells"] if "injected-parameters" in c["metadata"].get("tags", []))
    assert 'WORK_DIR = "work"' in "".join(injected["source"])
    effective = smoke_run.manifest["effective_parameters"]["01"]
    assert effective["WORK_DIR"] == "<work>" and effective["REPORT_DIR"] == "<report>"
    assert effective["DATA_DIR"] == "data/synthetic/smoke"


CORRUPT_COHORT = (
    "participant_id,side,sex,age,dominant_hand,dml_ms,sncv_ms,snap_uv\n"
    "CTS01,L,F,50,R,3.5,55,30\n"
    "CTS01,R,F,50,R,4.8,40,10\n"
    "CTS02,L,M,61,L,7.2,30,8\n"
)


def write_folder_with_corrupt_mask(root: Path) -> Path:
    """A real-data layout (two participants, three wrists, 6-frame videos) with one unreadable mask."""
    from test_validate import write_avi, write_png

    (root / "videos").mkdir(parents=True)
    (root / "cohort.csv").write_text(CORRUPT_COHORT)
    (root / "acquisition.json").write_text(json.dumps({"source": "real", "pixel_spacing_mm": [0.1, 0.1], "fps": 10}))
    for pid, side in (("CTS01", "L"), ("CTS01", "R"), ("CTS02", "L")):
        for plane in ("transverse", "longitudinal"):
            write_avi(root / "videos" / f"{pid}_{side}_{plane}.avi")
    write_png(root / "masks" / "CTS01_R_transverse" / "0.png", np.zeros((30, 40), np.uint8))
    (root / "masks" / "CTS01_L_transverse").mkdir(parents=True)
    (root / "masks" / "CTS01_L_transverse" / "0.png").write_bytes(b"not a PNG: truncated export")
    return root


@pytest.mark.notebooks
def test_failed_run_reports_neither_real_ids_nor_machine_paths(tmp_path):
    from conftest import run_all

    data = write_folder_with_corrupt_mask(tmp_path / "Clinic_Doe_Jane" / "DATA")
    paths = RunPaths(work=tmp_path / "work", report=tmp_path / "report")
    proc = run_all("--profile", "smoke", "--data", str(data), "--work", str(paths.work), "--out", str(paths.report),
                   "--only", "01", "02", timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 1, log[-3000:]
    # the terminal names the user's own file; the report the pseudonymised wrist under <data>
    assert f"{data}/masks/CTS01_L_transverse/0.png" in proc.stdout, log[-3000:]
    assert "Stage 02 (02_frame_extraction_qc) failed: InputError: <data>/masks/P001_L_transverse/0.png: mask cannot be read" \
        in proc.stderr, proc.stderr[-3000:]
    manifest = json.loads(paths.manifest.read_text(encoding="utf-8"))
    assert manifest["stages"]["02"]["status"] == "failed"
    assert manifest["stages"]["02"]["error"].startswith("InputError: <data>/masks/P001_L_transverse/0.png: mask cannot")
    assert (paths.report / "02_frame_extraction_qc.html").exists()  # the traceback, readable
    needles = forbidden_strings(paths, data, tmp_path / "Clinic_Doe_Jane")
    needles.update({"CTS01": "real participant id", "CTS02": "real participant id", "Clinic_Doe_Jane": "data path"})
    assert leaks(paths.report, needles) == []
    index = (paths.report / "index.html").read_text(encoding="utf-8")
    assert "&lt;data&gt;/masks/P001_L_transverse/0.png" in index


def test_warnings_name_their_source_below_its_package_root():
    import warnings

    from ctslib.common import io
    from ctslib.evaluate import tables

    assert warnings.formatwarning is io.format_warning
    text = warnings.formatwarning("no severe wrist", UserWarning, tables.__file__, 3)
    assert text.startswith("ctslib/evaluate/tables.py:3: UserWarning: no severe wrist\n")
    assert str(PROJECT_ROOT) not in text
    assert io.source_name("/nowhere/at/all/x.py") == "x.py"


def test_shared_folders_outside_the_project_get_their_own_placeholder(tmp_path):
    shared = tmp_path / "shared" / "data" / "real" / "usgra-seg"
    prefixes = known_prefixes(project=tmp_path / "main", python=[], home=tmp_path / "nobody",
                              shared=[(shared, "<usgra-seg>")])
    assert scrub_text(f"read {shared}/dataset/test/7.png", prefixes) == "read <usgra-seg>/dataset/test/7.png"
    assert ("<usgra-seg>" in {word for _, word in report_prefixes(
        RunPaths(work=tmp_path / "w", report=tmp_path / "r"), tmp_path / "d")})
