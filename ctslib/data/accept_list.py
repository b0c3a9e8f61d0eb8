"""Reading the expert's accept-list ``DATA/qc_accept.csv`` and matching its rows to extracted frames.

The paper's experts kept 2,518 of 11,895 frames. When a data folder has such a list, stage 02's
frame decision follows it (``ctslib.frames.qc.final_decision``), and the validator checks every row
names a known video and one of its extracted frames. Bad rows raise ``InputError`` naming file and row.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ctslib.common.errors import InputError
from ctslib.common.paths import canonical_stem


def read_accept_list(path: str | Path) -> pd.DataFrame:
    """Read ``qc_accept.csv``: one accepted frame per row.

    Columns: ``video`` (video file stem, e.g. ``S001_L_transverse``) and, per row, exactly one of
    ``time_s`` (seconds from the start of the video; matched to the nearest extracted frame within
    half a sampling period) or ``frame`` (frame number at the extraction rate, the 4-digit number
    ending a ``frame_id``). Either column may be absent when the other is used throughout.

    Returns:
        Columns ``row`` (1-based data row, for error messages), ``video``, ``time_s``, ``frame``.
    """
    path = Path(path)
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InputError(f"cannot be read as CSV ({type(err).__name__})", file=path) from None
    raw.columns = [c.strip() for c in raw.columns]
    if "video" not in raw.columns or not ({"time_s", "frame"} & set(raw.columns)):
        raise InputError("needs columns 'video' and 'time_s' or 'frame'", file=path)
    rows = []
    for i, record in enumerate(raw.to_dict("records"), start=1):
        video = canonical_stem(record["video"].strip())  # side and plane in any letter case, as video names
        time_text = record.get("time_s", "").strip()
        frame_text = record.get("frame", "").strip()
        if not video:
            raise InputError("video is blank", file=path, row=i, column="video")
        if bool(time_text) == bool(frame_text):
            raise InputError("give exactly one of time_s or frame", file=path, row=i)
        time_s, frame = float("nan"), -1
        if time_text:
            try:
                time_s = float(time_text)
            except ValueError:
                raise InputError(f"not a number: {time_text!r}", file=path, row=i, column="time_s") from None
            if not np.isfinite(time_s) or time_s < 0:
                raise InputError(f"must be a non-negative time, got {time_text!r}", file=path, row=i, column="time_s")
        else:
            if not frame_text.isdigit():
                raise InputError(f"must be a non-negative whole frame number, got {frame_text!r}", file=path, row=i, column="frame")
            frame = int(frame_text)
        rows.append({"row": i, "video": video, "time_s": time_s, "frame": frame})
    return pd.DataFrame(rows, columns=["row", "video", "time_s", "frame"])


def match_accept_list(
    accept: pd.DataFrame,
    schedules: Mapping[str, pd.DataFrame],
    *,
    target_fps: float,
    file: str | Path | None = None,
    ignore: Collection[str] = (),
) -> dict[str, set[int]]:
    """Resolve accept-list rows to frame numbers of the extracted frames.

    Args:
        accept: output of ``read_accept_list``.
        schedules: video stem -> its sampling schedule (``sample_index``, ``time_s``), see
            ``ctslib.data.timing.sample_frames``.
        target_fps: extraction rate (a ``time_s`` matches a frame within ``0.5 / target_fps`` s).
        file: the list's path, for error messages.
        ignore: stems of known videos that are not extracted (wrist without a grade, input skipped
            with SKIP_BAD_INPUTS): their rows are passed over instead of being errors.

    Returns:
        ``{stem: set of accepted sample_index}`` for every stem in ``schedules`` (empty set = none).

    Raises:
        InputError naming the row when a video is unknown or no extracted frame matches.
    """
    accepted: dict[str, set[int]] = {stem: set() for stem in schedules}
    tolerance = 0.5 / target_fps + 1e-6
    for record in accept.to_dict("records"):
        stem, row = record["video"], int(record["row"])
        if stem in ignore and stem not in schedules:
            continue
        if stem not in schedules:
            raise InputError(f"unknown video {stem!r} (not among the videos being extracted)", file=file, row=row, column="video")
        schedule = schedules[stem]
        if record["frame"] >= 0:
            if record["frame"] not in set(schedule["sample_index"].tolist()):
                raise InputError(f"video {stem!r} has no extracted frame number {record['frame']}", file=file, row=row, column="frame")
            accepted[stem].add(int(record["frame"]))
            continue
        gaps = np.abs(schedule["time_s"].to_numpy() - record["time_s"])
        if gaps.size == 0 or gaps.min() > tolerance:
            raise InputError(f"video {stem!r} has no extracted frame at {record['time_s']} s", file=file, row=row, column="time_s")
        accepted[stem].add(int(schedule["sample_index"].iloc[int(np.argmin(gaps))]))
    return accepted
