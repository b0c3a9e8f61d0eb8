"""Kill-and-resume, determinism and privacy on a crafted 'real' data folder (smoke profile).

The crafted folder is the smoke synthetic dataset with participant ids replaced by identifying
strings (order preserved, so pseudonyms are the same) and no generator ground truth. One run is
SIGKILLed during stage 03 and then resumed; its outputs must equal the uninterrupted smoke run byte
for byte, and no original identifier may appear anywhere in its report folder.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from ctslib.common.paths import PROJECT_ROOT, SYNTHETIC_ROOT, RunPaths

pytestmark = pytest.mark.notebooks

IDENTIFIER = "DOE-JANE-19650412-"


def craft_identified_copy(synthetic: Path, target: Path) -> list[str]:
    """Copy a synthetic dataset, renaming S001... to identifying ids; returns the new ids."""
    cohort = pd.read_csv(synthetic / "cohort.csv", dtype={"participant_id": str})
    mapping = {sid: f"{IDENTIFIER}{sid}" for sid in cohort["participant_id"].unique()}
    (target / "videos").mkdir(parents=True)
    (target / "masks").mkdir()
    cohort.assign(participant_id=cohort["participant_id"].map(mapping)).to_csv(target / "cohort.csv", index=False)
    for folder in ("videos", "masks"):
        for f in (synthetic / folder).iterdir():
            sid = f.name.split("_")[0]
            shutil.copyfile(f, target / folder / f.name.replace(sid, mapping[sid], 1))
    acquisition = json.loads((synthetic / "acquisition.json").read_text())
    acquisition["source"] = "real"
    (target / "acquisition.json").write_text(json.dumps(acquisition))
    return list(mapping.values())


def _run(paths: RunPaths, data: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "run_all.py"), "--no-progress", "--profile", "smoke", "--data", str(data),
         "--work", str(paths.work), "--out", str(paths.report)],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        start_new_session=True,  # one process group: the kill takes the notebook kernel with it
    )


@pytest.fixture(scope="module")
def resumed_run(smoke_run, tmp_path_factory) -> tuple[RunPaths, list[str], str]:
    smoke_run.require_ok()
    root = tmp_path_factory.mktemp("reliability")
    ids = craft_identified_copy(SYNTHETIC_ROOT / "smoke", root / "DATA")
    paths = RunPaths(work=root / "work", report=root / "report")
    proc = _run(paths, root / "DATA")
    log = []
    deadline = time.time() + 600
    for line in proc.stdout:  # type: ignore[union-attr]
        log.append(line)
        if "03_nerve_cropping: running" in line or time.time() > deadline:
            break
    time.sleep(4)  # well inside stage 03 (segmenter training)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert "03_nerve_cropping: running" in "".join(log), "".join(log)[-3000:]
    assert not (paths.stage_dir("03") / ".stamp.json").exists()
    resumed = _run(paths, root / "DATA")
    out, _ = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, out[-4000:]
    return paths, ids, out


def test_killed_run_resumes_at_the_stage_it_was_in(resumed_run) -> None:
    paths, _, log = resumed_run
    assert "01_cohort_ncs_labelling: up to date" in log and "02_frame_extraction_qc: up to date" in log
    assert "03_nerve_cropping: running" in log
    assert (paths.report / "index.html").exists()
    manifest = json.loads(paths.manifest.read_text())
    assert manifest["data"]["source"] == "real"
    assert {k for k, s in manifest["stages"].items() if s["status"] in ("ran", "skipped")} == {"01", "02", "03", "04", "05", "06"}


@pytest.mark.parametrize("relative", ["tables/table1.csv", "tables/qc_funnel.csv", "tables/csa_by_grade.csv"])
def test_same_seed_gives_byte_identical_tables(resumed_run, smoke_run, relative) -> None:
    paths, _, _ = resumed_run
    assert (paths.report / relative).read_bytes() == (smoke_run.paths.report / relative).read_bytes()


def test_same_seed_gives_byte_identical_crop_list(resumed_run, smoke_run) -> None:
    paths, _, _ = resumed_run
    assert paths.crops_csv.read_bytes() == smoke_run.paths.crops_csv.read_bytes()


def test_model_metrics_are_identical_on_cpu(resumed_run, smoke_run) -> None:
    paths, _, _ = resumed_run
    for plane in ("transverse", "longitudinal"):
        assert paths.history_csv(plane).read_bytes() == smoke_run.paths.history_csv(plane).read_bytes()


def test_no_original_identifier_reaches_the_report(resumed_run) -> None:
    paths, ids, _ = resumed_run
    leaks = []
    for f in paths.report.rglob("*"):
        if f.is_file():
            text = f.read_bytes().decode("utf-8", errors="ignore")
            if IDENTIFIER in text or any(i in text for i in ids) or IDENTIFIER in f.name:
                leaks.append(f.name)
    assert not leaks, f"original identifiers in report files: {leaks}"
    id_map = pd.read_csv(paths.id_map_csv)
    assert set(id_map["source_id"]) == set(ids)  # the mapping exists, privately, in the work folder
