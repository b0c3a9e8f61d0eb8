"""Read back a synthetic dataset's ground truth: summary tables and an example montage.

``truth/`` is for describing the generated data and scoring QC/segmentation; the pipeline never
reads it as an input.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from ctslib import GRADES, PLANES
from ctslib.common.errors import InputError
from ctslib.common.paths import DataLayout

from ctslib.synth.video import EXTRACTION_FPS as PIPELINE_FPS


def read_truth(data_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``truth/frames.csv`` (one row per source frame) and ``truth/wrists.csv`` of a synthetic dataset."""
    truth = DataLayout(Path(data_dir)).truth_dir
    for name in ("frames.csv", "wrists.csv"):
        if not (truth / name).exists():
            raise InputError("no generator ground truth here (not a synthetic dataset?)", file=truth / name)
    frames = pd.read_csv(truth / "frames.csv", keep_default_na=False, na_values=[])
    wrists = pd.read_csv(truth / "wrists.csv")
    return frames, wrists


def extracted(frames: pd.DataFrame, source_fps: float, fps: float = PIPELINE_FPS) -> pd.DataFrame:
    """The truth rows of the frames a ``fps`` extraction keeps (nearest source frame to k / fps)."""
    step = source_fps / fps
    keep = []
    for _, video in frames.groupby("video", sort=False):
        n = len(video)
        wanted = np.unique(np.round(np.arange(0, n, step)).astype(int))
        keep.append(video.iloc[wanted[wanted < n]])
    return pd.concat(keep, ignore_index=True)


def summary_table(frames: pd.DataFrame, wrists: pd.DataFrame, source_fps: float) -> pd.DataFrame:
    """Videos, frames (source and at 5 fps) and bad-frame share per plane and grade."""
    grade = wrists.set_index("wrist_id")["grade"]
    at5 = extracted(frames, source_fps)
    rows = []
    for plane in PLANES:
        for g in GRADES:
            src = frames[(frames["plane"] == plane) & (frames["wrist_id"].map(grade) == g)]
            ext = at5[(at5["plane"] == plane) & (at5["wrist_id"].map(grade) == g)]
            rows.append(
                {
                    "plane": plane,
                    "grade": g,
                    "videos": src["video"].nunique(),
                    "source_frames": len(src),
                    "frames_at_5fps": len(ext),
                    "bad_share": (ext["bad_reason"] != "").mean() if len(ext) else np.nan,
                    "good_at_5fps": int((ext["bad_reason"] == "").sum()),
                }
            )
    table = pd.DataFrame(rows)
    total = {
        "plane": "all", "grade": "all", "videos": table["videos"].sum(), "source_frames": table["source_frames"].sum(),
        "frames_at_5fps": table["frames_at_5fps"].sum(), "bad_share": (at5["bad_reason"] != "").mean(),
        "good_at_5fps": table["good_at_5fps"].sum(),
    }
    return pd.concat([table, pd.DataFrame([total])], ignore_index=True)


def bad_reasons_table(frames: pd.DataFrame, source_fps: float) -> pd.DataFrame:
    """Share of each bad-frame kind among the frames extracted at 5 fps, per plane."""
    at5 = extracted(frames, source_fps)
    reasons = at5["bad_reason"].replace("", "good")
    return pd.crosstab(at5["plane"], reasons, normalize="index").round(3).reset_index()


def mask_csa(data_dir: str | Path, frames: pd.DataFrame, spacing_mm: tuple[float, float]) -> pd.DataFrame:
    """Mean nerve mask area (mm²) of each transverse video's good frames, measured from masks/."""
    layout = DataLayout(Path(data_dir))
    good = frames[(frames["plane"] == "transverse") & (frames["bad_reason"] == "")]
    rows = []
    for stem, video in good.groupby("video", sort=False):
        with np.load(layout.masks_dir / f"{stem}.npz") as npz:
            index, masks = npz["index"], npz["mask"]
        pos = np.searchsorted(index, video["source_index"].to_numpy())
        areas = (masks[pos] == 1).sum(axis=(1, 2)) * spacing_mm[0] * spacing_mm[1]
        rows.append({"video": stem, "wrist_id": video["wrist_id"].iloc[0], "mask_csa_mm2": float(areas.mean())})
    return pd.DataFrame(rows)


