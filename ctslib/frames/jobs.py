"""Stage 02's jobs and outputs: which videos to extract, the frame table, the PNGs and their staging.

* ``read_wrists`` / ``video_jobs``: stage 01's graded wrists -> one ``VideoJob`` per wrist and plane
  with a video (the rest listed, with why);
* ``frame_table`` / ``frame_id``: the rows of ``frames.csv``;
* ``write_frame_pngs`` / ``staged_dirs``: the frame and mask PNGs, replacing the old ones only when the
  whole stage succeeded.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ctslib.common.errors import InputError
from ctslib.common.handoff import write_png
from ctslib.common.paths import canonical_stem
from ctslib.frames.prepare import ExtractedVideo

def frame_id(wrist_id: str, plane: str, sample_index: int) -> str:
    """``<wrist_id>_<plane>_<frame number at TARGET_FPS, 4 digits>`` (docs/pipeline.md)."""
    return f"{wrist_id}_{plane}_{int(sample_index):04d}"


@contextmanager
def staged_dirs(*targets: Path) -> Iterator[list[Path]]:
    """Yield empty staging folders beside ``targets``; on success they replace the targets.

    Lets a stage write thousands of PNGs while keeping the "nothing under its final name unless the
    whole stage succeeded" rule: on an error the staging folders are removed and old outputs stay.
    """
    staging = [t.parent / f".{t.name}.staging" for t in targets]
    for folder in staging:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    try:
        yield staging
        for folder, target in zip(staging, targets):
            old = target.parent / f".{target.name}.old"
            shutil.rmtree(old, ignore_errors=True)
            if target.exists():
                os.replace(target, old)
            os.replace(folder, target)
            shutil.rmtree(old, ignore_errors=True)
    finally:
        for folder in staging:
            shutil.rmtree(folder, ignore_errors=True)


WRIST_COLUMNS: tuple[str, ...] = ("wrist_id", "participant_id", "side", "grade", "grade_index", "video_transverse", "video_longitudinal")
"""Columns of stage 01's wrists.csv that extraction reads."""

PNG_POLICIES: tuple[str, ...] = ("kept", "kept+masked", "all")
"""Which frames get a PNG: kept frames only; kept frames and every frame with a mask (what stage 03
trains its segmenter on); or every extracted frame. frames.csv always lists every extracted frame."""


@dataclass(frozen=True)
class VideoJob:
    """One video to extract: the wrist it belongs to (pseudonymised) and its file name in videos/."""

    wrist_id: str
    participant_id: str
    side: str
    plane: str
    grade: str
    grade_index: int
    file: str

    @property
    def stem(self) -> str:
        """The video's stem, side and plane in canonical case (source participant id: never written to outputs)."""
        return canonical_stem(Path(self.file).stem)

    @property
    def label(self) -> str:
        """A name safe for reports: pseudonymised wrist id and plane."""
        return f"{self.wrist_id}_{self.plane}"


def read_wrists(path: str | Path) -> pd.DataFrame:
    """Read stage 01's wrists.csv (text columns kept as text; blanks as empty strings)."""
    path = Path(path)
    if not path.exists():
        raise InputError("wrists table not found; run notebook 01 first", file=path)
    wrists = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in WRIST_COLUMNS if c not in wrists.columns]
    if missing:
        raise InputError(f"missing columns {missing} (written by notebook 01)", file=path, column=missing[0])
    return wrists


