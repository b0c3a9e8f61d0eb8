"""Screen captures and scanner exports: cut to the image region, burned-in text and overlays handled.

The frames are built in the test: a moving B-mode image (crafted speckle from ``test_qc``, or real
usgra-seg pixels drifting in a hand) pasted into a scanner-like screen with a title bar, a text
panel with exam settings, a colour bar, a patient id in the title bar and an exam id burned into
the image. The whole stage-02 verb (``ctslib.frames.extraction.extract_frames``) then runs on a data
folder holding that capture as a video.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from ctslib.frames import region as R
from ctslib.data.acquisition import read_acquisition
from ctslib.frames.extraction import ExtractionSettings, emptied_warnings, extract_frames, probe_videos
from ctslib.common.paths import USGRA_SEG_DIR, DataLayout, RunPaths
from ctslib.frames.jobs import VideoJob
from conftest import requires_usgra
from test_qc import clean_video

TOP, LEFT = 40, 16  # where the image sits on the screen
TEXT_AT = (12, 236)  # (x, y) of the exam id burned into the image, in image pixels


def screen(image: np.ndarray, *, text_in_image: bool = True, contour: bool = False) -> np.ndarray:
    """One BGR screen frame: UI around ``image`` (grey, H x W), a patient id in the title bar."""
    h, w = image.shape
    canvas = np.full((h + TOP + 30, w + LEFT + 170, 3), 30, np.uint8)
    canvas[:28] = 75
    cv2.putText(canvas, "DOE^JANE 1970-01-01", (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1)
    cv2.rectangle(canvas, (w + LEFT + 40, TOP), (w + LEFT + 165, TOP + h), (55, 55, 55), -1)
    for k, line in enumerate(("GAIN 52", "DR 60", "DEPTH 3cm", "MI 0.9")):
        cv2.putText(canvas, line, (w + LEFT + 48, TOP + 30 + 30 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (230, 230, 230), 1)
    ramp = np.linspace(255, 0, h).astype(np.uint8)[:, None]
    canvas[TOP:TOP + h, w + LEFT + 12:w + LEFT + 26] = cv2.applyColorMap(ramp, cv2.COLORMAP_JET)
    picture = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if text_in_image:
        cv2.putText(picture, "EXAM 4711 JD", TEXT_AT, cv2.FONT_HERSHEY_SIMPLEX, 0.5, (250, 250, 250), 1)
    if contour:
        cv2.ellipse(picture, (w // 2, int(0.4 * h)), (40, 22), 0, 0, 360, (0, 255, 0), 1)
    canvas[TOP:TOP + h, LEFT:LEFT + w] = picture
    return canvas


def write_video(path: Path, frames: list[np.ndarray], fps: float = 10) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def capture_folder(root: Path, content: np.ndarray, **kw) -> tuple[DataLayout, VideoJob]:
    """A data folder with one transverse screen-capture video (every source frame shown twice: 10 fps)."""
    layout = DataLayout(root / "data")
    layout.videos_dir.mkdir(parents=True)
    layout.acquisition_json.write_text(json.dumps({"source": "real", "pixel_spacing_mm": [0.05, 0.05], "fps": 10}))
    frames = [screen(image, **kw) for image in content for _ in range(2)]
    write_video(layout.videos_dir / "S1_L_Transverse.avi", frames)
    h, w = content.shape[1:]
    masks = np.zeros((len(frames), *frames[0].shape[:2]), np.uint8)
    masks[:, TOP + int(0.4 * h) - 10:TOP + int(0.4 * h) + 10, LEFT + w // 2 - 20:LEFT + w // 2 + 20] = 1  # nerve box
    layout.masks_dir.mkdir()
    np.savez(layout.masks_dir / "S1_L_transverse.npz", index=np.arange(len(frames)), mask=masks)
    return layout, VideoJob("P001_L", "P001", "L", "transverse", "mild", 1, "S1_L_Transverse.avi")


def run_stage(layout: DataLayout, job: VideoJob, tmp: Path, **settings):
    paths = RunPaths(work=tmp / "work", report=tmp / "report")
    acquisition = read_acquisition(layout)
    headers, _ = probe_videos([job], layout, acquisition)
    result = extract_frames(headers, layout, acquisition, paths, ExtractionSettings(frame_size=64, **settings), progress=False)
    return result, paths


def check_capture_is_cut(result, paths: RunPaths, content: np.ndarray) -> None:
    h, w = content.shape[1:]
    row = result.regions.iloc[0]
    # the image region, give or take a pixel or two of JPEG edge (dark, echo-free rows may be left out)
    assert LEFT - 2 <= row["x0"] and TOP - 2 <= row["y0"] and row["x1"] <= LEFT + w + 2 and row["y1"] <= TOP + h + 2
    assert (row["x1"] - row["x0"]) * (row["y1"] - row["y0"]) >= 0.85 * h * w
    frames = result.frames
    region_h, region_w = row["y1"] - row["y0"], row["x1"] - row["x0"]
    assert frames["spacing_row_mm"].iloc[0] == pytest.approx(0.05 * region_h / 64)
    assert frames["spacing_col_mm"].iloc[0] == pytest.approx(0.05 * region_w / 64)
    # masks are cut like their frames: the nerve box sits at the same place of the 64-px frame
    mask = cv2.imread(str(paths.frame_masks_dir / f"{frames['frame_id'].iloc[0]}.png"), cv2.IMREAD_GRAYSCALE)
    ys, xs = np.nonzero(mask)
    assert abs(xs.mean() - (LEFT + w / 2 - row["x0"]) * 64 / region_w) < 2
    assert abs(ys.mean() - (TOP + 0.4 * h - row["y0"]) * 64 / region_h) < 2


def test_crafted_screen_capture_is_cut_to_the_image_and_text_is_blanked(tmp_path):
    content = clean_video(n=10, seed=3)
    layout, job = capture_folder(tmp_path, content)
    result, paths = run_stage(layout, job, tmp_path)
    check_capture_is_cut(result, paths, content)
    assert result.regions["text_boxes"].iloc[0] >= 1
    assert any("burned-in text found inside the image region" in w and "TEXT_BANDS is empty" in w for w in result.warnings)
    # where the exam id was, every saved frame is black; no UI (title bar, panel) reaches a frame
    row = result.regions.iloc[0]
    scale = 64 / (row["y1"] - row["y0"])
    y = int((TOP + TEXT_AT[1] - 6 - row["y0"]) * scale)
    for frame_id in result.frames["frame_id"]:
        image = cv2.imread(str(paths.frames_dir / f"{frame_id}.png"), cv2.IMREAD_GRAYSCALE)
        assert image[max(y - 1, 0):y + 2, 2:20].max() < 40


@pytest.mark.realdata
@pytest.mark.skipif(not (USGRA_SEG_DIR / "dataset" / "images").is_dir(), reason="usgra-seg data absent")
def test_real_pixel_screen_capture_is_cut_and_most_frames_kept(tmp_path):
    image = cv2.imread(str(sorted((USGRA_SEG_DIR / "dataset" / "images").glob("*.png"))[5]), cv2.IMREAD_GRAYSCALE)
    image = cv2.resize(image, (256, 256), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(5)
    content = []
    for _ in range(10):  # a hand-held probe: small drift, noise
        m = np.float32([[1, 0, rng.normal(0, 1.5)], [0, 1, rng.normal(0, 1.5)]])
        moved = cv2.warpAffine(image.astype(np.float32), m, (256, 256), borderMode=cv2.BORDER_REFLECT)
        content.append(np.clip(moved + rng.normal(0, 4, moved.shape), 0, 255).astype(np.uint8))
    content = np.stack(content)
    layout, job = capture_folder(tmp_path, content)
    result, paths = run_stage(layout, job, tmp_path)
    check_capture_is_cut(result, paths, content)
    assert result.frames["kept"].mean() >= 0.8


def test_coloured_overlays_are_reported_and_can_be_inpainted(tmp_path):
    content = clean_video(n=10, seed=4)
    layout, job = capture_folder(tmp_path, content, text_in_image=False, contour=True)
    result, _ = run_stage(layout, job, tmp_path / "a")
    assert result.regions["overlay_share"].iloc[0] >= R.OVERLAY_MIN_SHARE
    assert any("coloured overlays" in w and "OVERLAY_MASK" in w for w in result.warnings)
    masked, _ = run_stage(layout, job, tmp_path / "b", mask_overlay=True)
    assert bool(masked.regions["overlay_masked"].iloc[0])
    assert any("inpainted (OVERLAY_MASK)" in w for w in masked.warnings)


def test_overlay_mask_removes_the_contour_from_a_frame():
    gray = clean_video(n=1, seed=5)[0]
    picture = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    cv2.circle(picture, (128, 100), 30, (0, 255, 0), 2)
    mask = R.overlay_mask(picture)
    assert mask.sum() > 100 and not R.overlay_mask(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)).any()
    drawn = cv2.cvtColor(picture, cv2.COLOR_BGR2GRAY)
    cleaned = R.inpaint_overlay(drawn, mask)
    error_drawn = np.abs(drawn[mask].astype(int) - gray[mask]).mean()
    error_cleaned = np.abs(cleaned[mask].astype(int) - gray[mask]).mean()
    assert error_cleaned < 0.5 * error_drawn


def test_plain_b_mode_video_keeps_its_full_frame_and_finds_no_text():
    frames = clean_video(n=16, seed=1)
    region = R.find_region(frames)
    assert not region.is_cropped
    assert R.find_text_boxes(frames) == []


def test_dark_bottom_rows_are_not_cut_as_user_interface():
    frames = clean_video(n=16, seed=2).copy()
    frames[:, 200:] = 0  # no echo below some depth: black, still, but not UI
    assert not R.find_region(frames).is_cropped


def test_region_preview_never_shows_what_lies_outside_the_region():
    frames = [cv2.cvtColor(screen(image), cv2.COLOR_BGR2GRAY) for image in clean_video(n=8, seed=6)]
    region = R.find_region(frames)
    assert region.is_cropped
    preview = R.region_preview(np.median(np.stack(frames), axis=0).astype(np.uint8), region)
    outside = np.ones(preview.shape, bool)
    outside[region.y0:region.y1, region.x0:region.x1] = False
    assert np.unique(preview[outside]).tolist() == [90]  # flat grey: the title bar's patient id is gone


def test_single_frame_uses_texture():
    frame = cv2.cvtColor(screen(clean_video(n=1, seed=7)[0], text_in_image=False), cv2.COLOR_BGR2GRAY)
    region = R.find_region([frame])
    assert region.method == "textured area"
    assert abs(region.x0 - LEFT) <= 4 and abs(region.y0 - TOP) <= 4


def test_participant_or_grade_emptied_by_qc_is_a_warning():
    frames = pd.DataFrame({
        "participant_id": ["P001", "P001", "P002", "P002"],
        "plane": ["transverse"] * 4,
        "grade": ["mild", "mild", "severe", "severe"],
        "kept": [True, False, False, False],
    })
    warnings = emptied_warnings(frames)
    assert any(w.startswith("participant P002: QC kept none of its 2 frames") for w in warnings)
    assert any("transverse: QC kept no frame of grade 'severe'" in w for w in warnings)
    assert not any("P001" in w or "'mild'" in w for w in warnings)


def test_masks_on_no_extracted_frame_and_skipped_videos_are_warnings(tmp_path):
    content = clean_video(n=6, seed=8)
    layout, job = capture_folder(tmp_path, content, text_in_image=False)
    h, w = screen(content[0]).shape[:2]
    np.savez(layout.masks_dir / "S1_L_transverse.npz", index=np.array([1, 3]), mask=np.zeros((2, h, w), np.uint8))
    (layout.videos_dir / "S1_L_longitudinal.avi").write_bytes(b"not a video")
    broken = VideoJob("P001_L", "P001", "L", "longitudinal", "mild", 1, "S1_L_longitudinal.avi")
    paths = RunPaths(work=tmp_path / "work", report=tmp_path / "report")
    acquisition = read_acquisition(layout)
    headers, skipped = probe_videos([job, broken], layout, acquisition, skip_bad_inputs=True)
    result = extract_frames(headers, layout, acquisition, paths, ExtractionSettings(frame_size=32, skip_bad_inputs=True),
                            skipped=skipped, progress=False)
    assert any("none of its 2 nerve mask(s) is on a frame extracted at 5 fps" in w for w in result.warnings)
    assert any(w.startswith("1 video(s) skipped as unreadable") for w in result.warnings)
    assert result.skipped[["wrist_id", "plane", "step"]].values.tolist() == [["P001_L", "longitudinal", "open"]]


# -- single frames and UI columns ------------------------------------------------------------------


def column_capture(image: np.ndarray, *, level: int = 12) -> np.ndarray:
    """A grey frame: the B-mode image with a still, dark settings column right beside it (no gap),
    its text ("MI 0.8" ...) drawn by cv2.putText, and a dark band under both."""
    h, w = image.shape
    canvas = np.full((h + 20, w + 90), level, np.uint8)
    canvas[10:h + 10, :w] = image
    for k, line in enumerate(("MI 0.8", "TIs 0.1", "G 52", "D 3.0")):
        cv2.putText(canvas, line, (w + 8, 40 + 28 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.45, 220, 1)
    return canvas


def through_codec(path: Path, frames: list[np.ndarray], fourcc: str) -> np.ndarray:
    """Grey frames written as a lossy video and read back (the codec makes the UI's text flicker)."""
    h, w = frames[0].shape
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10, (w, h))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()
    capture, out = cv2.VideoCapture(str(path)), []
    while True:
        ok, frame = capture.read()
        if not ok:
            return np.stack(out)
        out.append(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))