def csa_by_grade(wrists: pd.DataFrame, measured: pd.DataFrame | None = None) -> pd.DataFrame:
    """True inlet CSA per grade (n, mean, sd, min, max), with the mean mask CSA where measured."""
    table = (
        wrists.groupby("grade")["csa_mm2"].agg(["count", "mean", "std", "min", "max"]).reindex(list(GRADES)).reset_index()
    )
    table.columns = ["grade", "wrists", "csa_mean_mm2", "csa_sd_mm2", "csa_min_mm2", "csa_max_mm2"]
    if measured is not None and len(measured):
        grade = wrists.set_index("wrist_id")["grade"]
        mean = measured.assign(grade=measured["wrist_id"].map(grade)).groupby("grade")["mask_csa_mm2"].mean()
        table["mask_csa_mean_mm2"] = table["grade"].map(mean)
    return table


@dataclass(frozen=True)
class Example:
    """One stored frame with its mask, for display."""

    grade: str
    plane: str
    video: str
    source_index: int
    frame: np.ndarray  # (H, W) uint8
    mask: np.ndarray  # (H, W) uint8


def read_video_frame(path: Path, index: int) -> np.ndarray:
    """Frame ``index`` of a video as 8-bit grayscale (Motion-JPEG seeks exactly)."""
    cap = cv2.VideoCapture(str(path))
    try:
        cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = cap.read()
    finally:
        cap.release()
    if not ok:
        raise InputError(f"cannot read frame {index}", file=path)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame


def examples(data_dir: str | Path, frames: pd.DataFrame, wrists: pd.DataFrame) -> list[Example]:
    """A good frame (middle of the longest good run) per grade x plane, from the first wrist of each grade."""
    layout = DataLayout(Path(data_dir))
    out = []
    for g in GRADES:
        ids = wrists.loc[wrists["grade"] == g, "wrist_id"]
        if ids.empty:
            continue
        for plane in PLANES:
            video = frames[(frames["wrist_id"] == ids.iloc[0]) & (frames["plane"] == plane)]
            good = video[(video["bad_reason"] == "") & video["nerve_in_view"]]
            row = (good if len(good) else video).iloc[len(good) // 2 if len(good) else 0]
            stem, index = str(row["video"]), int(row["source_index"])
            path = layout.find_video(stem)
            with np.load(layout.masks_dir / f"{stem}.npz") as npz:
                mask = npz["mask"][int(np.searchsorted(npz["index"], index))]
            out.append(Example(g, plane, stem, index, read_video_frame(path, index), mask))
    return out


def shown_video(stem: str, pseudonyms: Mapping[str, str] | None) -> str:
    """A video stem (``S001_L_transverse``) with its participant id replaced by the pseudonym tables use (P001)."""
    participant, _, rest = stem.partition("_")
    return f"{(pseudonyms or {}).get(participant, participant)}_{rest}" if rest else stem


def plot_montage(items: list[Example], spacing_mm: float, pseudonyms: Mapping[str, str] | None = None):
    """Grid of example frames (rows = grade, columns = plane) with the nerve mask outlined.

    ``pseudonyms`` (source participant id -> P001 ...) labels each frame with the id every table uses.
    """
    import matplotlib.pyplot as plt

    grades = [g for g in GRADES if any(e.grade == g for e in items)]
    fig, axes = plt.subplots(len(grades), len(PLANES), figsize=(4.2 * len(PLANES), 4.0 * len(grades)), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for e in items:
        ax = axes[grades.index(e.grade), PLANES.index(e.plane)]
        h, w = e.frame.shape
        extent = (0, w * spacing_mm, h * spacing_mm, 0)
        ax.imshow(e.frame, cmap="gray", vmin=0, vmax=255, extent=extent)
        if e.mask.any():
            ax.contour(np.arange(w) * spacing_mm, np.arange(h) * spacing_mm, e.mask, levels=[0.5], colors="yellow", linewidths=0.8)
        ax.set_title(f"{e.grade} · {e.plane}\n{shown_video(e.video, pseudonyms)} frame {e.source_index}", fontsize=9)
        ax.axis("on")
        ax.set_xlabel("mm", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig
