"""Nerve-centred fixed-size crops, nerve area (CSA) and the no-nerve rule.

Rules (the study's decisions; the numbers are notebook parameters):

* **Centre.** A crop of ``crop_size`` x ``crop_size`` pixels is centred on the centroid of the
  *predicted* nerve mask (largest connected component, see ``ctslib.nerve.inference.postprocess``).
* **Borders.** The box is shifted (clamped) to lie wholly inside the frame; it is never padded
  with invented pixels. Near a border the nerve is then off-centre in the crop; ``centre_x``/
  ``centre_y`` keep the nerve centroid and ``x0``/``y0`` the box actually cut, so the shift is
  visible. A crop larger than the frame is an error.
* **No nerve.** If the predicted mask's area is below ``min_area_mm2`` the frame gets *no* crop:
  ``nerve_found=False``, ``reason="no_nerve_found"``; it is counted in the crop funnel and never
  replaced by a silent centre crop.
* **Presence.** With a presence scorer (``ctslib.nerve.presence``: a frame-level "is there a nerve here"
  score with a threshold calibrated on real frames), a frame whose predicted nerve passes the
  area rule but whose presence score is below the threshold gets no crop either:
  ``nerve_found=False``, ``reason="low_presence"``, ``presence_score`` kept; counted apart in the
  funnel (``presence_rejected``), so the two rules' rejections stay distinguishable.
* **CSA.** Predicted mask area in pixels x ``spacing_row_mm`` x ``spacing_col_mm`` of the frame
  (the spacing of the stored frame PNG, as written by stage 02). It is the nerve's
  cross-sectional area in the transverse plane; in the longitudinal plane the same number is the
  nerve's in-plane area (a length x thickness), reported but not a CSA.
* **Check.** Where a true mask exists and shows a nerve, ``centre_in_true_mask`` says whether the
  nerve centroid used as crop centre lies inside it (False for a no-nerve frame: a miss), and
  ``true_nerve_in_crop`` the fraction of the true nerve inside the crop box. Both stay empty
  without a true mask or when the true mask is empty (no nerve in view: "no nerve found" is then
  the right answer; ``true_nerve_area_px`` = 0 marks these frames).

``crop_path`` in ``crops.csv`` is relative to the run's work folder (``RunPaths.work``), so the
table does not depend on where the run lives.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ctslib.common.errors import InputError
from ctslib.common.handoff import write_png
from ctslib.data.images import read_gray, read_mask
from ctslib.nerve.geometry import mask_centroid, point_in_mask
from ctslib.nerve.hints import hint_pixels
from ctslib.nerve.inference import segment_images

NO_NERVE_REASON = "no_nerve_found"
LOW_PRESENCE_REASON = "low_presence"

CROP_COLUMNS: tuple[str, ...] = (
    "frame_id", "wrist_id", "participant_id", "plane", "grade", "grade_index",
    "x0", "y0", "crop_size", "centre_x", "centre_y", "nerve_found", "nerve_area_px", "csa_mm2",
    "crop_path", "centre_in_true_mask", "true_nerve_in_crop", "true_nerve_area_px", "reason", "presence_score",
)
"""Columns of crops.csv: the contract's, plus nerve_area_px, true_nerve_in_crop, true_nerve_area_px, reason,
presence_score (NaN without a presence scorer)."""


@dataclass(frozen=True)
class CropPlan:
    """Where to cut one frame, or why not.

    Attributes:
        nerve_found: the predicted nerve area reached the minimum.
        area_px: predicted nerve area in frame pixels.
        centre_x, centre_y: nerve centroid (column, row) in frame pixels; NaN without a nerve.
        x0, y0: top-left corner of the crop box (column, row); -1 without a nerve.
        crop_size: side of the square box in pixels.
    """

    nerve_found: bool
    area_px: int
    centre_x: float
    centre_y: float
    x0: int
    y0: int
    crop_size: int


def crop_origin(centre_x: float, centre_y: float, crop_size: int, width: int, height: int) -> tuple[int, int]:
    """Top-left (x0, y0) of a ``crop_size`` box centred on (centre_x, centre_y), clamped inside.

    The box covers columns ``x0 .. x0 + crop_size - 1``; its centre is ``x0 + (crop_size-1)/2``,
    so ``x0 = round(centre_x - (crop_size - 1) / 2)`` (halves round up), then clamped to
    ``[0, width - crop_size]`` (same for rows). Never pads outside the image.

    Raises:
        ValueError: the crop is larger than the frame or not positive.
    """
    if crop_size <= 0 or crop_size > width or crop_size > height:
        raise ValueError(f"crop_size {crop_size} does not fit a {width}x{height} frame")
    half = (crop_size - 1) / 2.0
    x0 = int(np.floor(centre_x - half + 0.5))
    y0 = int(np.floor(centre_y - half + 0.5))
    return min(max(x0, 0), width - crop_size), min(max(y0, 0), height - crop_size)


def plan_crop(pred_mask: np.ndarray, crop_size: int, min_area_px: float) -> CropPlan:
    """Apply the centre, border and no-nerve rules to one predicted mask (H, W)."""
    area = int((pred_mask > 0).sum())
    centroid = mask_centroid(pred_mask)
    if centroid is None or area < min_area_px:
        return CropPlan(False, area, float("nan"), float("nan"), -1, -1, crop_size)
    height, width = pred_mask.shape
    x0, y0 = crop_origin(*centroid, crop_size, width, height)
    return CropPlan(True, area, float(centroid[0]), float(centroid[1]), x0, y0, crop_size)


def extract_crop(image: np.ndarray, x0: int, y0: int, crop_size: int) -> np.ndarray:
    """The ``crop_size`` square of ``image`` at (x0, y0); the box must lie inside the image."""
    height, width = image.shape[:2]
    if x0 < 0 or y0 < 0 or x0 + crop_size > width or y0 + crop_size > height:
        raise ValueError(f"crop box ({x0}, {y0}, {crop_size}) leaves the {width}x{height} image")
    return image[y0 : y0 + crop_size, x0 : x0 + crop_size].copy()


def csa_mm2(mask: np.ndarray, spacing_row_mm: float, spacing_col_mm: float) -> float:
    """Area of a binary mask in mm²: pixel count x row spacing x column spacing."""
    return float((mask > 0).sum()) * float(spacing_row_mm) * float(spacing_col_mm)


def min_area_pixels(min_area_mm2: float, spacing_row_mm: float, spacing_col_mm: float) -> float:
    """The no-nerve threshold in pixels of a frame with the given spacing."""
    return float(min_area_mm2) / (float(spacing_row_mm) * float(spacing_col_mm))


def fraction_in_box(mask: np.ndarray, x0: int, y0: int, crop_size: int) -> float:
    """Fraction of a mask's pixels inside the box (NaN for an empty mask)."""
    total = int((mask > 0).sum())
    if total == 0:
        return float("nan")
    inside = int((mask[y0 : y0 + crop_size, x0 : x0 + crop_size] > 0).sum())
    return inside / total


def crop_record(
    frame: pd.Series | dict,
    pred_mask: np.ndarray,
    crop_size: int,
    min_area_mm2: float,
    true_mask: np.ndarray | None = None,
    presence_score: float = float("nan"),
    presence_threshold: float | None = None,
) -> tuple[dict, CropPlan]:
    """The crops.csv row of one frame (without ``crop_path``) and its crop plan.

    The area rule decides first; a frame it keeps is then dropped as ``low_presence`` when
    ``presence_threshold`` is given and ``presence_score`` is below it (a NaN score is below).
    """
    sr, sc = float(frame["spacing_row_mm"]), float(frame["spacing_col_mm"])
    plan = plan_crop(pred_mask, crop_size, min_area_pixels(min_area_mm2, sr, sc))
    reason = "" if plan.nerve_found else NO_NERVE_REASON
    if plan.nerve_found and presence_threshold is not None and not presence_score >= presence_threshold:
        reason = LOW_PRESENCE_REASON
        plan = CropPlan(False, plan.area_px, float("nan"), float("nan"), -1, -1, crop_size)
    row = {c: frame[c] for c in ("frame_id", "wrist_id", "participant_id", "plane", "grade", "grade_index")}
    row.update(
        x0=plan.x0, y0=plan.y0, crop_size=crop_size, centre_x=plan.centre_x, centre_y=plan.centre_y,
        nerve_found=plan.nerve_found, nerve_area_px=plan.area_px,
        csa_mm2=csa_mm2(pred_mask, sr, sc) if plan.nerve_found else float("nan"),
        crop_path="", centre_in_true_mask=None, true_nerve_in_crop=float("nan"), true_nerve_area_px=float("nan"),
        reason=reason, presence_score=float(presence_score),
    )
    if true_mask is not None:
        row["true_nerve_area_px"] = int((true_mask > 0).sum())
        if row["true_nerve_area_px"] > 0:  # scored only where the truth shows a nerve
            # a frame without a crop has no centre in the nerve: a miss
            row["centre_in_true_mask"] = plan.nerve_found and point_in_mask(true_mask, plan.centre_x, plan.centre_y)
            if plan.nerve_found:
                row["true_nerve_in_crop"] = fraction_in_box(true_mask, plan.x0, plan.y0, crop_size)
    return row, plan


def crop_frames(
    frames: pd.DataFrame,
    frames_dir: str | Path,
    crops_dir: str | Path,
    model,
    *,
    input_size: int,
    crop_size: int,
    min_area_mm2: float,
    threshold: float = 0.5,
    flip_tta: bool = False,
    hints: Mapping[tuple[str, str], tuple[float, float]] | None = None,
    masks_dir: str | Path | None = None,
    work_root: str | Path | None = None,
    batch_size: int = 64,
    progress: bool = True,
    presence_scorer: Callable[[Sequence[np.ndarray]], np.ndarray] | None = None,
    presence_threshold: float | None = None,
    shared_pass: Callable[[Sequence[np.ndarray]], tuple[np.ndarray, np.ndarray]] | None = None,
) -> pd.DataFrame:
    """Segment every frame of ``frames``, cut nerve-centred crops, and return crops.csv.

    Frames are read from ``frames_dir/<frame_id>.png``, segmented in batches with ``model``
    (``ctslib.nerve.inference.segment_images``), cropped by ``crop_record``'s rules and written to
    ``crops_dir/<frame_id>.png``. ``hints`` maps (wrist_id, plane) to a point (x, y) given as
    fractions of the frame's width and height: the predicted component nearest it is kept
    instead of the largest (``ctslib.nerve.hints.read_nerve_hints``). True masks (``masks_dir/<frame_id>.png``,
    where ``has_mask``) are used only for the centre check. ``presence_scorer`` maps a batch of
    frames to presence scores (``ctslib.nerve.presence.Presence.scores``); with ``presence_threshold``
    frames scoring below it get no crop (``reason="low_presence"``). ``shared_pass`` replaces ``presence_scorer``
    where ``model`` holds the presence weights themselves: it maps frames to presence scores *and* the
    model's probability maps (``Presence.scores_and_probabilities``), which stand in for the un-mirrored
    segmentation pass (bit-identical: the same layers on the same batches).

    Returns:
        One row per input frame (columns ``CROP_COLUMNS``), including no-nerve frames
        (``nerve_found=False``, empty ``crop_path``, ``reason`` "no_nerve_found" or "low_presence").
    """
    if presence_threshold is not None and presence_scorer is None and shared_pass is None:
        raise ValueError("a presence threshold needs a presence scorer")
    if shared_pass is not None and presence_scorer is not None:
        raise ValueError("give a presence scorer or a shared pass, not both")
    from tqdm.auto import tqdm

    frames_dir, crops_dir = Path(frames_dir), Path(crops_dir)
    base = Path(work_root) if work_root is not None else crops_dir.parent
    for fid in frames["frame_id"]:  # check inputs before writing anything
        if not (frames_dir / f"{fid}.png").exists():
            raise InputError(f"frame image of {fid} not found (written by notebook 02)", file=frames_dir / f"{fid}.png")
    rows: list[dict] = []
    records = frames.to_dict("records")
    batches = range(0, len(records), batch_size)
    for start in tqdm(batches, desc="segment + crop", disable=not progress):
        chunk = records[start : start + batch_size]
        images = [read_gray(frames_dir / f"{f['frame_id']}.png") for f in chunk]
        points = [hint_pixels(hints, f, im.shape) for f, im in zip(chunk, images)] if hints else None
        if shared_pass is not None:
            scores, plain = shared_pass(images)
        else:
            plain = None
            scores = presence_scorer(images) if presence_scorer is not None else np.full(len(images), np.nan)
        preds = segment_images(model, images, input_size, threshold, flip_tta=flip_tta, hints=points, unflipped=plain)
        for frame, image, pred, score in zip(chunk, images, preds, scores):
            true = None
            if masks_dir is not None and bool(frame.get("has_mask", False)):
                true_path = Path(masks_dir) / f"{frame['frame_id']}.png"
                true = read_mask(true_path) if true_path.exists() else None
            row, plan = crop_record(frame, pred, crop_size, min_area_mm2, true, float(score), presence_threshold)
            if plan.nerve_found:
                out = crops_dir / f"{frame['frame_id']}.png"
                write_png(out, extract_crop(image, plan.x0, plan.y0, crop_size))
                row["crop_path"] = out.relative_to(base).as_posix() if out.is_relative_to(base) else str(out)
            rows.append(row)
    return pd.DataFrame(rows, columns=list(CROP_COLUMNS))
