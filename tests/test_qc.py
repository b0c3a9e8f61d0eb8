"""Automatic frame QC (each reason on a crafted frame), the expert accept-list, funnel and truth scoring."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from ctslib.frames import qc
from ctslib.common.errors import InputError
from ctslib.common.paths import USGRA_SEG_DIR
from ctslib.data.accept_list import match_accept_list, read_accept_list
from ctslib.data.timing import sample_frames, uniform_times
from ctslib.frames.funnel import plot_qc_funnel, qc_funnel, qc_vs_truth, qc_vs_truth_by_reason
from ctslib.frames.prepare import resize_frame

SIZE = 256


# -- a tiny B-mode-like video --------------------------------------------------------------------


def anatomy(size: int = SIZE) -> np.ndarray:
    """Echogenicity map: three bright fascia lines, a dark oval nerve, a dark shadowed corner."""
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    echo = np.full((size, size), 0.5, np.float32)
    for row in (0.2, 0.55, 0.8):
        echo += 1.5 * np.exp(-0.5 * ((yy - row * size) / 3.0) ** 2)
    nerve = ((xx - 0.5 * size) / (0.15 * size)) ** 2 + ((yy - 0.4 * size) / (0.08 * size)) ** 2 < 1
    echo[nerve] = 0.15
    echo[int(0.85 * size) :, int(0.6 * size) :] *= 0.2  # bone shadow: dark in every frame
    return echo


def speckle(rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    z = rng.standard_normal((size, size, 2)).astype(np.float32)
    z = cv2.GaussianBlur(z, (0, 0), sigmaX=1.2, sigmaY=0.7)
    return np.hypot(z[..., 0], z[..., 1]) / 0.3


def render(echo: np.ndarray, field: np.ndarray) -> np.ndarray:
    """Log-compressed 8-bit frame of echogenicity x speckle."""
    db = 20 * np.log10(np.sqrt(echo) * field + 1e-3)
    return np.clip((db + 40) * 255 / 55, 0, 255).astype(np.uint8)


def clean_video(n: int = 12, seed: int = 0) -> np.ndarray:
    """``n`` good frames: fixed anatomy, small sway, speckle that partly decorrelates frame to frame."""
    rng = np.random.default_rng(seed)
    echo, base = anatomy(), speckle(rng)
    return np.stack([render(np.roll(echo, i % 3, axis=1), 0.8 * base + 0.6 * speckle(rng)) for i in range(n)])


def motion_blur(image: np.ndarray, length: int = 7, vertical: bool = False) -> np.ndarray:
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0 / length
    return cv2.filter2D(image, -1, kernel.T if vertical else kernel)


CRAFTED = {3: "blur", 4: "blur", 5: "dropout", 6: "dropout", 8: "frozen", 10: "misaligned", 11: "misaligned"}


def crafted_video() -> np.ndarray:
    """A clean 16-frame video with one defect per listed frame (see ``CRAFTED``)."""
    rng = np.random.default_rng(1)
    video = clean_video(16)
    video[3] = motion_blur(video[3])
    video[4] = motion_blur(video[4], vertical=True)
    video[5] = np.clip(rng.normal(4, 2, video[5].shape), 0, 255).astype(np.uint8)  # probe lifted
    video[6][:, :150] = (video[6][:, :150] * 0.2).astype(np.uint8)  # left of the probe off the skin
    video[8] = video[7]  # frozen display
    video[10] = render(np.full((SIZE, SIZE), 0.8, np.float32), 0.8 * speckle(rng) + 0.6 * speckle(rng))  # anatomy gone
    video[11] = render(np.roll(anatomy(), SIZE // 3, axis=1), 0.8 * speckle(rng) + 0.6 * speckle(rng))  # probe slid
    return video


# -- automatic QC --------------------------------------------------------------------------------


def test_clean_video_keeps_every_frame():
    result = qc.qc_video(clean_video(14))
    assert result["auto_reason"].eq("ok").all()
    assert result["auto_kept"].all()
    assert set(qc.SCORE_COLUMNS) <= set(result.columns)


@pytest.mark.parametrize("index, reason", sorted(CRAFTED.items()))
def test_each_reason_triggers_on_its_crafted_frame(index, reason):
    result = qc.qc_video(crafted_video())
    assert result.loc[index, "auto_reason"] == reason
    assert not result.loc[index, "auto_kept"]


def test_crafted_defects_leave_the_clean_frames_alone():
    result = qc.qc_video(crafted_video())
    clean = [i for i in range(len(result)) if i not in CRAFTED]
    assert result.loc[clean, "auto_reason"].eq("ok").all()


def test_sharpness_and_similarity_ignore_a_gain_change():
    # B-mode is log-compressed: more gain adds grey levels, it does not scale differences.
    video = clean_video(6)
    brighter = np.clip(video.astype(np.int16) - 30, 0, 255).astype(np.uint8)
    assert qc.sharpness(brighter[0]) == pytest.approx(qc.sharpness(video[0]), rel=0.1)
    similarity = qc.similarity_to_median(brighter[:1], video)
    assert similarity[0] > 0.95
    shifted = np.roll(video[:1], SIZE // 3, axis=2)
    assert qc.similarity_to_median(shifted, video)[0] < 0.85


def test_first_failing_check_names_the_reason():
    video = clean_video()
    video[4] = np.zeros_like(video[4])
    video[5] = video[4]  # black and a duplicate: dropout comes first
    result = qc.qc_video(video)
    assert result.loc[[4, 5], "auto_reason"].tolist() == ["dropout", "dropout"]


def test_thresholds_are_parameters():
    video = crafted_video()
    lenient = qc.QCThresholds(blur_ratio=0.0, frozen_diff=0.0)
    result = qc.qc_video(video, lenient)
    assert result.loc[[3, 4, 8], "auto_reason"].eq("ok").all()
    assert result.loc[[5, 6], "auto_reason"].eq("dropout").all()
    with pytest.raises(ValueError):
        qc.QCThresholds(blur_ratio=-1)


def test_lost_columns_ignore_columns_dark_in_every_frame():
    video = clean_video(6)
    video[:, :, :40] = 0  # a permanent shadow
    assert np.all(qc.lost_columns(video) == 0)
    video[2, :, 40:200] //= 10
    assert qc.lost_columns(video)[2] > 0.5


# -- expert accept-list --------------------------------------------------------------------------


def schedules() -> dict[str, pd.DataFrame]:
    return {
        "S1_L_transverse": sample_frames(uniform_times(60, 30), 5),  # frames 0..9 at 0, .2, ... 1.8 s
        "S1_L_longitudinal": sample_frames(uniform_times(48, 24), 5),
    }


def write_list(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "qc_accept.csv"
    path.write_text(text)
    return path


def test_expert_list_wins_over_automatic_qc(tmp_path):
    path = write_list(tmp_path, "video,time_s,frame\nS1_L_transverse,0.61,\nS1_L_transverse,,3\nS1_L_longitudinal,0.4,\n")
    accepted = match_accept_list(read_accept_list(path), schedules(), target_fps=5, file=path)
    assert accepted == {"S1_L_transverse": {3}, "S1_L_longitudinal": {2}}
    auto = qc.qc_video(crafted_video())  # frame 3 is blurred, frame 0 is fine
    decided = qc.final_decision(auto, np.arange(len(auto)), accepted["S1_L_transverse"])
    assert decided.loc[3, "kept"] and decided.loc[3, "reason"] == "expert_accept"
    assert not decided.loc[0, "kept"] and decided.loc[0, "reason"] == "expert_reject"
    assert decided.loc[3, "auto_reason"] == "blur"  # the automatic verdict is kept for comparison
    assert decided["kept"].sum() == 1


def test_rows_for_ignored_videos_are_passed_over(tmp_path):
    path = write_list(tmp_path, "video,frame\nS1_L_transverse,1\nS7_R_transverse,2\n")
    accept = read_accept_list(path)
    accepted = match_accept_list(accept, schedules(), target_fps=5, file=path, ignore={"S7_R_transverse"})
    assert accepted["S1_L_transverse"] == {1} and "S7_R_transverse" not in accepted


def test_without_expert_list_the_automatic_decision_stands():
    auto = qc.qc_video(crafted_video())
    decided = qc.final_decision(auto, np.arange(len(auto)), None)
    assert decided["kept"].tolist() == auto["auto_kept"].tolist()
    assert decided["reason"].tolist() == auto["auto_reason"].tolist()


@pytest.mark.parametrize(
    "text, row, column",
    [
        ("video,time_s\nS1_L_transverse,0.2\nS9_L_transverse,0.2\n", 2, "video"),
        ("video,time_s\nS1_L_transverse,5.0\n", 1, "time_s"),
        ("video,frame\nS1_L_transverse,1\nS1_L_transverse,1\nS1_L_longitudinal,10\n", 3, "frame"),
    ],
)
def test_unknown_frames_in_the_list_name_the_row(tmp_path, text, row, column):
    path = write_list(tmp_path, text)
    with pytest.raises(InputError) as err:
        match_accept_list(read_accept_list(path), schedules(), target_fps=5, file=path)
    assert (err.value.row, err.value.column) == (row, column)
    assert err.value.file == str(path)


@pytest.mark.parametrize(
    "text, row",
    [
        ("video,time_s,frame\nS1_L_transverse,0.2,1\n", 1),
        ("video,time_s,frame\nS1_L_transverse,,\n", 1),
        ("video,time_s\nS1_L_transverse,0.2\nS1_L_transverse,soon\n", 2),
        ("video,frame\nS1_L_transverse,-1\n", 1),
        ("video,frame\n,1\n", 1),
    ],
)
def test_malformed_list_rows_are_named(tmp_path, text, row):
    with pytest.raises(InputError) as err:
        read_accept_list(write_list(tmp_path, text))
    assert err.value.row == row


def test_list_without_required_columns(tmp_path):
    with pytest.raises(InputError, match="columns"):
        read_accept_list(write_list(tmp_path, "stem,when\nA,1\n"))


# -- funnel and truth ----------------------------------------------------------------------------


def frames_table() -> pd.DataFrame:
    rows = [
        ("transverse", True, "ok", ""),
        ("transverse", False, "blur", "blur"),
        ("transverse", False, "dropout", "dropout"),
        ("transverse", False, "blur", ""),  # false alarm
        ("longitudinal", True, "ok", "misaligned"),  # missed
        ("longitudinal", True, "ok", "ok"),
        ("longitudinal", False, "frozen", "frozen"),
    ]
    df = pd.DataFrame(rows, columns=["plane", "kept", "reason", "true_reason"])
    return df.assign(auto_kept=df["kept"], auto_reason=df["reason"])


def test_funnel_counts_add_up_and_show_the_paper():
    funnel = qc_funnel(frames_table()).set_index("step")
    assert funnel.loc["extracted", "transverse"] == 4 and funnel.loc["extracted", "longitudinal"] == 3
    rejected = funnel[funnel.index.str.startswith("rejected: ")]
    for column in ("transverse", "longitudinal", "all"):
        assert rejected[column].sum() + funnel.loc["kept", column] == funnel.loc["extracted", column]
    assert funnel.loc["rejected: blur", "transverse"] == 2
    assert funnel.loc["kept", "paper_transverse"] == 1360 and funnel.loc["kept", "paper_longitudinal"] == 1158
    assert funnel.loc["extracted", "paper_all"] == 11895 and funnel.loc["kept", "paper_all"] == 2518
    assert np.isnan(funnel.loc["extracted", "paper_transverse"])  # not reported per plane
    fig = plot_qc_funnel(qc_funnel(frames_table()))
    assert len(fig.axes) == 2


def test_qc_vs_truth_precision_and_recall():
    table = qc_vs_truth(frames_table()).set_index("plane")
    # all: rejected 4 (3 truly bad + 1 false alarm); truly bad 4 (1 missed)
    assert table.loc["all", ["tp", "fp", "fn"]].tolist() == [3, 1, 1]
    assert table.loc["all", "precision"] == pytest.approx(0.75)
    assert table.loc["all", "recall"] == pytest.approx(0.75)
    assert table.loc["transverse", "recall"] == pytest.approx(1.0)
    assert table.loc["longitudinal", "precision"] == pytest.approx(1.0)
    assert table.loc["all", "reason_agreement"] == pytest.approx(1.0)
    by_reason = qc_vs_truth_by_reason(frames_table()).set_index("true_reason")
    assert by_reason.loc["misaligned", "rejected %"] == 0
    assert by_reason.loc["ok", "frames"] == 3


# -- real ultrasound (optional) ------------------------------------------------------------------


@pytest.mark.realdata
@pytest.mark.skipif(not (USGRA_SEG_DIR / "dataset" / "images").is_dir(), reason="usgra-seg data absent")
def test_real_wrist_images_pass_absolute_checks_and_blur_is_caught():
    paths = sorted((USGRA_SEG_DIR / "dataset" / "images").glob("*.png"))[:40:4]
    images = np.stack([resize_frame(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)) for p in paths])
    # different wrists, not one video: only the absolute dropout checks apply (no lost columns)
    scores = qc.score_frames(images).assign(qc_lost_columns=0.0)
    assert not qc.is_dropout(scores, qc.QCThresholds()).any()
    blurred = np.stack([motion_blur(image, 7) for image in images])
    ratio = np.array([qc.sharpness(b) / qc.sharpness(i) for b, i in zip(blurred, images)])
    assert np.all(ratio < qc.QCThresholds().blur_ratio)
    vertical = np.stack([motion_blur(image, 7, vertical=True) for image in images])
    assert np.all([qc.sharpness(b) < qc.QCThresholds().blur_ratio * qc.sharpness(i) for b, i in zip(vertical, images)])


# -- thresholds relative to the video, switches -------------------------------------------------


def test_a_reason_can_be_switched_off_and_an_unknown_one_is_refused():
    result = qc.qc_video(crafted_video(), qc.QCThresholds(disable=("misaligned", "blur")))
    assert not result["auto_reason"].isin(["misaligned", "blur"]).any()
    assert result.loc[5, "auto_reason"] == "dropout" and result.loc[8, "auto_reason"] == "frozen"
    assert result.loc[10, "qc_similarity"] < result.loc[10, "qc_similarity_floor"]  # scored, not applied
    with pytest.raises(ValueError, match=r"QC_DISABLE: unknown reason\(s\) \['blurred'\]"):
        qc.QCThresholds(disable=("blurred",))


def test_misaligned_threshold_follows_the_video_own_level():
    video = clean_video(12)
    level = 0.7  # a video whose frames agree less with their median (a real, moving scan)
    scores = pd.Series([level] * 11 + [0.5])
    floor = qc.similarity_floor(scores, pd.Series(True, index=scores.index), qc.QCThresholds())
    assert floor == pytest.approx(0.9 * level)
    assert qc.similarity_floor(pd.Series([0.99] * 12), pd.Series(True, index=range(12)), qc.QCThresholds()) == 0.85
    assert qc.qc_video(video)["qc_similarity_floor"].iloc[0] == pytest.approx(0.85)


def test_still_probe_is_not_frozen_but_a_repeated_frame_is():
    rng = np.random.default_rng(3)
    base = np.clip(clean_video(1)[0], 1, 254).astype(np.int16)
    # probe held still on a scanner that averages frames: some pixels change by one grey
    # level from frame to frame (mean difference about 0.0011, below the absolute frozen threshold 0.002)
    video = np.stack([(base + (rng.random(base.shape) < 0.15) * rng.choice([-1, 1], base.shape)).astype(np.uint8)
                      for _ in range(10)])
    video[6] = video[5]
    old = qc.qc_video(video, qc.QCThresholds(frozen_ratio=1e9))  # the absolute threshold alone
    assert (old["auto_reason"] == "frozen").sum() >= 8
    result = qc.qc_video(video)
    assert result["auto_reason"].tolist().count("frozen") == 1 and result.loc[6, "auto_reason"] == "frozen"


def real_images(count: int) -> list[np.ndarray]:
    paths = sorted((USGRA_SEG_DIR / "dataset" / "images").glob("*.png"))
    return [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in paths[:: max(1, len(paths) // count)][:count]]


def hand_held(image: np.ndarray, other: np.ndarray, seed: int, n: int = 20, drift_px: float = 60.0) -> np.ndarray:
    """A real image in a moving hand: random sway, a slide along the limb into the next anatomy, noise, gain."""
    rng = np.random.default_rng(seed)
    h, w = image.shape
    other = cv2.resize(other, (w, h))
    frames, sway = [], np.zeros(2)
    for i in range(n):
        t = i / (n - 1)
        sway = np.clip(sway + rng.normal(0, 3.0, 2), -12, 12)
        m = np.float32([[1, 0, (t - 0.5) * 2 * drift_px + sway[0]], [0, 1, sway[1]]])
        a = cv2.warpAffine(image.astype(np.float32), m, (w, h), borderMode=cv2.BORDER_REFLECT)
        b = cv2.warpAffine(other.astype(np.float32), m, (w, h), borderMode=cv2.BORDER_REFLECT)
        frame = ((1 - 0.5 * t) * a + 0.5 * t * b) * rng.normal(1.0, 0.03) + rng.normal(0, 4, a.shape)
        frames.append(resize_frame(np.clip(frame, 0, 255).astype(np.uint8)))
    return np.stack(frames)


@pytest.mark.realdata
@pytest.mark.skipif(not (USGRA_SEG_DIR / "dataset" / "images").is_dir(), reason="usgra-seg data absent")
def test_real_pixel_videos_keep_most_frames():
    images = real_images(12)
    videos = [hand_held(images[i], images[(i + 1) % len(images)], seed=i) for i in range(len(images))]
    kept = np.mean([qc.qc_video(v)["auto_kept"].mean() for v in videos])
    assert kept >= 0.75, f"QC kept only {kept:.0%} of real-pixel frames"


@pytest.mark.parametrize("n", [1, 4, 7])
def test_pixel_median_equals_numpy_median_over_frames(n):
    frames = list(np.random.default_rng(n).random((n, 9, 13), dtype=np.float32))
    np.testing.assert_array_equal(qc.pixel_median(frames), np.median(np.stack(frames), axis=0))


def test_similarity_reference_mask_equals_reference_frames():
    video = np.random.default_rng(3).integers(0, 255, (6, 32, 32), dtype=np.uint8)
    use = np.array([True, False, True, True, False, True])
    np.testing.assert_array_equal(qc.similarity_to_median(video, use), qc.similarity_to_median(video, video[use]))
