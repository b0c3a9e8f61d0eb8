"""Train/validation splits: the paper's frame split, a participant-grouped split and grouped CV folds.

* ``paper``: 75/25 random split of *frames*, stratified by grade (what the paper did). Frames of
  one wrist, seconds apart in the same video, land on both sides, so validation accuracy measures
  recognition of near-duplicates as much as generalisation to a new person ("leakage").
* ``grouped``: 75/25 split of *participants* (both wrists of a person stay together), stratified
  by grade as well as the groups allow (scikit-learn ``StratifiedGroupKFold``): no participant is
  on both sides, so validation accuracy estimates performance on new people.
* ``cv0`` ... ``cvK-1``: grouped K-fold cross-validation (each frame validated exactly once).

Every split is seeded and checked: each training set must contain every grade, and a grouped
split must never put a participant on both sides.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from ctslib import GRADES
from ctslib.common.errors import StageError

PAPER_SPLIT = "paper"
GROUPED_SPLIT = "grouped"
SPLIT_COLUMNS: tuple[str, ...] = ("frame_id", "wrist_id", "participant_id", "grade_index", "split", "subset")
FRAME_COLUMNS: tuple[str, ...] = ("frame_id", "wrist_id", "participant_id", "grade_index")


def cv_split_names(k: int) -> list[str]:
    """Names of the grouped cross-validation splits: ``cv0`` ... ``cv<k-1>``."""
    return [f"cv{i}" for i in range(k)]


def is_grouped(split: str) -> bool:
    """Whether a split keeps participants on one side (``grouped`` and every ``cv<k>`` fold)."""
    return split == GROUPED_SPLIT or (split.startswith("cv") and split[2:].isdigit())


def check_every_grade(frames: pd.DataFrame, what: str = "frames") -> None:
    """Refuse data in which a grade has no frame: the 4-class models need examples of each.

    Raises:
        StageError: naming the missing grade(s).
    """
    counts = frames["grade_index"].value_counts()
    missing = [GRADES[i] for i in range(len(GRADES)) if counts.get(i, 0) == 0]
    if missing:
        raise StageError(
            f"{what}: no frame of grade {', '.join(repr(g) for g in missing)}; the 4-class model needs "
            f"examples of every grade ({', '.join(GRADES)}). Counts: "
            + ", ".join(f"{g}={int(counts.get(i, 0))}" for i, g in enumerate(GRADES))
        )


def _rows(frames: pd.DataFrame, split: str, is_val: np.ndarray) -> pd.DataFrame:
    out = frames[list(FRAME_COLUMNS)].copy()
    out["split"] = split
    out["subset"] = np.where(is_val, "val", "train")
    return out


def paper_split(frames: pd.DataFrame, *, val_fraction: float = 0.25, seed: int) -> pd.DataFrame:
    """The paper's split: a random, grade-stratified split of frames (ignores who a frame is from)."""
    check_every_grade(frames)
    counts = frames["grade_index"].value_counts()
    if (counts < 2).any():
        rare = [GRADES[i] for i in counts.index[counts < 2]]
        raise StageError(f"a stratified frame split needs at least 2 frames per grade; only 1 of {rare}")
    index = np.arange(len(frames))
    _, val_idx = train_test_split(
        index, test_size=val_fraction, stratify=frames["grade_index"].to_numpy(), random_state=seed, shuffle=True,
    )
    is_val = np.zeros(len(frames), bool)
    is_val[val_idx] = True
    return _rows(frames, PAPER_SPLIT, is_val)


def _fold_score(y: np.ndarray, is_val: np.ndarray, val_fraction: float) -> tuple[int, float]:
    """Rank a candidate validation fold: (grades missing from validation, distance from target).

    The distance is the total-variation distance between the validation and overall grade mix
    plus the deviation of the validation share from ``val_fraction``.
    """
    k = len(GRADES)
    overall = np.bincount(y, minlength=k) / len(y)
    val = np.bincount(y[is_val], minlength=k) / max(is_val.sum(), 1)
    missing = int((np.bincount(y[is_val], minlength=k) == 0).sum())
    return missing, 0.5 * float(np.abs(val - overall).sum()) + abs(is_val.mean() - val_fraction)


def grouped_split(frames: pd.DataFrame, *, val_fraction: float = 0.25, seed: int) -> pd.DataFrame:
    """A participant-grouped, grade-stratified split with about ``val_fraction`` of frames in validation.

    ``StratifiedGroupKFold`` with ``round(1 / val_fraction)`` folds proposes candidate validation
    sets; among those whose training side holds every grade we keep the one whose grade mix and
    size are closest to the whole (preferring folds whose validation side also holds every grade).

    Raises:
        StageError: a grade has no frame, or no grouping leaves every grade in training
            (too few participants per grade).
    """
    check_every_grade(frames)
    n_folds = max(2, int(round(1.0 / val_fraction)))
    y = frames["grade_index"].to_numpy()
    groups = frames["participant_id"].to_numpy()
    if len(np.unique(groups)) < n_folds:
        raise StageError(f"a grouped split with {n_folds} folds needs at least {n_folds} participants, "
                         f"got {len(np.unique(groups))}")
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    best: tuple[tuple[int, float], np.ndarray] | None = None
    for _, val_idx in splitter.split(np.zeros(len(y)), y, groups):
        is_val = np.zeros(len(y), bool)
        is_val[val_idx] = True
        if len(np.unique(y[~is_val])) < len(GRADES):
            continue
        score = _fold_score(y, is_val, val_fraction)
        if best is None or score < best[0]:
            best = (score, is_val)
    if best is None:
        per_grade = frames.groupby("grade_index")["participant_id"].nunique()
        raise StageError(
            "no participant-grouped split keeps every grade in the training set; participants per grade: "
            + ", ".join(f"{GRADES[i]}={int(per_grade.get(i, 0))}" for i in range(len(GRADES)))
            + " (each grade needs participants on both sides)"
        )
    out = _rows(frames, GROUPED_SPLIT, best[1])
    check_split(out)
    return out


def grouped_folds(frames: pd.DataFrame, k: int, *, seed: int) -> pd.DataFrame:
    """Grouped, grade-stratified K-fold cross-validation: splits ``cv0`` ... ``cv<k-1>``.

    Fold i validates on the i-th participant group of ``StratifiedGroupKFold`` and trains on the
    rest, so every frame is validated exactly once, never beside its own participant.
    """
    check_every_grade(frames)
    if k < 2:
        raise ValueError(f"cross-validation needs k >= 2 folds, got {k}")
    y = frames["grade_index"].to_numpy()
    groups = frames["participant_id"].to_numpy()
    if len(np.unique(groups)) < k:
        raise StageError(f"{k}-fold grouped cross-validation needs at least {k} participants, got {len(np.unique(groups))}")
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    parts = []
    for name, (_, val_idx) in zip(cv_split_names(k), splitter.split(np.zeros(len(y)), y, groups)):
        is_val = np.zeros(len(y), bool)
        is_val[val_idx] = True
        parts.append(_rows(frames, name, is_val))
    out = pd.concat(parts, ignore_index=True)
    check_split(out)
    return out


def check_split(table: pd.DataFrame) -> None:
    """Refuse a split table whose training set lacks a grade or whose grouped split leaks a participant.

    Raises:
        StageError: naming the split and the grade or participant at fault.
    """
    for split, rows in table.groupby("split", sort=False):
        train = rows[rows["subset"] == "train"]
        check_every_grade(train, what=f"training set of split '{split}'")
        if is_grouped(str(split)):
            both = set(train["participant_id"]) & set(rows.loc[rows["subset"] == "val", "participant_id"])
            if both:
                raise StageError(f"grouped split '{split}' puts participant(s) {sorted(both)[:5]} on both sides")


def _by_participant(frames: pd.DataFrame, decided: pd.DataFrame) -> pd.DataFrame:
    """Apply the participant assignment of a grouped split table to ``frames`` (split by split)."""
    parts = []
    for split, rows in decided.groupby("split", sort=False):
        val_participants = set(rows.loc[rows["subset"] == "val", "participant_id"])
        parts.append(_rows(frames, str(split), frames["participant_id"].isin(val_participants).to_numpy()))
    return pd.concat(parts, ignore_index=True)


def make_splits(
    frames: pd.DataFrame,
    *,
    seed: int,
    val_fraction: float = 0.25,
    cv_folds: int = 0,
    policies: Sequence[str] = (PAPER_SPLIT, GROUPED_SPLIT),
    cohort_frames: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Every split of one plane's frames in the ``split.csv`` layout (one row per frame and split).

    Participant-grouped splits (``grouped``, ``cv<k>``) are drawn on ``cohort_frames`` when given
    (the frames of *both* planes), so the transverse and longitudinal models validate on the same
    participants and their wrist-level predictions can be fused; the paper's frame split is drawn
    on this plane's frames, as the paper did.

    Args:
        frames: one row per frame with frame_id, wrist_id, participant_id, grade_index.
        seed: seeds every split.
        val_fraction: validation share of the ``paper`` and ``grouped`` splits (the paper: 0.25).
        cv_folds: number of grouped CV folds to add (0 = none).
        policies: which of ``paper`` / ``grouped`` to make.
        cohort_frames: frames of every plane (same columns) that decide participant assignment.
    """
    missing = [c for c in FRAME_COLUMNS if c not in frames.columns]
    if missing:
        raise ValueError(f"frames table lacks column(s) {missing}")
    frames = frames.reset_index(drop=True)
    unknown = [p for p in policies if p not in (PAPER_SPLIT, GROUPED_SPLIT)]
    if unknown:
        raise ValueError(f"unknown split policies {unknown}; known: {[PAPER_SPLIT, GROUPED_SPLIT]}")
    basis = frames if cohort_frames is None else cohort_frames.reset_index(drop=True)
    parts = []
    if PAPER_SPLIT in policies:
        parts.append(paper_split(frames, val_fraction=val_fraction, seed=seed))
    if GROUPED_SPLIT in policies:
        parts.append(_by_participant(frames, grouped_split(basis, val_fraction=val_fraction, seed=seed)))
    if cv_folds:
        parts.append(_by_participant(frames, grouped_folds(basis, cv_folds, seed=seed)))
    table = pd.concat(parts, ignore_index=True)[list(SPLIT_COLUMNS)]
    check_split(table)
    return table


def split_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Frames and participants per split and subset, with the grade mix (for the notebook)."""
    rows = []
    for (split, subset), part in table.groupby(["split", "subset"], sort=False):
        counts = part["grade_index"].value_counts()
        rows.append({
            "split": split, "subset": subset, "frames": len(part),
            "participants": part["participant_id"].nunique(), "wrists": part["wrist_id"].nunique(),
            **{g: int(counts.get(i, 0)) for i, g in enumerate(GRADES)},
        })
    return pd.DataFrame(rows)


def participants_on_both_sides(table: pd.DataFrame, split: str) -> int:
    """How many participants have frames in both the training and validation set of ``split``."""
    rows = table[table["split"] == split]
    return len(set(rows.loc[rows["subset"] == "train", "participant_id"])
               & set(rows.loc[rows["subset"] == "val", "participant_id"]))
