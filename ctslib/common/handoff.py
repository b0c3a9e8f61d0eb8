"""Stage hand-off contracts in one place: shared column lists, the CSV flag parser, atomic PNGs.

Every stage imports these instead of keeping its own copy, so a writer and its reader can never
disagree (the column list of ``predictions.csv`` written by 04/05 and read by 06; how ``True``,
``1`` or ``1.0`` in a flag column is read; how a PNG hand-off file is written).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from ctslib import GRADES
from ctslib.common.io import atomic_path

PROB_COLUMNS: tuple[str, ...] = tuple(f"p_{g}" for g in GRADES)
"""Class-probability columns of predictions.csv, in ``GRADES`` order."""

PREDICTION_COLUMNS: tuple[str, ...] = (
    "frame_id", "wrist_id", "participant_id", "split", "subset", "y_true", "y_pred", *PROB_COLUMNS,
)
"""Columns of stage 04/05's predictions.csv (written by ``ctslib.severity.train``, read by ``ctslib.evaluate``)."""

TRUE_WORDS: frozenset[str] = frozenset({"true", "1", "1.0", "yes", "y", "t"})
"""Spellings of a true flag in a CSV (pandas writes True; spreadsheets 1 or 1.0); anything else is false."""


def as_bool(values: pd.Series) -> pd.Series:
    """Read a CSV flag column (True/False, true/false, 1/0, 1.0/0.0, yes/no; blank = False)."""
    return values.astype(str).str.strip().str.lower().isin(TRUE_WORDS)


def write_png(path: str | Path, image: np.ndarray, *, atomic: bool = True) -> Path:
    """Write an 8-bit image as PNG, atomically by default (a killed run never leaves half a file under its name).

    ``atomic=False`` writes in place: for files inside a staging folder (``ctslib.data.video.staged_dirs``)
    that only gets its final name once the whole stage succeeded.
    """
    if not atomic:
        _imwrite(Path(path), path, image)
        return Path(path)
    with atomic_path(path) as tmp:
        _imwrite(tmp, path, image)
    return Path(path)


def _imwrite(target: Path, name: str | Path, image: np.ndarray) -> None:
    try:
        written = cv2.imwrite(str(target), image)
    except cv2.error as err:  # empty or malformed image
        raise OSError(f"cannot write {name} ({err.err})") from None
    if not written:
        raise OSError(f"cannot write {name}")