@pytest.mark.parametrize("fourcc", ["MJPG", "mp4v"])
@pytest.mark.parametrize("level", [12, 30], ids=["black-column", "grey-column"])
def test_ui_column_beside_the_image_is_cut_off_in_a_video_and_in_one_frame(tmp_path, fourcc, level):
    content = clean_video(n=10, seed=3)
    w = content.shape[2]
    frames = through_codec(tmp_path / "capture.avi", [column_capture(image, level=level) for image in content], fourcc)
    text_x = int(np.flatnonzero((column_capture(np.zeros_like(content[0])) > 100).any(axis=0))[0])
    for found in (R.find_region(frames), R.find_region(frames[:1])):
        assert found.is_cropped, found
        assert w - 4 <= found.x1 <= text_x, found  # every pixel of "MI 0.8" ... lies outside the region
        assert found.x0 <= 2 and found.y0 <= 12 and found.y1 >= w + 8, found


def test_single_frame_screen_capture_is_cut_to_its_image(tmp_path):
    """One frame (a single-frame DICOM, a screenshot): no motion, the flat UI around the image gives it away."""
    content = clean_video(n=1, seed=3)
    h, w = content.shape[1:]
    frame = cv2.cvtColor(screen(content[0]), cv2.COLOR_BGR2GRAY)
    found = R.find_region(frame[None])
    assert found.method == "textured area"
    assert LEFT - 3 <= found.x0 and TOP - 3 <= found.y0 and found.x1 <= LEFT + w + 3 and found.y1 <= TOP + h + 3, found
    assert (found.x1 - found.x0) * (found.y1 - found.y0) >= 0.9 * h * w
    plain = R.find_region(content[:1])  # B-mode edge to edge: its full frame
    assert not plain.is_cropped


@pytest.mark.realdata
@requires_usgra
def test_real_pixel_single_frames_are_cut_to_the_image_never_into_the_ui():
    """Real B-mode (usgra-seg) in a screen and beside a settings column, one frame each: the region stays
    inside the image and covers most of its content (the images' own black letterbox may be left out)."""
    paths = sorted((USGRA_SEG_DIR / "dataset" / "images").glob("*.png"))[::6]
    covered = []
    for path in paths:
        image = cv2.resize(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE), (256, 256), interpolation=cv2.INTER_AREA)
        rows, cols = np.flatnonzero(image.max(axis=1) > 10), np.flatnonzero(image.max(axis=0) > 10)
        for frame, (dx, dy) in ((cv2.cvtColor(screen(image), cv2.COLOR_BGR2GRAY), (LEFT, TOP)),
                                (column_capture(image), (0, 10))):
            found = R.find_region(frame[None])
            assert found.is_cropped, (path.name, found)
            assert found.x0 >= dx - 4 and found.y0 >= dy - 4 and found.x1 <= dx + 260 and found.y1 <= dy + 260, (path.name, found)
            x0, y0, x1, y1 = cols[0] + dx, rows[0] + dy, cols[-1] + 1 + dx, rows[-1] + 1 + dy
            inter = max(0, min(found.x1, x1) - max(found.x0, x0)) * max(0, min(found.y1, y1) - max(found.y0, y0))
            covered.append(inter / ((x1 - x0) * (y1 - y0)))
    assert np.mean(np.array(covered) >= 0.85) >= 0.8, np.round(covered, 2)


def test_single_frame_capture_through_stage_02_is_cut_and_warns_that_text_was_not_searched(tmp_path):
    from ctslib.frames.extraction import screen_video, screen_warnings

    content = clean_video(n=1, seed=3)
    layout = DataLayout(tmp_path / "data")
    layout.videos_dir.mkdir(parents=True)
    layout.acquisition_json.write_text(json.dumps({"source": "real", "pixel_spacing_mm": [0.05, 0.05], "fps": 10}))
    write_video(layout.videos_dir / "S1_L_transverse.avi", [screen(content[0])])
    job = VideoJob("P001_L", "P001", "L", "transverse", "mild", 1, "S1_L_transverse.avi")
    headers, _ = probe_videos([job], layout, read_acquisition(layout))
    assert headers[job].n_frames == 1
    settings = ExtractionSettings(frame_size=64)
    found = screen_video(headers[job], settings)
    h, w = content.shape[1:]
    assert found.region.is_cropped and found.region.method == "textured area"
    assert LEFT - 3 <= found.region.x0 and found.region.x1 <= LEFT + w + 3 and TOP - 3 <= found.region.y0
    [warning] = screen_warnings(job.label, found, settings, text_bands=())
    assert warning.startswith("P001_L_transverse: fewer than 3 distinct frames") and "text_bands" in warning
    assert screen_warnings(job.label, found, settings, text_bands=((0.0, 0.06),)) == []  # bands set: nothing to say
