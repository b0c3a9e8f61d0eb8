"""Synthetic default dataset: layout contract, determinism, video/mask integrity, severity signal, bad frames."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from ctslib import GRADES, PLANES
from ctslib.common.errors import InputError
from ctslib.common.paths import DataLayout, video_stem
from ctslib.common.seed import rng
from ctslib.synth.config import SynthConfig
from ctslib.synth.dataset import ensure_dataset
from ctslib.synth import dataset
from ctslib.synth.dataset import CONFIG_FILE
from ctslib.synth.summary import csa_by_grade, extracted, mask_csa, read_truth
from ctslib.synth.video import bad_timeline

TINY = SynthConfig(seed=7, n_participants=4, grade_counts=(2, 2, 2, 2), duration_s=3.0, source_fps=10.0, frame_size=96)


def decoded_frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """Rendered by two worker processes (the size threshold for parallel rendering lowered)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dataset, "PARALLEL_MIN_FRAMES", 0)
        return ensure_dataset(tmp_path_factory.mktemp("synth") / "tiny", TINY, progress=False)


@pytest.fixture(scope="module")
def tiny_again(tmp_path_factory) -> Path:
    """Same config rendered in one process: the data must not depend on worker scheduling."""
    return ensure_dataset(tmp_path_factory.mktemp("synth") / "again", replace(TINY, workers=1), progress=False)


def test_layout_is_the_pipeline_input_contract(tiny: Path) -> None:
    layout = DataLayout(tiny)
    cohort = pd.read_csv(layout.cohort_csv)
    assert list(cohort.columns) == ["participant_id", "side", "sex", "age", "dominant_hand", "dml_ms", "sncv_ms", "snap_uv"]
    assert len(cohort) == TINY.n_wrists and cohort["participant_id"].nunique() == TINY.n_participants
    acq = json.loads(layout.acquisition_json.read_text())
    assert acq["source"] == "synthetic" and acq["fps"] == TINY.source_fps
    assert acq["pixel_spacing_mm"] == pytest.approx([TINY.depth_mm / TINY.frame_size] * 2)
    for row in cohort.itertuples():
        for plane in PLANES:
            stem = video_stem(row.participant_id, row.side, plane)
            assert layout.find_video(stem) is not None, stem
            assert (layout.masks_dir / f"{stem}.npz").exists(), stem
    frames, wrists = read_truth(tiny)
    assert sorted(wrists["grade"].value_counts().reindex(list(GRADES)).tolist()) == sorted(TINY.grade_counts)
    assert len(frames) == TINY.n_wrists * len(PLANES) * TINY.n_frames


def test_same_seed_gives_identical_data_whatever_the_workers(tiny: Path, tiny_again: Path) -> None:
    a, b = DataLayout(tiny), DataLayout(tiny_again)
    assert a.cohort_csv.read_bytes() == b.cohort_csv.read_bytes()
    assert (a.truth_dir / "frames.csv").read_bytes() == (b.truth_dir / "frames.csv").read_bytes()
    for video in sorted(a.videos_dir.iterdir()):
        fa, fb = decoded_frames(video), decoded_frames(b.videos_dir / video.name)
        assert len(fa) == len(fb) and all(np.array_equal(x, y) for x, y in zip(fa, fb)), video.name
        with np.load(a.masks_dir / f"{video.stem}.npz") as ma, np.load(b.masks_dir / f"{video.stem}.npz") as mb:
            assert np.array_equal(ma["mask"], mb["mask"])


def test_different_seed_gives_different_data(tiny: Path, tmp_path: Path) -> None:
    other = ensure_dataset(tmp_path / "other", replace(TINY, seed=8), progress=False)
    assert (other / "cohort.csv").read_bytes() != (tiny / "cohort.csv").read_bytes()
    video = sorted((tiny / "videos").iterdir())[0].name
    assert not np.array_equal(decoded_frames(tiny / "videos" / video)[0], decoded_frames(other / "videos" / video)[0])


def test_videos_open_with_expected_frames_and_rate(tiny: Path) -> None:
    for video in sorted((tiny / "videos").iterdir()):
        cap = cv2.VideoCapture(str(video))
        assert cap.isOpened(), video
        assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(TINY.source_fps)
        cap.release()
        frames = decoded_frames(video)
        assert len(frames) == TINY.n_frames
        assert frames[0].shape[:2] == (TINY.frame_size, TINY.frame_size)


def test_masks_align_with_frames(tiny: Path) -> None:
    frames, _ = read_truth(tiny)
    spacing = TINY.pixel_spacing_mm
    rim_brighter = []
    for stem, truth in frames.groupby("video"):
        with np.load(tiny / "masks" / f"{stem}.npz") as npz:
            index, masks = npz["index"], npz["mask"]
        assert masks.dtype == np.uint8 and masks.shape == (TINY.n_frames, TINY.frame_size, TINY.frame_size)
        assert np.array_equal(index, truth["source_index"].to_numpy()) and set(np.unique(masks)) <= {0, 1}
        assert np.allclose(masks.sum(axis=(1, 2)) * spacing**2, truth["mask_area_mm2"], atol=1e-3)
        assert (masks[truth["nerve_in_view"].to_numpy()].sum(axis=(1, 2)) > 0).all()
        if truth["plane"].iloc[0] != "transverse":
            continue
        video = decoded_frames(tiny / "videos" / f"{stem}.avi")
        for i in np.flatnonzero((truth["bad_reason"] == "").to_numpy()):
            gray, mask = video[i][..., 0].astype(float), masks[i]
            inner = cv2.erode(mask, np.ones((3, 3), np.uint8), iterations=2).astype(bool)
            rim = (cv2.dilate(mask, np.ones((3, 3), np.uint8)) - cv2.erode(mask, np.ones((3, 3), np.uint8))).astype(bool)
            rim_brighter.append(gray[rim].mean() > gray[inner].mean())
    # The bright epineurium lies on the mask border in (almost) every good frame: masks sit on the nerve.
    assert len(rim_brighter) > 20 and np.mean(rim_brighter) > 0.9