def video_jobs(wrists: pd.DataFrame, planes: Sequence[str] = ("transverse", "longitudinal")) -> tuple[list[VideoJob], pd.DataFrame]:
    """Videos to extract, one per graded wrist and plane with a video file.

    Returns:
        The jobs, and a table (wrist_id, plane, why) of wrist-planes that have nothing to extract:
        wrists without a grade (left out by the NCS policy) and planes without a video file.
    """
    jobs, left_out = [], []
    for row in wrists.to_dict("records"):
        for plane in planes:
            file = str(row.get(f"video_{plane}", "") or "").strip()
            if not str(row["grade"]).strip():
                left_out.append({"wrist_id": row["wrist_id"], "plane": plane, "why": "wrist has no grade"})
            elif not file:
                left_out.append({"wrist_id": row["wrist_id"], "plane": plane, "why": "no video file"})
            else:
                jobs.append(
                    VideoJob(
                        wrist_id=row["wrist_id"],
                        participant_id=row["participant_id"],
                        side=row["side"],
                        plane=plane,
                        grade=row["grade"],
                        grade_index=int(float(row["grade_index"])),
                        file=file,
                    )
                )
    return jobs, pd.DataFrame(left_out, columns=["wrist_id", "plane", "why"])


def missing_video_warnings(left_out: pd.DataFrame) -> list[str]:
    """One report-index warning per graded wrist-plane without a video file (``video_jobs``' ``left_out``).

    Names the pseudonymised wrist and the plane (never the source id); ``ctslib.data.validate`` gives
    the same finding as a WARNING naming the cohort row, so the check and the run agree.
    """
    missing = left_out[left_out["why"] == "no video file"]
    return [f"{row.wrist_id}: no {row.plane} video in the data folder; the wrist is left out of the {row.plane} "
            "model and its other plane is used (see ctslib.data.validate)." for row in missing.itertuples(index=False)]


def skip_record(job: VideoJob, step: str, error: InputError) -> dict[str, str]:
    """One row of the ``skipped_inputs`` table: the pseudonymised video and why it was skipped.

    The error's reason is kept, its file path is not (file names carry source participant ids).
    """
    return {"wrist_id": job.wrist_id, "plane": job.plane, "step": step, "error": error.reason}


def frame_table(job: VideoJob, video: ExtractedVideo, masks: Mapping[int, np.ndarray], decision: pd.DataFrame) -> pd.DataFrame:
    """frames.csv rows of one video: identity, timing, spacing, mask flag, QC scores and decision."""
    frames = video.frames.reset_index(drop=True)
    table = pd.DataFrame(
        {
            "frame_id": [frame_id(job.wrist_id, job.plane, k) for k in frames["sample_index"]],
            "wrist_id": job.wrist_id,
            "participant_id": job.participant_id,
            "side": job.side,
            "plane": job.plane,
            "grade": job.grade,
            "grade_index": job.grade_index,
            "sample_index": frames["sample_index"],
            "time_s": frames["time_s"],
            "source_index": frames["source_index"],
            "spacing_row_mm": frames["spacing_row_mm"],
            "spacing_col_mm": frames["spacing_col_mm"],
            "has_mask": [int(i) in masks for i in frames["source_index"]],
        }
    )
    return pd.concat([table, decision.reset_index(drop=True)], axis=1)


def write_frame_pngs(
    table: pd.DataFrame,
    images: np.ndarray,
    masks: Mapping[int, np.ndarray],
    frames_dir: Path,
    masks_dir: Path,
    policy: str = "kept+masked",
) -> pd.Series:
    """Write ``<frame_id>.png`` frames (and 0/255 masks) per ``PNG_POLICIES``; returns ``has_png``.

    The folders are staging folders (``staged_dirs``), so each file is written in place, not atomically.
    """
    if policy not in PNG_POLICIES:
        raise ValueError(f"unknown PNG policy {policy!r}; use one of {PNG_POLICIES}")
    kept, has_mask = table["kept"].astype(bool), table["has_mask"].astype(bool)
    wanted = {"kept": kept, "kept+masked": kept | has_mask, "all": pd.Series(True, index=table.index)}[policy]
    for i in np.flatnonzero(wanted.to_numpy()):
        row = table.iloc[i]
        write_png(frames_dir / f"{row['frame_id']}.png", images[i], atomic=False)
        if row["has_mask"]:
            write_png(masks_dir / f"{row['frame_id']}.png", masks[int(row["source_index"])] * np.uint8(255), atomic=False)
    return wanted.rename("has_png")
