"""Frame times of a video and the 5 fps sampling taken from them, by timestamp.

The paper extracted frames "at 5 fps". Which source frames that takes is a pure function of the
source frames' start times (30, 25, 24, 10, 29.97 fps ... or a DICOM frame-time vector). It sits
with the user's data, not with stage 02, because the validator (``ctslib.data.validate``) must know
which frames stage 02 will take to check masks and the expert accept-list against them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

TARGET_FPS: float = 5.0
"""Frames per second extracted from every video (the paper: 5 fps)."""

TIME_TOLERANCE_S: float = 1e-6
"""Two times closer than this are equal (guards float round-off in ``k / fps``)."""

MAX_PLAUSIBLE_FPS: float = 1000.0
"""A container frame rate above this (or <= 0, NaN) is treated as missing."""


def uniform_times(n_frames: int, fps: float) -> np.ndarray:
    """Timestamps (s) of ``n_frames`` frames at a constant rate: frame ``i`` starts at ``i / fps``."""
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    return np.arange(n_frames, dtype=float) / float(fps)


def plausible_fps(value: float | None) -> bool:
    """True for a usable frame rate: finite, positive and at most ``MAX_PLAUSIBLE_FPS``."""
    return value is not None and math.isfinite(value) and 0 < value <= MAX_PLAUSIBLE_FPS


def sample_frames(source_times: Sequence[float] | np.ndarray, target_fps: float = TARGET_FPS) -> pd.DataFrame:
    """Which source frames a ``target_fps`` sampling takes, chosen by timestamp.

    Target times are ``k / target_fps`` for ``k = 0, 1, ...`` up to the last source frame's time;
    each takes the source frame nearest in time (ties go to the earlier frame). From 30 fps this is
    every 6th frame, from 25 fps every 5th, from 24 fps frames 0, 5, 10, 14, 19, 24, ...; from a
    source slower than ``target_fps`` a source frame is never taken twice (the later target times
    that fall on it are dropped, so ``sample_index`` then has gaps).

    Args:
        source_times: non-decreasing start time (s) of every source frame, first usually 0.
        target_fps: sampling rate.

    Returns:
        One row per extracted frame: ``sample_index`` (k, the frame number at ``target_fps``),
        ``source_index`` (0-based frame number in the source) and ``time_s`` (that source frame's
        own timestamp, so it is exact even when it differs from ``k / target_fps``).
    """
    times = np.asarray(source_times, dtype=float)
    if times.ndim != 1:
        raise ValueError("source_times must be one-dimensional")
    if target_fps <= 0:
        raise ValueError(f"target_fps must be positive, got {target_fps}")
    empty = pd.DataFrame({"sample_index": pd.Series(dtype=int), "source_index": pd.Series(dtype=int), "time_s": pd.Series(dtype=float)})
    if times.size == 0:
        return empty
    if np.any(np.diff(times) < 0) or not np.all(np.isfinite(times)):
        raise ValueError("source_times must be finite and non-decreasing")
    start = times[0]
    n_targets = int(math.floor((times[-1] - start) * target_fps + TIME_TOLERANCE_S)) + 1
    targets = start + np.arange(n_targets) / target_fps
    after = np.clip(np.searchsorted(times, targets, side="left"), 0, times.size - 1)
    before = np.clip(after - 1, 0, times.size - 1)
    # Nearest frame; ``<=`` sends ties (within tolerance) to the earlier frame.
    take_before = np.abs(targets - times[before]) <= np.abs(times[after] - targets) + TIME_TOLERANCE_S
    source_index = np.where(take_before, before, after)
    sample_index = np.arange(n_targets)
    first = np.concatenate([[True], source_index[1:] != source_index[:-1]])
    return pd.DataFrame(
        {
            "sample_index": sample_index[first].astype(int),
            "source_index": source_index[first].astype(int),
            "time_s": times[source_index[first]],
        }
    )

