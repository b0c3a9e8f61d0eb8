"""Frame quality control: automatic scores and keep/reject decisions, the expert's list winning where given.

The paper's experts kept 2,518 of 11,895 extracted frames "of adequate quality" without stating
criteria. The automatic QC here makes the usual reasons for rejecting an ultrasound frame explicit,
each with a documented threshold (``QCThresholds``), computed on the 8-bit ``FRAME_SIZE`` frames
(intensities scaled to [0, 1]) of one video at a time:

* ``dropout``: probe (partly) lifted, no coupling: mean intensity below ``dropout_mean``, contrast
  (standard deviation) below ``dropout_contrast``, or at least ``dropout_columns`` of the image
  columns (beam lines) darker than ``lost_column_factor`` times that column's usual brightness in
  the video (its 75th percentile over frames: the lines of elements off the skin go dark; columns
  dark in every frame, such as bone shadows, never count);
* ``frozen``: a near-duplicate of the previous extracted frame (frozen display, stalled capture):
  mean absolute difference below ``frozen_diff`` and below ``frozen_ratio`` times the video's
  reference difference (its ``sharp_quantile`` quantile) (a probe held very still on a scanner with frame averaging changes little from frame to
  frame, yet far more than a repeated frame);
* ``blur``: motion blur / out of focus: fine detail, the smallest variance of a second derivative
  over four directions (motion blur removes detail along its own direction only), below
  ``blur_ratio`` times the ``sharp_quantile`` quantile of the video's frames. B-mode is
  log-compressed, so gain shifts grey levels without scaling their differences;
* ``misaligned``: the plane left the anatomy the video was held on (probe slid off the nerve,
  tilted into anisotropy, anatomy fading into speckle): the correlation between the frame and the
  video's median frame, both smoothed with a Gaussian of ``similarity_sigma_px`` so speckle
  averages out and only anatomy remains, below ``similarity_min`` *or* below ``similarity_ratio``
  times the video's own reference similarity (its ``sharp_quantile`` quantile over usable frames),
  whichever is lower. The absolute 0.85 holds for a probe held on one view (the synthetic videos);
  a real scan slides, tilts and is noisier, so its frames agree less with their median, and the
  relative threshold keeps its ordinary frames while still rejecting frames far below its own level.

Thresholds relative to each video's own statistics were checked on real pixels: short videos built
from the usgra-seg images (a real image drifting, rotating and sliding into the next anatomy with
noise and gain changes per frame; ``tests/test_qc.py::test_real_pixel_videos_keep_most_frames``).
Any reason can be switched off with ``QCThresholds(disable=("misaligned",))`` (notebook 02:
``QC_DISABLE``), and each threshold relaxed on its own (``QC_*`` parameters, ``run_all.py --set``).

References (median frame, sharpness quantile) come from the video's own non-dropout frames, which
makes the checks robust to gain, depth and patient, and assumes that the view the sonographer held
and the sharp frames are not a small minority. The price: a video blurred throughout is not flagged.
The first failing check, in the order above, names the reason.

An expert accept-list (``DATA/qc_accept.csv``) wins when present: listed frames are kept
(``expert_accept``), every other frame is rejected (``expert_reject``); the automatic decision is
still stored (``auto_kept``, ``auto_reason``) so agreement can be measured. The list is read by
``ctslib.data.accept_list``; the funnel and the figures are ``ctslib.frames.funnel``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import cv2
import numpy as np
import pandas as pd

QC_REASONS: tuple[str, ...] = ("dropout", "frozen", "blur", "misaligned")
"""Automatic reject reasons, in the order they are checked (the first that applies is reported)."""

EXPERT_REASONS: tuple[str, ...] = ("expert_accept", "expert_reject")

SCORE_COLUMNS: tuple[str, ...] = (
    "qc_mean",
    "qc_contrast",
    "qc_lost_columns",
    "qc_diff_prev",
    "qc_sharpness",
    "qc_sharpness_ratio",
    "qc_similarity",
    "qc_similarity_floor",
    "qc_frozen_floor",
)
"""Per-frame QC scores written to frames.csv (see the module docstring); the two ``_floor`` columns are
the video's own thresholds (misaligned below ``qc_similarity_floor``, frozen below ``qc_frozen_floor``)."""


