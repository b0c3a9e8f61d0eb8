"""Nerve-centred fixed-size crops, nerve area (CSA) and the no-nerve rule.

Rules (the study's decisions; the numbers are notebook parameters):

* **Centre.** A crop of ``crop_size`` x ``crop_size`` pixels is centred on the centroid of the
  *predicted* nerve mask (largest connected component, see ``ctslib.nerve.segment.postprocess``).
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

import cv2
import numpy as np
import pandas as pd

from ctslib import GRADES, PLANES
from ctslib.common.errors import InputError
from ctslib.nerve.geometry import mask_centroid, point_in_mask
from ctslib.common.handoff import as_bool, write_png  # noqa: F401  (one definition, re-exported)

NO_NERVE_REASON = "no_nerve_found"
LOW_PRESENCE_REASON = "low_presence"

FRAME_COLUMNS: tuple[str, ...] = (
    "frame_id", "wrist_id", "participant_id", "plane", "grade", "grade_index",
    "spacing_row_mm", "spacing_col_mm", "has_mask", "kept",
)
"""Columns of stage 02's frames.csv that this stage reads."""

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


# -- frames.csv ---------------------------------------------------------------------------


def validate_frames(frames: pd.DataFrame, file: str | Path | None = None) -> pd.DataFrame:
    """Check stage 02's frames table; returns a copy with boolean ``kept``/``has_mask``.

    Raises:
        InputError: a needed column is missing, or a kept frame has a missing/non-positive
            pixel spacing or an unknown plane (naming the row and column).
    """
    missing = [c for c in FRAME_COLUMNS if c not in frames.columns]
    if missing:
        raise InputError(f"missing columns {missing} (written by notebook 02)", file=file, column=missing[0])
    out = frames.copy()
    out["kept"] = as_bool(out["kept"])
    out["has_mask"] = as_bool(out["has_mask"])
    for i, row in enumerate(out.itertuples(index=False), start=1):
        if not row.kept:
            continue
        if row.plane not in PLANES:
            raise InputError(f"plane {row.plane!r} not in {PLANES}", file=file, row=i, column="plane")
        for col in ("spacing_row_mm", "spacing_col_mm"):
            value = pd.to_numeric(getattr(row, col), errors="coerce")
            if not (np.isfinite(value) and value > 0):
                raise InputError(f"pixel spacing must be a positive number, got {getattr(row, col)!r}",
                                 file=file, row=i, column=col)
    return out


def masked_frames(frames: pd.DataFrame) -> pd.DataFrame:
    """Every frame with a nerve mask and a stored PNG, whatever QC decided (the segmenter's training pool).

    Stage 02 stores PNGs of kept and of masked frames by default (``PNG_FRAMES = "kept+masked"``);
    with another policy, masked frames without a PNG (``has_png`` false) are left out.
    """
    keep = as_bool(frames["has_mask"])
    if "has_png" in frames.columns:
        keep &= as_bool(frames["has_png"])
    return frames[keep].reset_index(drop=True)


def read_frames(path: str | Path) -> pd.DataFrame:
    """Read and validate frames.csv (see ``validate_frames``)."""
    if not Path(path).exists():
        raise InputError("frames table not found; run notebook 02 first", file=path)
    return validate_frames(pd.read_csv(path, dtype={"frame_id": str, "participant_id": str}), file=path)


# -- one frame and the whole table -----------------------------------------------------------


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
) -> pd.DataFrame:
    """Segment every frame of ``frames``, cut nerve-centred crops, and return crops.csv.

    Frames are read from ``frames_dir/<frame_id>.png``, segmented in batches with ``model``
    (``ctslib.nerve.segment.segment_images``), cropped by ``crop_record``'s rules and written to
    ``crops_dir/<frame_id>.png``. ``hints`` maps (wrist_id, plane) to a point (x, y) given as
    fractions of the frame's width and height: the predicted component nearest it is kept
    instead of the largest (``read_nerve_hints``). True masks (``masks_dir/<frame_id>.png``,
    where ``has_mask``) are used only for the centre check. ``presence_scorer`` maps a batch of
    frames to presence scores (``ctslib.nerve.presence.Presence.scores``); with ``presence_threshold``
    frames scoring below it get no crop (``reason="low_presence"``).

    Returns:
        One row per input frame (columns ``CROP_COLUMNS``), including no-nerve frames
        (``nerve_found=False``, empty ``crop_path``, ``reason`` "no_nerve_found" or "low_presence").
    """
    if presence_threshold is not None and presence_scorer is None:
        raise ValueError("a presence threshold needs a presence scorer")
    from tqdm.auto import tqdm

    from ctslib.nerve.segment import read_gray, read_mask, segment_images

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
        preds = segment_images(model, images, input_size, threshold, flip_tta=flip_tta, hints=points)
        scores = presence_scorer(images) if presence_scorer is not None else np.full(len(images), np.nan)
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


# -- nerve hints -------------------------------------------------------------------------------

HINT_COLUMNS: tuple[str, ...] = ("video", "x", "y")
"""Columns of the optional ``DATA/nerve_hints.csv``: video stem, point as fractions of width/height."""


def read_nerve_hints(path: str | Path, id_map: pd.DataFrame | None = None) -> dict[tuple[str, str], tuple[float, float]]:
    """Read ``nerve_hints.csv``: one marked nerve point per video -> {(wrist_id, plane): (x, y)}.

    ``video`` is a video stem of ``DATA/videos`` (``<participant_id>_<side>_<plane>``, any letter
    case of side and plane, extension optional). ``x`` and ``y`` are fractions of the frame's
    width and height (0 = left / top edge, 1 = right / bottom edge), so a point read off the
    source video (pixel column / width, pixel row / height) stays valid after the frames are
    resized. ``id_map`` (columns source_id, participant_id: stage 01's pseudonym table) turns
    the source participant id into the pseudonymised wrist id used by frames.csv.

    Raises:
        InputError: a missing column, a duplicated video, a malformed stem, an x or y outside
            [0, 1], or a participant the pseudonym table does not know (naming file and row).
    """
    from ctslib import PLANES, SIDES

    table = pd.read_csv(path, dtype=str, keep_default_na=False, sep=None, engine="python")
    table.columns = [c.strip().lower() for c in table.columns]
    missing = [c for c in HINT_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"nerve hints need columns {list(HINT_COLUMNS)}; missing {missing}", file=path, column=missing[0])
    pseudonym = dict(zip(id_map["source_id"].astype(str), id_map["participant_id"].astype(str))) if id_map is not None else None
    hints: dict[tuple[str, str], tuple[float, float]] = {}
    for i, row in enumerate(table.itertuples(index=False), start=1):  # data rows, header excluded
        if not any(str(v).strip() for v in row):
            continue  # blank line
        stem = Path(str(row.video).strip()).name
        stem = stem.rsplit(".", 1)[0] if "." in stem else stem
        parts = stem.rsplit("_", 2)
        if len(parts) != 3 or parts[1].upper() not in SIDES or parts[2].lower() not in PLANES:
            raise InputError(f"video {row.video!r} is not <participant_id>_<side>_<plane>", file=path, row=i, column="video")
        source, side, plane = parts[0], parts[1].upper(), parts[2].lower()
        point = []
        for col in ("x", "y"):
            value = pd.to_numeric(str(getattr(row, col)).strip().replace(",", "."), errors="coerce")
            if not (np.isfinite(value) and 0.0 <= value <= 1.0):
                raise InputError(f"{col} must be a fraction of the frame in [0, 1], got {getattr(row, col)!r}",
                                 file=path, row=i, column=col)
            point.append(float(value))
        if pseudonym is not None:
            if source not in pseudonym:
                raise InputError(f"participant {source!r} is not in cohort.csv", file=path, row=i, column="video")
            source = pseudonym[source]
        key = (f"{source}_{side}", plane)
        if key in hints:
            raise InputError(f"video {stem!r} has more than one hint", file=path, row=i, column="video")
        hints[key] = (point[0], point[1])
    return hints


def load_hints(hints_csv: str | Path, id_map_csv: str | Path) -> dict[tuple[str, str], tuple[float, float]]:
    """``read_nerve_hints`` of ``DATA/nerve_hints.csv`` with stage 01's pseudonyms; {} when absent."""
    if not Path(hints_csv).exists():
        return {}
    id_map = pd.read_csv(id_map_csv, dtype=str) if Path(id_map_csv).exists() else None
    return read_nerve_hints(hints_csv, id_map)


