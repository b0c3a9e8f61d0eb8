"""What the crops say: the crop funnel, no-nerve shares per video and their warnings, the centre
hit rate and the nerve area per grade (all read from crops.csv rows, ``ctslib.nerve.crop``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ctslib import GRADES, PLANES
from ctslib.common.errors import StageError
from ctslib.common.handoff import as_bool
from ctslib.nerve.crop import LOW_PRESENCE_REASON


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
