"""How well a segmenter outlines the nerve: Dice, IoU, their summaries and the per-frame score.

Dice is scored on frames whose true mask shows a nerve; empty-against-empty frames are counted
apart, so frames without a nerve can never lift a mean Dice to 1.0.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ctslib.data.images import read_gray, read_mask
from ctslib.nerve.inference import segment_images


def dice_score(pred: np.ndarray, true: np.ndarray) -> float:
    """Dice = 2|P∩T| / (|P|+|T|) of two binary masks; NaN when both are empty.

    Empty against empty (no nerve in view, none predicted) is a correct rejection, not a perfect
    segmentation: it is undefined here and counted apart (``summarise_scores``), so frames without
    a nerve can never lift a mean Dice to 1.0.
    """
    p, t = pred > 0, true > 0
    total = int(p.sum() + t.sum())
    return float("nan") if total == 0 else 2.0 * int((p & t).sum()) / total


def iou_score(pred: np.ndarray, true: np.ndarray) -> float:
    """IoU (Jaccard) = |P∩T| / |P∪T| of two binary masks; NaN when both are empty."""
    p, t = pred > 0, true > 0
    union = int((p | t).sum())
    return float("nan") if union == 0 else int((p & t).sum()) / union


SCORE_COLUMNS: tuple[str, ...] = ("id", "true_area_px", "pred_area_px", "dice", "iou")


def segmentation_scores(
    preds: Sequence[np.ndarray], trues: Sequence[np.ndarray], ids: Sequence[str] | None = None
) -> pd.DataFrame:
    """Per-image Dice and IoU with both areas (columns ``SCORE_COLUMNS``); see ``summarise_scores``."""
    if len(preds) != len(trues):
        raise ValueError(f"{len(preds)} predictions but {len(trues)} true masks")
    rows = []
    for i, (p, t) in enumerate(zip(preds, trues)):
        if p.shape != t.shape:
            raise ValueError(f"image {i}: predicted shape {p.shape} != true shape {t.shape}")
        rows.append({"id": ids[i] if ids is not None else i, "true_area_px": int((t > 0).sum()),
                     "pred_area_px": int((p > 0).sum()), "dice": dice_score(p, t), "iou": iou_score(p, t)})
    return pd.DataFrame(rows, columns=list(SCORE_COLUMNS))


def summarise_scores(scores: pd.DataFrame, by: str | None = None) -> pd.DataFrame:
    """Dice/IoU on images whose true mask shows a nerve, and the empty-mask images counted apart.

    Per group of ``by`` and over all images (last row, ``by`` = "all"): ``n_images``;
    ``n_nerve`` images whose truth shows a nerve, with their Dice mean / SD / median and IoU;
    ``n_true_empty`` images with an empty true mask, split into ``n_true_empty_pred_empty``
    (correct rejections) and ``n_true_empty_pred_nerve`` (a nerve predicted where none is).
    Participants are counted too when ``scores`` has a ``participant_id`` column.
    """
    groups = [*(scores.groupby(by) if by else []), ("all", scores)]
    rows = []
    for key, part in groups:
        nerve = part[part["true_area_px"] > 0]
        empty = part[part["true_area_px"] == 0]
        rows.append(
            {
                (by or "set"): key,
                "n_images": len(part),
                **({"n_participants": part["participant_id"].nunique()} if "participant_id" in part else {}),
                "n_nerve": len(nerve),
                "dice_mean": nerve["dice"].mean(),
                "dice_sd": nerve["dice"].std(ddof=1) if len(nerve) > 1 else float("nan"),
                "dice_median": nerve["dice"].median(),
                "iou_mean": nerve["iou"].mean(),
                "iou_median": nerve["iou"].median(),
                "n_true_empty": len(empty),
                "n_true_empty_pred_empty": int((empty["pred_area_px"] == 0).sum()),
                "n_true_empty_pred_nerve": int((empty["pred_area_px"] > 0).sum()),
            }
        )
    return pd.DataFrame(rows)


def score_frames(
    model,
    rows: pd.DataFrame,
    frames_dir: str | Path,
    masks_dir: str | Path,
    *,
    input_size: int,
    threshold: float = 0.5,
    flip_tta: bool = False,
    chunk: int = 256,
) -> pd.DataFrame:
    """Per-frame scores (``segmentation_scores`` + plane, participant_id) of frames with masks.

    Frames are ``frames_dir/<frame_id>.png``, masks ``masks_dir/<frame_id>.png``; the pipeline's
    rule (largest component) applies.
    """
    frames_dir, masks_dir = Path(frames_dir), Path(masks_dir)
    ids = list(rows["frame_id"])
    parts = []
    for start in range(0, len(ids), chunk):  # bounded memory on large folders
        part = ids[start : start + chunk]
        images = [read_gray(frames_dir / f"{f}.png") for f in part]
        trues = [read_mask(masks_dir / f"{f}.png") for f in part]
        preds = segment_images(model, images, input_size, threshold, flip_tta=flip_tta)
        parts.append(segmentation_scores(preds, trues, ids=part))
    scores = pd.concat(parts, ignore_index=True) if parts else segmentation_scores([], [])
    scores["plane"] = rows["plane"].to_numpy()
    scores["participant_id"] = rows["participant_id"].to_numpy()
    return scores


def frame_score(summary: pd.Series) -> float:
    """Mean per-frame score of a ``summarise_scores`` row: Dice on a frame showing a nerve, 1 for an
    empty-truth frame left empty and 0 for one where a nerve was predicted (a crop of no nerve)."""
    n = int(summary.n_nerve) + int(summary.n_true_empty)
    dice_sum = float(summary.dice_mean) * int(summary.n_nerve) if summary.n_nerve else 0.0
    return (dice_sum + int(summary.n_true_empty_pred_empty)) / n if n else float("nan")