def test_frozen_frames_repeat_and_misaligned_lose_the_nerve(tiny: Path) -> None:
    frames, _ = read_truth(tiny)
    for stem, truth in frames.groupby("video"):
        video = decoded_frames(tiny / "videos" / f"{stem}.avi")
        for i in np.flatnonzero((truth["bad_reason"] == "frozen").to_numpy()):
            assert i > 0 and np.array_equal(video[i], video[i - 1]), (stem, i)
    misaligned = frames[frames["bad_reason"] == "misaligned"]
    good = frames[frames["bad_reason"] == ""]
    assert good["nerve_in_view"].all()
    if len(misaligned):
        assert misaligned["nerve_in_view"].mean() < 0.5


def test_bad_share_follows_the_parameter_in_runs(tiny: Path) -> None:
    frames, _ = read_truth(tiny)
    bad = (frames["bad_reason"] != "").to_numpy()
    assert abs(bad.mean() - TINY.bad_share) < 0.06
    runs = sum(int(b and (i == 0 or not bad[i - 1] or frames["video"].iat[i] != frames["video"].iat[i - 1])) for i, b in enumerate(bad))
    assert bad.sum() / runs >= 4, "bad frames should come in runs, not isolated frames"
    at_5fps = extracted(frames, TINY.source_fps)
    assert len(at_5fps) == len(frames) // 2
    assert (at_5fps.groupby("video")["bad_reason"].apply(lambda r: (r == "").sum()) >= 1).all(), "a video without good frames"


@pytest.mark.parametrize("share", [0.0, 0.3, 0.79])
def test_bad_timeline_share(share: float) -> None:
    shares = [np.mean([r != "" for r in bad_timeline(126, 10.0, share, (1, 1, 1, 1), rng(1, "t", k))]) for k in range(40)]
    assert abs(np.mean(shares) - share) < 0.03
    assert min(shares) < max(shares) or share == 0.0  # videos differ


def test_severity_signal_present_but_overlapping(tmp_path: Path) -> None:
    config = SynthConfig(
        seed=3, n_participants=32, grade_counts=(16, 16, 16, 16), duration_s=0.5, source_fps=6.0, frame_size=64, bad_share=0.0
    )
    root = ensure_dataset(tmp_path / "severity", config, progress=False)
    frames, wrists = read_truth(root)
    assert (frames["bad_reason"] == "").all()
    measured = mask_csa(root, frames, (config.pixel_spacing_mm, config.pixel_spacing_mm))
    grade = wrists.set_index("wrist_id")["grade"]
    by_grade = measured.assign(grade=measured["wrist_id"].map(grade)).groupby("grade")["mask_csa_mm2"]
    means = by_grade.mean().reindex(list(GRADES))
    low, high = by_grade.min().reindex(list(GRADES)), by_grade.max().reindex(list(GRADES))
    assert means.is_monotonic_increasing and means.iloc[-1] > 1.5 * means.iloc[0]
    for lower, upper in zip(GRADES, GRADES[1:]):
        assert high[lower] > low[upper], f"{lower} and {upper} CSA ranges should overlap"
    table = csa_by_grade(wrists, measured)
    assert np.allclose(table["mask_csa_mean_mm2"], table["csa_mean_mm2"], rtol=0.1)


def test_ensure_dataset_reuses_regenerates_and_refuses(tmp_path: Path) -> None:
    config = replace(TINY, n_participants=1, grade_counts=(1, 0, 0, 1), duration_s=1.0, workers=1)
    root = ensure_dataset(tmp_path / "d", config, progress=False)
    stamp = (root / CONFIG_FILE).stat().st_mtime_ns
    assert ensure_dataset(tmp_path / "d", config, progress=False) == root
    assert (root / CONFIG_FILE).stat().st_mtime_ns == stamp  # reused, not regenerated
    changed = replace(config, seed=99)
    ensure_dataset(root, changed, progress=False)
    assert json.loads((root / CONFIG_FILE).read_text())["seed"] == 99
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # no temporary folders left behind
    foreign = tmp_path / "real"
    foreign.mkdir()
    (foreign / "cohort.csv").write_text("participant_id\n")
    with pytest.raises(InputError, match="refusing to overwrite"):
        ensure_dataset(foreign, config, progress=False)
    assert (foreign / "cohort.csv").read_text() == "participant_id\n"


def test_config_rejects_impossible_cohorts() -> None:
    with pytest.raises(ValueError):
        SynthConfig(n_participants=2, grade_counts=(3, 3, 0, 0))
    with pytest.raises(ValueError):
        SynthConfig(bad_share=1.0)
    assert SynthConfig.from_parameters(N_PARTICIPANTS=4, GRADE_COUNTS=[2, 2, 2, 2]).grade_counts == (2, 2, 2, 2)
    with pytest.raises(ValueError, match="unknown"):
        SynthConfig.from_parameters(NOT_A_PARAMETER=1)
