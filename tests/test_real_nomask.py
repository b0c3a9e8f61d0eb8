"""The whole study on real pixels with no nerve masks: the shipped segmenter finds the nerves.

A small data folder is built inside the test from the usgra-seg *test* images (real B-mode
ultrasound the shipped segmenter never saw): 8 participants, 12 wrists covering the four NCS
grades, a short transverse and longitudinal video per wrist (one image per video, shifted a few
pixels and with fresh noise in every frame), ``acquisition.json`` with source "real", and no
``masks/`` folder. Every stage runs on the smoke profile. The true usgra-seg masks, moved with the
same shifts, stay in the test: they check where the crops were centred.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from ctslib.common.io import read_records, read_report_warnings
from ctslib.common.paths import USGRA_SEG_DIR, RunPaths
from ctslib.common.seed import rng
from ctslib.data.images import read_gray, read_mask
from ctslib.data.usgra import USGRA_NERVE_LABEL, usgra_pairs

from conftest import requires_usgra, run_all

pytestmark = [pytest.mark.notebooks, pytest.mark.realdata, requires_usgra]

FPS = 5.0          # the pipeline extracts 5 fps: one video frame = one extracted frame
N_FRAMES = 6       # frames per video
SIDE = 256         # stored video size (square; stage 02 resizes to the profile's FRAME_SIZE)
SPACING_MM = 0.15  # pixel spacing of the stored video (about 38 mm depth)

# participant, side, grade; NCS values that grade as written (ctslib.data.ncs, default limits)
WRISTS = [
    ("S01", "L", "normal"), ("S01", "R", "mild"), ("S02", "R", "moderate"), ("S03", "L", "severe"),
    ("S04", "L", "normal"), ("S04", "R", "severe"), ("S05", "R", "mild"), ("S06", "L", "moderate"),
    ("S07", "L", "normal"), ("S07", "R", "moderate"), ("S08", "R", "mild"), ("S08", "L", "severe"),
]
NCS = {  # dml_ms, sncv_ms, snap_uv
    "normal": (3.4, 55.0, 25.0), "mild": (3.7, 42.0, 20.0),
    "moderate": (5.0, 38.0, 18.0), "severe": (7.2, 30.0, 8.0),
}


def shifted(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """``image`` moved by (dx, dy) pixels, edges replicated (a probe sliding a little)."""
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, matrix, image.shape[::-1], flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)


def build_real_folder(root: Path, seed: int = 0) -> dict[str, tuple[np.ndarray, list[tuple[int, int]]]]:
    """Write DATA/ (no masks/); return {video stem: (true nerve mask at SIDE px, per-frame shifts)}."""
    images, masks = usgra_pairs(USGRA_SEG_DIR, "test")
    (root / "videos").mkdir(parents=True)
    cohort = []
    truth = {}
    gen = rng(seed, "real-nomask")
    for k, (pid, side, grade) in enumerate(WRISTS):
        dml, sncv, snap = NCS[grade]
        number = int(pid[1:])  # one sex and age per participant, whichever wrist
        cohort.append({"participant_id": pid, "side": side, "sex": "F" if number % 3 else "M", "age": 40 + 3 * number,
                       "dominant_hand": "R", "dml_ms": dml, "sncv_ms": sncv, "snap_uv": snap})
        for p, plane in enumerate(("transverse", "longitudinal")):
            pick = (2 * k + p) % len(images)
            image = cv2.resize(read_gray(images[pick]), (SIDE, SIDE), interpolation=cv2.INTER_AREA)
            true = cv2.resize(read_mask(masks[pick], USGRA_NERVE_LABEL), (SIDE, SIDE),
                              interpolation=cv2.INTER_NEAREST)
            stem = f"{pid}_{side}_{plane}"
            writer = cv2.VideoWriter(str(root / "videos" / f"{stem}.avi"), cv2.VideoWriter_fourcc(*"MJPG"), FPS,
                                     (SIDE, SIDE), isColor=False)
            shifts = []
            for _ in range(N_FRAMES):
                dx, dy = (int(v) for v in gen.integers(-4, 5, 2))
                noisy = shifted(image, dx, dy).astype(np.float32) + gen.normal(0, 4, image.shape)
                writer.write(np.clip(noisy, 0, 255).astype(np.uint8))
                shifts.append((dx, dy))
            writer.release()
            truth[stem] = (true, shifts)
    pd.DataFrame(cohort).to_csv(root / "cohort.csv", index=False)
    acquisition = {"source": "real", "probe": "Mindray L14-6Ns (usgra-seg test images)",
                   "pixel_spacing_mm": [SPACING_MM, SPACING_MM], "fps": FPS}
    (root / "acquisition.json").write_text(json.dumps(acquisition))
    return truth


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> tuple[RunPaths, dict, str, int]:
    root = tmp_path_factory.mktemp("real-nomask")
    truth = build_real_folder(root / "DATA")
    assert not (root / "DATA" / "masks").exists()
    paths = RunPaths(work=root / "work", report=root / "report")
    proc = run_all("--profile", "smoke", "--data", str(root / "DATA"), "--run", "real-nomask",
                   "--work", str(paths.work), "--out", str(paths.report), timeout=900)
    return paths, truth, proc.stdout + proc.stderr, proc.returncode


def test_every_stage_runs_on_real_videos_without_masks(real_run) -> None:
    paths, _, log, returncode = real_run
    assert returncode == 0, log[-4000:]
    manifest = json.loads(paths.manifest.read_text())
    assert manifest["data"]["source"] == "real"
    done = {k for k, s in manifest["stages"].items() if s["status"] in ("ran", "skipped")}
    assert {"01", "02", "03", "04", "05", "06"} <= done
    assert (paths.report / "index.html").exists()
    assert (paths.tables / "table2.csv").exists()


def test_stage_03_used_the_shipped_model_pretrained_not_fine_tuned(real_run) -> None:
    paths, _, log, returncode = real_run
    assert returncode == 0, log[-4000:]
    rec = read_records(paths.records("03"))
    assert rec["seg_mode"] == "pretrained"
    assert "pretrained, not fine-tuned" in rec["seg_mode_text"]
    table = pd.read_csv(paths.tables / "segmenter.csv")
    assert "pretrained, not fine-tuned" in table.loc[0, "segmenter"]
    assert not (paths.tables / "segmentation_metrics.csv").exists()  # nothing to score without masks
    assert not (paths.tables / "segmenter_history.csv").exists()     # nothing was trained
    assert paths.segmenter.exists()


def test_crops_are_centred_on_the_real_nerves(real_run) -> None:
    """The crop centres, mapped back to the stored videos, lie on the hidden true nerve masks."""
    paths, truth, log, returncode = real_run
    assert returncode == 0, log[-4000:]
    crops = pd.read_csv(paths.crops_csv)
    frames = pd.read_csv(paths.frames_csv)
    found = crops[crops["nerve_found"].astype(bool)]
    assert len(found) >= 0.6 * len(crops) and set(found["plane"]) == {"transverse", "longitudinal"}
    for rel in found["crop_path"]:
        assert (paths.work / rel).exists()

    id_map = pd.read_csv(paths.id_map_csv, dtype=str)
    source_of = dict(zip(id_map["participant_id"], id_map["source_id"]))
    meta = frames.set_index("frame_id")
    hits = []
    for row in found.itertuples(index=False):
        frame = meta.loc[row.frame_id]
        pid, side = row.wrist_id.rsplit("_", 1)
        true, shifts = truth[f"{source_of[pid]}_{side}_{row.plane}"]
        size = cv2.imread(str(paths.frames_dir / f"{row.frame_id}.png"), cv2.IMREAD_GRAYSCALE).shape[0]
        dx, dy = shifts[int(frame["source_index"])]
        moved = shifted(true, dx, dy)
        x, y = (row.centre_x + 0.5) * SIDE / size - 0.5, (row.centre_y + 0.5) * SIDE / size - 0.5
        hits.append(bool(moved[int(round(y)), int(round(x))]))
    assert np.mean(hits) >= 0.7, f"crop centre on the true nerve in {np.mean(hits):.2f} of {len(hits)} crops"


def test_no_nerve_shares_are_tabled_and_warnings_match_them(real_run) -> None:
    paths, _, log, returncode = real_run
    assert returncode == 0, log[-4000:]
    by_video = pd.read_csv(paths.tables / "crop_funnel_by_video.csv")
    assert len(by_video) == 2 * len(WRISTS) - int((by_video["kept_frames"] == 0).sum())
    warned = read_report_warnings(paths.report).get("03", [])
    over = by_video[by_video["no_nerve_share"] > 0.3]
    assert len(warned) == len(over)
    for row in over.itertuples(index=False):
        assert any(f"{row.wrist_id} {row.plane}" in m for m in warned)
