"""Stage 02's frames.csv as stage 03 reads it: the frames to crop and the frames with nerve masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ctslib import PLANES
from ctslib.common.errors import InputError
from ctslib.common.handoff import as_bool

FRAME_COLUMNS: tuple[str, ...] = (
    "frame_id", "wrist_id", "participant_id", "plane", "grade", "grade_index",
    "spacing_row_mm", "spacing_col_mm", "has_mask", "kept",
)
"""Columns of stage 02's frames.csv that this stage reads."""


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
