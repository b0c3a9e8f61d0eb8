"""Nerve hints: an optional marked nerve point per video (``DATA/nerve_hints.csv``).

Where a video has one, the segmenter keeps the predicted component nearest the point instead of
the largest (``ctslib.nerve.inference.nearest_component``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ctslib import PLANES, SIDES
from ctslib.common.errors import InputError

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
