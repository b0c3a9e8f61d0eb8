"""The clinical baseline: the nerve's cross-sectional area (CSA) with grade thresholds.

Thresholds are chosen on a grouped split's training participants only and applied to its
validation wrists; a larger CSA means a more severe grade (the nerve swells as CTS progresses).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ctslib import GRADES
from ctslib.common.errors import InputError, StageError
from ctslib.evaluate.metrics import CV_FOLD, LABELS, empty_classes
from ctslib.evaluate.readers import require_columns, assert_grouped
from ctslib.severity.split import GROUPED_SPLIT

__all__ = ["wrist_csa", "apply_csa_thresholds", "choose_csa_thresholds", "balanced_accuracy_of_thresholds",
    "csa_thresholds_table", "csa_baseline_predictions", "csa_baseline_cv"]


def wrist_csa(crops: pd.DataFrame, plane: str = "transverse", source: str | Path = "crops.csv") -> pd.DataFrame:
    """Per-wrist median CSA (mm²) over the frames of ``plane`` where the nerve was found.

    Returns:
        wrist_id, participant_id, grade_index, csa_mm2 (median), n_frames (with a finite CSA).
    """
    require_columns(crops, ["wrist_id", "participant_id", "plane", "grade_index", "csa_mm2"], source)
    rows = crops[crops["plane"] == plane].copy()
    rows["csa_mm2"] = pd.to_numeric(rows["csa_mm2"], errors="coerce")
    keep = np.isfinite(rows["csa_mm2"]) & (rows["csa_mm2"] > 0)
    if "nerve_found" in rows.columns:
        keep &= rows["nerve_found"].astype(str).str.lower().isin(["true", "1", "1.0"])
    rows = rows[keep]
    grades = rows.groupby("wrist_id")["grade_index"].nunique()
    if (grades > 1).any():
        raise InputError(f"frames of wrist {grades.index[grades > 1][0]} disagree on grade_index", file=source,
                         column="grade_index")
    grouped = rows.groupby("wrist_id", sort=True)
    return pd.DataFrame({
        "participant_id": grouped["participant_id"].first(),
        "grade_index": grouped["grade_index"].first().astype(int),
        "csa_mm2": grouped["csa_mm2"].median(),
        "n_frames": grouped.size(),
    }).reset_index()


def apply_csa_thresholds(csa: Sequence[float], thresholds: Sequence[float]) -> np.ndarray:
    """Grade index of each CSA: the number of thresholds it reaches (``csa >= t`` moves up a grade)."""
    return np.searchsorted(np.asarray(thresholds, dtype=float), np.asarray(csa, dtype=float), side="right")


def choose_csa_thresholds(
    csa: Sequence[float], grade: Sequence[int], *, method: str = "balanced_accuracy", max_candidates: int = 30
) -> np.ndarray:
    """Three increasing CSA thresholds (mm²) separating the four grades, chosen on training wrists.

    Methods:
        ``"balanced_accuracy"``: exhaustive search over non-decreasing triples of candidate cut points
        for the highest training balanced accuracy; ties go to the first triple in sorted order.
        Candidates are the midpoints between consecutive distinct training CSAs where the grade
        changes (the optimum always lies at one), thinned evenly to ``max_candidates`` if more.
        A grade absent from training can get an empty interval (two equal thresholds).
        ``"midpoints"``: midpoint between the median CSAs of adjacent grades (every grade must occur).

    Larger CSA means more severe: the nerve swells proximal to the tunnel as CTS progresses.
    """
    csa = np.asarray(csa, dtype=float)
    grade = np.asarray(grade, dtype=int)
    if len(csa) == 0 or not np.isfinite(csa).all():
        raise StageError("CSA thresholds need at least one training wrist, every CSA finite")
    if method == "midpoints":
        missing = empty_classes(grade)
        if missing:
            raise StageError(f"'midpoints' needs every grade in training; missing: {', '.join(missing)} "
                             "(use method='balanced_accuracy')")
        medians = np.array([np.median(csa[grade == g]) for g in LABELS])
        medians = np.maximum.accumulate(medians)  # keep the thresholds increasing
        return (medians[:-1] + medians[1:]) / 2
    if method != "balanced_accuracy":
        raise ValueError(f"method must be 'balanced_accuracy' or 'midpoints', got {method!r}")
    # Moving a cut inside a run of same-grade wrists changes balanced accuracy monotonically, so the
    # optimum lies where the grade changes: only those midpoints are candidates (exact search).
    values = np.unique(csa)
    grades_at = [frozenset(grade[csa == v]) for v in values]
    changes = [i for i in range(len(values) - 1) if grades_at[i] != grades_at[i + 1] or len(grades_at[i]) > 1]
    cuts = np.array([(values[i] + values[i + 1]) / 2 for i in changes])
    if len(cuts) > max_candidates:  # thin evenly: no longer exact, still deterministic
        cuts = cuts[np.unique(np.linspace(0, len(cuts) - 1, max_candidates).round().astype(int))]
    # Cut points outside the data let a grade's interval be empty.
    cuts = np.concatenate([[values[0] - 1.0], cuts, [values[-1] + 1.0]])
    triples = cuts[np.array(list(itertools.combinations_with_replacement(range(len(cuts)), len(LABELS) - 1)))]
    return triples[int(np.argmax(balanced_accuracy_of_thresholds(csa, grade, triples)))]


def balanced_accuracy_of_thresholds(csa: np.ndarray, grade: np.ndarray, triples: np.ndarray) -> np.ndarray:
    """Balanced accuracy of ``apply_csa_thresholds(csa, t)`` against ``grade`` for each row ``t`` of
    ``triples`` (non-decreasing), all at once: the mean recall over the grades present in ``grade``,
    computed as ``sklearn.metrics.balanced_accuracy_score`` does (same value, bit for bit).
    """
    predicted = (csa[None, None, :] >= triples[:, :, None]).sum(axis=1)  # (n_triples, n_wrists)
    recalls = [(predicted[:, grade == g] == g).mean(axis=1) for g in np.unique(grade)]
    return np.stack(recalls, axis=1).mean(axis=1)


def csa_thresholds_table(thresholds: Sequence[float], train: pd.DataFrame) -> pd.DataFrame:
    """The chosen thresholds with the training wrists' median CSA of the grades they separate."""
    medians = train.groupby("grade_index")["csa_mm2"].median()
    return pd.DataFrame({
        "boundary": [f"{GRADES[i]} | {GRADES[i + 1]}" for i in range(len(GRADES) - 1)],
        "threshold_mm2": list(thresholds),
        "train_median_below_mm2": [medians.get(i, np.nan) for i in range(len(GRADES) - 1)],
        "train_median_above_mm2": [medians.get(i + 1, np.nan) for i in range(len(GRADES) - 1)],
    })