@dataclass(frozen=True)
class QCThresholds:
    """Documented thresholds of the automatic QC (intensities in [0, 1]).

    Attributes:
        dropout_mean: mean intensity below this = probe lifted / black frame.
        dropout_contrast: intensity standard deviation below this = blank, featureless frame.
        dropout_columns: share of lost image columns from which a frame counts as dropout.
        lost_column_factor: a column is lost when its mean is below this factor times the same
            column's usual mean in the video (see ``lost_columns``).
        frozen_diff: mean absolute difference to the previous extracted frame below this = frozen
            (0.002 is half a grey level: only a repeated frame, up to codec noise, is that close).
        blur_ratio: sharpness below this fraction of the video's reference sharpness = blurred.
        sharp_quantile: quantile of the video's sharpness used as reference (0.75: the sharper
            frames, so a video with many blurred frames still has a sharp reference).
        similarity_min: correlation with the video's median frame below this = misaligned plane
            (unless the relative threshold below is lower).
        similarity_sigma_px: Gaussian sigma (pixels of the QC frame) that removes speckle before
            the correlation.
        similarity_ratio: misaligned also needs the correlation below this fraction of the video's
            reference correlation (its ``sharp_quantile`` quantile over usable frames); the lower of
            the two thresholds applies, so a video whose frames agree less (a real, moving scan)
            is judged against its own level.
        frozen_ratio: frozen also needs the difference to the previous frame below this fraction of
            the video's reference frame-to-frame difference (its ``sharp_quantile`` quantile).
        disable: reasons switched off (names from ``QC_REASONS``); their scores are still written.
    """

    dropout_mean: float = 0.04
    dropout_contrast: float = 0.03
    dropout_columns: float = 0.3
    lost_column_factor: float = 0.5
    frozen_diff: float = 0.002
    blur_ratio: float = 0.7
    sharp_quantile: float = 0.75
    similarity_min: float = 0.85
    similarity_sigma_px: float = 4.0
    similarity_ratio: float = 0.9
    frozen_ratio: float = 0.1
    disable: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if name == "disable":
                continue
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"QC threshold {name} must be a non-negative number, got {value}")
        unknown = sorted(set(self.disable) - set(QC_REASONS))
        if unknown:
            raise ValueError(f"QC_DISABLE: unknown reason(s) {unknown}; reasons are {list(QC_REASONS)}")
        object.__setattr__(self, "disable", tuple(self.disable))
        if not 0 <= self.sharp_quantile <= 1:
            raise ValueError(f"sharp_quantile must be in [0, 1], got {self.sharp_quantile}")


# -- scores --------------------------------------------------------------------------------------


def _as_unit(image: np.ndarray) -> np.ndarray:
    """8-bit (or [0, 1] float) image as float32 in [0, 1]."""
    array = np.asarray(image)
    return array.astype(np.float32) / 255.0 if array.dtype == np.uint8 else array.astype(np.float32)


SECOND_DERIVATIVE_KERNELS: dict[str, np.ndarray] = {
    "0": np.array([[1, -2, 1]], np.float32),
    "90": np.array([[1], [-2], [1]], np.float32),
    "45": np.array([[1, 0, 0], [0, -2, 0], [0, 0, 1]], np.float32),
    "135": np.array([[0, 0, 1], [0, -2, 0], [1, 0, 0]], np.float32),
}
"""Second derivatives along 0, 90, 45 and 135 degrees (motion blur removes detail along its direction)."""


def sharpness(image: np.ndarray) -> float:
    """Directional sharpness: the smallest variance of a second derivative over four directions.

    The isotropic variance of the Laplacian misses motion blur along one direction (the other
    direction keeps its detail); the minimum over four directions does not.
    """
    unit = _as_unit(image)
    return min(float(cv2.filter2D(unit, cv2.CV_32F, k).var()) for k in SECOND_DERIVATIVE_KERNELS.values())


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two frames, in [0, 1]."""
    return float(np.abs(_as_unit(a) - _as_unit(b)).mean())


def coarse(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """The frame smoothed with a Gaussian of ``sigma_px``: speckle averaged out, anatomy kept."""
    return cv2.GaussianBlur(_as_unit(image), (0, 0), sigma_px)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two images (0 when either is constant)."""
    x, y = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    x, y = x - x.mean(), y - y.mean()
    norm = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / norm) if norm > 0 else 0.0