def hint_pixels(
    hints: Mapping[tuple[str, str], tuple[float, float]] | None, frame: Mapping, shape: tuple[int, ...]
) -> tuple[float, float] | None:
    """The hint of a frame's video in the frame's pixels (column, row), or None without one."""
    point = (hints or {}).get((str(frame["wrist_id"]), str(frame["plane"])))
    if point is None:
        return None
    height, width = shape[:2]
    return point[0] * (width - 1), point[1] * (height - 1)


# -- summaries ------------------------------------------------------------------------------


def rejection_flags(crops: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """(no nerve found by the area rule, rejected by the presence rule) per crops.csv row."""
    found = as_bool(crops["nerve_found"])
    reason = crops["reason"].fillna("").astype(str) if "reason" in crops else pd.Series("", index=crops.index)
    low = ~found & reason.eq(LOW_PRESENCE_REASON)
    return ~found & ~low, low


def crop_funnel(frames: pd.DataFrame, crops: pd.DataFrame) -> pd.DataFrame:
    """Per plane (and total): frames in frames.csv -> kept -> no nerve found -> presence rejected -> crops.

    ``no_nerve_found`` counts frames whose predicted nerve failed the area rule, ``presence_rejected``
    those that passed it but whose presence score was below the threshold. ``*_true_empty`` count
    frames whose true mask is empty (no nerve in view; 0 without truth): a rejection there is
    correct, a crop there is cut on something else.
    """
    rows = []
    for plane in [*PLANES, "all"]:
        f = frames if plane == "all" else frames[frames["plane"] == plane]
        c = crops if plane == "all" else crops[crops["plane"] == plane]
        found = as_bool(c["nerve_found"])
        no_nerve, low = rejection_flags(c)
        true_area = c["true_nerve_area_px"] if "true_nerve_area_px" in c else pd.Series(np.nan, index=c.index)
        true_empty = pd.to_numeric(true_area, errors="coerce").eq(0)
        rows.append(
            {
                "plane": plane,
                "frames": len(f),
                "kept_frames": int(as_bool(f["kept"]).sum()),
                "no_nerve_found": int(no_nerve.sum()),
                "no_nerve_found_true_empty": int((no_nerve & true_empty).sum()),
                "presence_rejected": int(low.sum()),
                "presence_rejected_true_empty": int((low & true_empty).sum()),
                "crops": int(found.sum()),
                "crops_true_empty": int((found & true_empty).sum()),
            }
        )
    return pd.DataFrame(rows)


def empty_truth_crop_warnings(funnel: pd.DataFrame, max_share: float = 0.1) -> list[str]:
    """Warnings for planes where more than ``max_share`` of crops were cut from frames whose true mask is empty.

    Such a crop shows no nerve (the plane left it; the segmenter took another structure for it), yet
    it carries the wrist's grade into training and evaluation. Without true masks nothing is counted.
    """
    messages = []
    for row in funnel[funnel["plane"] != "all"].itertuples(index=False):
        share = row.crops_true_empty / row.crops if row.crops else 0.0
        if share > max_share:
            messages.append(
                f"{row.crops_true_empty} of {row.crops} {row.plane} crops ({share:.1%}) are cut from frames whose true "
                f"mask shows no nerve: the segmenter found a nerve where the plane had left it, and these crops "
                f"train and score the {row.plane} model with the wrist's grade on something else")
    return messages


def no_nerve_by_video(crops: pd.DataFrame) -> pd.DataFrame:
    """Per video (wrist x plane): kept frames tried, frames with no nerve found, and their share.

    ``no_nerve_found`` counts every kept frame left without a crop, by either rule;
    ``presence_rejected`` how many of them the presence rule dropped (their predicted nerve passed
    the area rule). With true masks (``true_nerve_area_px``), ``no_nerve_true_empty`` counts the
    no-nerve frames whose true mask is empty too (correct rejections: QC kept a frame without the
    nerve in view).
    """
    found = as_bool(crops["nerve_found"])
    _, low = rejection_flags(crops)
    true_area = pd.to_numeric(crops.get("true_nerve_area_px", pd.Series(np.nan, index=crops.index)), errors="coerce")
    table = (
        crops.assign(no_nerve=~found, presence_rejected=low, no_nerve_true_empty=~found & true_area.eq(0))
        .groupby(["wrist_id", "plane"], sort=True)
        .agg(kept_frames=("frame_id", "size"), no_nerve_found=("no_nerve", "sum"),
             presence_rejected=("presence_rejected", "sum"), no_nerve_true_empty=("no_nerve_true_empty", "sum"))
        .reset_index()
    )
    for col in ("no_nerve_found", "presence_rejected", "no_nerve_true_empty"):
        table[col] = table[col].astype(int)
    table["no_nerve_share"] = table["no_nerve_found"] / table["kept_frames"]
    return table


def no_nerve_warnings(by_video: pd.DataFrame, max_share: float) -> list[str]:
    """Warnings for videos where no nerve was found in every kept frame, or in more than ``max_share``.

    Where true masks confirm every rejection of a video (its no-nerve frames all have an empty mask),
    that video is not warned on its own: one line counts those videos (QC's misses, correctly caught).

    Raises:
        StageError: no nerve was found in any kept frame of any video, or there was no kept
            frame at all (nothing to crop).
    """
    from ctslib.common.errors import StageError

    tried = int(by_video["kept_frames"].sum())
    if tried == 0:
        raise StageError("no kept frame to segment: quality control (notebook 02, tables/qc_funnel) kept none")
    if int(by_video["no_nerve_found"].sum()) == tried:
        raise StageError(
            f"no nerve found in any of the {tried} kept frames of {len(by_video)} videos: check the frames "
            "(figures of notebook 02), give masks to fine-tune the segmenter, or mark the nerve in nerve_hints.csv"
        )
    messages, confirmed = [], []
    for row in by_video.itertuples(index=False):
        video = f"{row.wrist_id} {row.plane}"
        empty = int(getattr(row, "no_nerve_true_empty", 0))
        truth = f"; the true masks show no nerve in {empty} of them (QC kept frames without the nerve)" if empty else ""
        if row.no_nerve_found == row.kept_frames:
            messages.append(f"{video}: no nerve found in any of its {row.kept_frames} kept frames (the video gives no crops){truth}")
        elif row.no_nerve_share > max_share and empty == row.no_nerve_found:
            confirmed.append(row)  # every rejection was right: QC's miss, one summary line below
        elif row.no_nerve_share > max_share:
            messages.append(f"{video}: no nerve found in {row.no_nerve_found} of {row.kept_frames} kept frames "
                            f"({row.no_nerve_share:.0%}, over {max_share:.0%}){truth}")
    if confirmed:
        frames = sum(int(r.no_nerve_found) for r in confirmed)
        messages.append(
            f"{len(confirmed)} videos had no nerve found in over {max_share:.0%} of their kept frames ({frames} frames), "
            "and the true masks show no nerve in every one of those frames: QC kept frames without the nerve and the "
            "segmenter rejected them correctly (per video: tables/crop_funnel_by_video)")
    return messages


def centre_hit_rate(crops: pd.DataFrame) -> float:
    """Share of frames whose true mask shows a nerve with the crop centre inside that nerve.

    No-nerve frames count as misses (``crop_record`` sets them False); frames without a true
    mask, or with an empty one, are left out. NaN when no frame is scored.
    """
    scored = crops["centre_in_true_mask"].dropna()
    return float(as_bool(scored).mean()) if len(scored) else float("nan")


def csa_by_grade(crops: pd.DataFrame, plane: str = "transverse") -> pd.DataFrame:
    """Predicted nerve area (mm²) per grade of one plane: n crops, wrists, mean, SD, median, IQR."""
    part = crops[(crops["plane"] == plane) & as_bool(crops["nerve_found"])]
    rows = []
    for grade in GRADES:
        g = part[part["grade"] == grade]["csa_mm2"].astype(float)
        rows.append(
            {
                "grade": grade,
                "n_crops": len(g),
                "n_wrists": part.loc[part["grade"] == grade, "wrist_id"].nunique(),
                "csa_mm2_mean": g.mean(),
                "csa_mm2_sd": g.std(ddof=1) if len(g) > 1 else float("nan"),
                "csa_mm2_median": g.median(),
                "csa_mm2_q1": g.quantile(0.25) if len(g) else float("nan"),
                "csa_mm2_q3": g.quantile(0.75) if len(g) else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def pick_examples(crops: pd.DataFrame, seed: int) -> pd.DataFrame:
    """One cropped frame per grade x plane (seeded choice), for the example figure."""
    found = crops[as_bool(crops["nerve_found"])]
    picks = []
    for plane in PLANES:
        for grade in GRADES:
            part = found[(found["plane"] == plane) & (found["grade"] == grade)]
            if len(part):
                picks.append(part.sample(1, random_state=seed))
    return pd.concat(picks, ignore_index=True) if picks else found.head(0)


def plot_crop_examples(
    images: Sequence[np.ndarray],
    pred_masks: Sequence[np.ndarray],
    rows: pd.DataFrame,
    true_masks: Sequence[np.ndarray | None] | None = None,
    title: str | None = None,
):
    """Frames with the predicted nerve contour (yellow), true contour (cyan, if any) and crop box (red).

    Laid out with planes as rows and grades as columns (``rows`` from ``pick_examples``); a legend
    names the marks; ``title`` (e.g. from ``ctslib.figures.figure_title``) goes on top.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    # constrained layout keeps panel titles, the suptitle and the legend below apart (tight_layout let them overlap)
    fig, axes = plt.subplots(len(PLANES), len(GRADES), figsize=(3.0 * len(GRADES), 3.5 * len(PLANES) + 0.6),
                             squeeze=False, layout="constrained")
    for ax in axes.ravel():
        ax.axis("off")
    for k, row in enumerate(rows.itertuples(index=False)):
        ax = axes[PLANES.index(row.plane), GRADES.index(row.grade)]
        ax.imshow(images[k], cmap="gray", vmin=0, vmax=255)
        true = true_masks[k] if true_masks is not None else None
        if true is not None and true.any():
            ax.contour(true > 0, levels=[0.5], colors="cyan", linewidths=0.8)
        if pred_masks[k].any():
            ax.contour(pred_masks[k] > 0, levels=[0.5], colors="yellow", linewidths=0.8)
        ax.add_patch(Rectangle((row.x0 - 0.5, row.y0 - 0.5), row.crop_size, row.crop_size,
                               fill=False, edgecolor="red", linewidth=1.2))
        ax.plot(row.centre_x, row.centre_y, "r+", markersize=8)
        measure = "CSA" if row.plane == "transverse" else "nerve area"
        ax.set_title(f"{row.plane} · {row.grade}\n{measure} {row.csa_mm2:.1f} mm²", fontsize=9)
    fig.legend(handles=crop_legend_handles(with_truth=true_masks is not None), loc="outside lower center", ncols=4,
               fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def crop_legend_handles(*, with_truth: bool) -> list:
    """Legend entries for the marks of ``plot_crop_examples``."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Line2D([], [], color="yellow", lw=1.5, label="predicted nerve outline")]
    if with_truth:
        handles.append(Line2D([], [], color="cyan", lw=1.5, label="true nerve outline (mask)"))
    handles += [Patch(fill=False, edgecolor="red", lw=1.2, label="crop box"),
                Line2D([], [], color="red", marker="+", ls="", markersize=8, label="crop centre")]
    return handles


def example_figure(
    crops: pd.DataFrame,
    frames_dir: str | Path,
    masks_dir: str | Path,
    model,
    *,
    input_size: int,
    threshold: float,
    seed: int,
    flip_tta: bool = False,
    hints: Mapping[tuple[str, str], tuple[float, float]] | None = None,
    title: str | None = None,
):
    """``plot_crop_examples`` of one seeded cropped frame per grade x plane, segmented as in ``crop_frames``."""
    from ctslib.nerve.segment import read_gray, read_mask, segment_images

    examples = pick_examples(crops, seed=seed)
    rows = examples.to_dict("records")
    images = [read_gray(Path(frames_dir) / f"{r['frame_id']}.png") for r in rows]
    points = [hint_pixels(hints, r, im.shape) for r, im in zip(rows, images)] if hints else None
    preds = segment_images(model, images, input_size, threshold, flip_tta=flip_tta, hints=points)
    trues = [read_mask(p) if p.exists() else None for p in (Path(masks_dir) / f"{r['frame_id']}.png" for r in rows)]
    return plot_crop_examples(images, preds, examples, trues, title=title)