def csa_baseline_predictions(
    wrists: pd.DataFrame,
    split_df: pd.DataFrame,
    *,
    split: str = GROUPED_SPLIT,
    method: str = "balanced_accuracy",
    max_candidates: int = 30,
) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    """Fit CSA thresholds on ``split``'s training participants, predict its validation wrists.

    Args:
        wrists: ``wrist_csa`` output.
        split_df: a ``split.csv`` (participant sides are taken from ``split``, which must be grouped).

    Returns:
        (validation predictions in the wrist-table layout, thresholds, training wrists).
    """
    assert_grouped(split_df, [split])
    rows = split_df[split_df["split"] == split]
    train_people = set(rows.loc[rows["subset"] == "train", "participant_id"])
    val_people = set(rows.loc[rows["subset"] == "val", "participant_id"])
    train = wrists[wrists["participant_id"].isin(train_people)]
    val = wrists[wrists["participant_id"].isin(val_people)].copy()
    if train.empty or val.empty:
        raise StageError(f"CSA baseline: no wrist with a CSA among the {'training' if train.empty else 'validation'} "
                         f"participants of split '{split}'")
    thresholds = choose_csa_thresholds(train["csa_mm2"], train["grade_index"], method=method,
                                       max_candidates=max_candidates)
    val["split"] = split
    val["y_true"] = val["grade_index"].astype(int)
    val["y_pred"] = apply_csa_thresholds(val["csa_mm2"], thresholds)
    return val[["split", "wrist_id", "participant_id", "y_true", "y_pred", "csa_mm2", "n_frames"]], thresholds, train


def csa_baseline_cv(
    wrists: pd.DataFrame, split_df: pd.DataFrame, *, method: str = "balanced_accuracy", max_candidates: int = 30,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The CSA baseline by grouped cross-validation: thresholds fitted on each fold's training
    participants, applied to its validation wrists; predictions pooled (every wrist once).

    Returns:
        (pooled validation predictions, split column = fold name; thresholds per fold).
    """
    folds = sorted((s for s in split_df["split"].unique() if CV_FOLD.match(str(s))), key=lambda s: int(s[2:]))
    if not folds:
        raise StageError("CSA baseline by CV: split.csv has no cv<k> folds")
    parts, cuts = [], []
    for fold in folds:
        val, thresholds, _ = csa_baseline_predictions(wrists, split_df, split=fold, method=method,
                                                      max_candidates=max_candidates)
        parts.append(val)
        cuts.append({"fold": fold, **{f"{GRADES[i]} | {GRADES[i + 1]}": t for i, t in enumerate(thresholds)}})
    return pd.concat(parts, ignore_index=True), pd.DataFrame(cuts)