def score_frames(images: np.ndarray) -> pd.DataFrame:
    """Per-frame QC scores that need no other frame (``qc_diff_prev`` is NaN for the first)."""
    rows = []
    previous = None
    for image in images:
        unit = _as_unit(image)
        rows.append(
            {
                "qc_mean": float(unit.mean()),
                "qc_contrast": float(unit.std()),
                "qc_diff_prev": float("nan") if previous is None else mean_abs_diff(image, previous),
                "qc_sharpness": sharpness(image),
            }
        )
        previous = image
    return pd.DataFrame(rows, columns=["qc_mean", "qc_contrast", "qc_diff_prev", "qc_sharpness"])


def lost_columns(images: np.ndarray, factor: float = 0.5, quantile: float = 0.75) -> np.ndarray:
    """Per frame, the share of image columns darker than ``factor`` x that column's reference level.

    B-mode columns are beam lines: where part of the probe face leaves the skin, its lines go dark
    while the rest of the image stays normal. The reference level of a column is the ``quantile``
    of its mean brightness over the video's frames (0.75: a column lost in up to three quarters of
    the frames still has a lit reference); columns dark in every frame (acoustic shadows of bone)
    never count.
    """
    stack = np.asarray(images, dtype=np.float32)
    if stack.ndim != 3 or len(stack) == 0:
        return np.zeros(len(stack))
    profiles = stack.mean(axis=1)  # (frames, columns)
    reference = np.quantile(profiles, quantile, axis=0)
    lit = reference > 1.0  # columns black in the median frame cannot be lost
    if not lit.any():
        return np.zeros(len(stack))
    return (profiles[:, lit] < factor * reference[lit]).mean(axis=1)


def similarity_to_median(images: np.ndarray, reference: np.ndarray, sigma_px: float = 4.0) -> np.ndarray:
    """Correlation of each smoothed frame with the pixel-wise median of the smoothed ``reference`` frames.

    ``reference`` is either frames or a boolean mask choosing some of ``images`` (then each frame is
    smoothed once).
    """
    smoothed = [coarse(image, sigma_px) for image in images]
    reference = np.asarray(reference)
    if reference.dtype == bool:
        pool = [s for s, use in zip(smoothed, reference) if use]
    else:
        pool = [coarse(image, sigma_px) for image in reference]
    pool = pool or smoothed
    if not pool:
        return np.zeros(0)
    median = pixel_median(pool)
    return np.array([correlation(s, median) for s in smoothed])


def pixel_median(frames: Sequence[np.ndarray]) -> np.ndarray:
    """Pixel-wise median of equally sized frames: ``np.median(stack, axis=0)``, with each pixel's values
    laid out contiguously first (about 1.5x faster on a video's frames, same values)."""
    stack = np.stack(frames)
    per_pixel = np.ascontiguousarray(stack.reshape(len(stack), -1).T)
    return np.median(per_pixel, axis=1).reshape(stack.shape[1:])


def is_dropout(scores: pd.DataFrame, thresholds: QCThresholds) -> pd.Series:
    """Frames with too little signal: probe (partly) lifted, no coupling gel, black screen."""
    return (
        (scores["qc_mean"] < thresholds.dropout_mean)
        | (scores["qc_contrast"] < thresholds.dropout_contrast)
        | (scores["qc_lost_columns"] >= thresholds.dropout_columns)
    )


def relative_to_quantile(values: pd.Series, reference: pd.Series, quantile: float) -> pd.Series:
    """``values`` divided by the ``quantile`` of ``values[reference]`` (NaN when there is none)."""
    pool = values[reference]
    level = float(pool.quantile(quantile)) if len(pool) else float("nan")
    if not np.isfinite(level) or level <= 0:
        return pd.Series(np.nan, index=values.index)
    return values / level


def decide(scores: pd.DataFrame, thresholds: QCThresholds = QCThresholds()) -> pd.DataFrame:
    """Add the automatic decision (``auto_kept``, ``auto_reason``) to one video's scores.

    ``scores`` holds every column of ``SCORE_COLUMNS`` (see ``qc_video``).
    """
    out = scores.copy()
    similarity_floor = out["qc_similarity_floor"] if "qc_similarity_floor" in out else thresholds.similarity_min
    frozen_floor = out["qc_frozen_floor"] if "qc_frozen_floor" in out else thresholds.frozen_diff
    checks = {
        "dropout": is_dropout(out, thresholds),
        "frozen": out["qc_diff_prev"] < frozen_floor,  # NaN (first frame) compares False
        "blur": out["qc_sharpness_ratio"] < thresholds.blur_ratio,
        "misaligned": out["qc_similarity"] < similarity_floor,
    }
    reason = pd.Series("ok", index=out.index, dtype=object)
    for name in reversed([r for r in QC_REASONS if r not in thresholds.disable]):  # the first failing wins
        reason[checks[name].fillna(False).to_numpy(dtype=bool)] = name
    out["auto_reason"] = reason
    out["auto_kept"] = reason == "ok"
    return out


def qc_video(images: np.ndarray, thresholds: QCThresholds = QCThresholds()) -> pd.DataFrame:
    """Scores and automatic decision of one video's frames (one row per image, in order)."""
    images = np.asarray(images)
    scores = score_frames(images)
    scores["qc_lost_columns"] = lost_columns(images, thresholds.lost_column_factor)
    usable = ~is_dropout(scores, thresholds)
    scores["qc_sharpness_ratio"] = relative_to_quantile(scores["qc_sharpness"], usable, thresholds.sharp_quantile)
    scores["qc_similarity"] = similarity_to_median(images, usable.to_numpy(dtype=bool), thresholds.similarity_sigma_px)
    scores["qc_similarity_floor"] = similarity_floor(scores["qc_similarity"], usable, thresholds)
    scores["qc_frozen_floor"] = frozen_floor(scores["qc_diff_prev"], usable, thresholds)
    return decide(scores[list(SCORE_COLUMNS)], thresholds)


def similarity_floor(similarity: pd.Series, usable: pd.Series, thresholds: QCThresholds) -> float:
    """The video's misaligned threshold: ``min(similarity_min, similarity_ratio x reference)``.

    The reference is the ``sharp_quantile`` quantile of the usable frames' similarity (the level
    of the frames on the held view); without usable frames the absolute threshold applies.
    """
    pool = similarity[usable].dropna()
    if pool.empty:
        return thresholds.similarity_min
    return float(min(thresholds.similarity_min, thresholds.similarity_ratio * float(pool.quantile(thresholds.sharp_quantile))))


def frozen_floor(diff_prev: pd.Series, usable: pd.Series, thresholds: QCThresholds) -> float:
    """The video's frozen threshold: ``min(frozen_diff, frozen_ratio x reference difference)``.

    The reference is the ``sharp_quantile`` quantile of the usable frames' difference to their
    previous frame (a high quantile: a video that is frozen most of the time still has a moving
    reference); when it is 0 (every frame repeated) the absolute ``frozen_diff`` applies.
    """
    diffs = diff_prev[usable].dropna()
    reference = float(diffs.quantile(thresholds.sharp_quantile)) if len(diffs) else 0.0
    if reference <= 0:
        return thresholds.frozen_diff
    return float(min(thresholds.frozen_diff, thresholds.frozen_ratio * reference))


def final_decision(auto: pd.DataFrame, sample_index: pd.Series | np.ndarray, accepted: set[int] | None) -> pd.DataFrame:
    """``kept`` and ``reason``: the expert's list when given (it wins), else the automatic decision.

    Args:
        auto: output of ``decide`` (``auto_kept``, ``auto_reason``).
        sample_index: frame numbers at the target rate, aligned with ``auto``'s rows.
        accepted: frame numbers of this video on the expert's accept-list, or None without a list.
    """
    out = auto.copy()
    if accepted is None:
        out["kept"] = out["auto_kept"].astype(bool)
        out["reason"] = out["auto_reason"]
    else:
        listed = np.isin(np.asarray(sample_index, dtype=int), sorted(accepted))
        out["kept"] = listed
        out["reason"] = np.where(listed, "expert_accept", "expert_reject")
    return out
