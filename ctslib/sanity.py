"""Sanity flags for a trained classifier, computed from its validation predictions.

A model can report a respectable accuracy and still have learned nothing: it predicts the most
common grade for every frame, or one constant probability vector for most of them. These checks
catch that, for every model and split, and say why in words:

* ``never_predicted``: a grade the model never predicts on the validation set;
* ``identical_probabilities``: more than ``max_shared`` (20 %) of the frames get the same uncertain
  probability vector (to 4 decimals, top probability below 0.99): the network's output no longer
  depends on its input for them;
* ``not_above_majority``: accuracy at or below the majority-class rate of the validation set (what
  always answering the commonest grade scores);
* ``train_below_val``: training accuracy more than ``max_train_gap`` (0.15) below validation accuracy
  (an under-fitted model, or a validation set easier than training). Training accuracy here is the
  final model's on its own training frames in inference mode (predictions.csv rows with ``subset``
  "train"): Keras' running training accuracy is taken with dropout on and would trip this by design.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from ctslib import GRADES

FLAG_NAMES: tuple[str, ...] = ("never_predicted", "identical_probabilities", "not_above_majority", "train_below_val")
MAX_SHARED = 0.20
MAX_TRAIN_GAP = 0.15
DECIMALS = 4
CONFIDENT = 0.99


@dataclass(frozen=True)
class Flag:
    """One check on one model and split: ``failed`` with the measured value and a sentence why."""

    model: str
    split: str
    flag: str
    failed: bool
    value: float
    limit: float
    detail: str


def never_predicted(y_pred: Sequence[int]) -> list[str]:
    """Grades that never occur in ``y_pred``."""
    present = set(np.asarray(y_pred, dtype=int).tolist())
    return [g for i, g in enumerate(GRADES) if i not in present]


def largest_shared_share(probabilities: np.ndarray, decimals: int = DECIMALS, confident: float = CONFIDENT) -> float:
    """Share of rows whose probability vector (rounded to ``decimals``) equals the commonest one.

    Confident answers (top probability >= ``confident``) are left out of the count: a well-trained
    model gives many frames the same rounded one-hot vector, which is certainty, not collapse. A
    collapsed network outputs the same *uncertain* vector (typically the class prior) whatever the input.
    """
    probabilities = np.asarray(probabilities, dtype=float)
    if len(probabilities) == 0:
        return float("nan")
    unsure = probabilities[probabilities.max(axis=1) < confident]
    if len(unsure) == 0:
        return 0.0
    _, counts = np.unique(np.round(unsure, decimals), axis=0, return_counts=True)
    return float(counts.max() / len(probabilities))


def majority_rate(y_true: Sequence[int]) -> float:
    """Accuracy of always predicting the commonest grade of ``y_true``."""
    y_true = np.asarray(y_true, dtype=int)
    return float(np.bincount(y_true).max() / len(y_true)) if len(y_true) else float("nan")


def model_flags(
    model: str,
    split: str,
    rows: pd.DataFrame,
    train_accuracy: float | None = None,
    *,
    prob_columns: Sequence[str] = tuple(f"p_{g}" for g in GRADES),
    max_shared: float = MAX_SHARED,
    max_train_gap: float = MAX_TRAIN_GAP,
) -> list[Flag]:
    """The four flags of one model on one split's validation rows (``y_true``, ``y_pred``, probabilities).

    ``train_accuracy``: the model's accuracy on its training frames (NaN or None: that flag is not checked).
    """
    y_true, y_pred = rows["y_true"].to_numpy(int), rows["y_pred"].to_numpy(int)
    accuracy = float((y_true == y_pred).mean()) if len(rows) else float("nan")
    missing = never_predicted(y_pred)
    shared = largest_shared_share(rows[list(prob_columns)].to_numpy())
    majority = majority_rate(y_true)
    flags = [
        Flag(model, split, "never_predicted", bool(missing), float(len(missing)), 0.0,
             f"{', '.join(missing)} never predicted" if missing else "every grade predicted at least once"),
        Flag(model, split, "identical_probabilities", bool(shared > max_shared), shared, max_shared,
             f"{shared:.0%} of {len(rows)} frames share one probability vector"
             + (" (the output ignores the input: collapsed)" if shared > max_shared else "")),
        Flag(model, split, "not_above_majority", bool(accuracy <= majority), accuracy, majority,
             f"accuracy {accuracy:.3f} vs majority-class rate {majority:.3f}"
             + (" (no better than always answering the commonest grade)" if accuracy <= majority else "")),
    ]
    if train_accuracy is None or not np.isfinite(train_accuracy):
        flags.append(Flag(model, split, "train_below_val", False, float("nan"), max_train_gap,
                          "no training accuracy recorded: not checked"))
    else:
        gap = accuracy - float(train_accuracy)
        flags.append(Flag(model, split, "train_below_val", bool(gap > max_train_gap), gap, max_train_gap,
                          f"training accuracy {train_accuracy:.3f} vs validation {accuracy:.3f}"
                          + (" (training far below validation: under-fitted)" if gap > max_train_gap else "")))
    return flags


def train_accuracy(table: pd.DataFrame, splits: Sequence[str]) -> float:
    """Accuracy of the trained models on their own training frames (``subset`` "train" rows, inference
    mode), pooled over ``splits``; NaN when predictions.csv holds no training rows."""
    if "subset" not in table.columns:
        return float("nan")
    rows = table[(table["subset"] == "train") & table["split"].isin(list(splits))]
    return float((rows["y_true"] == rows["y_pred"]).mean()) if len(rows) else float("nan")


def flag_table(
    predictions: Mapping[str, pd.DataFrame],
    splits: Mapping[str, Sequence[str]],
    *,
    max_shared: float = MAX_SHARED,
    max_train_gap: float = MAX_TRAIN_GAP,
) -> pd.DataFrame:
    """Every flag of every model and evaluated split, one row per (model, split, flag).

    Args:
        predictions: model -> predictions.csv table (validation rows are judged; training rows, when
            present, give the training accuracy).
        splits: evaluated split name -> the predictions' split names it pools (``{"cv": ["cv0", ...]}``).
    """
    rows = []
    for model, table in predictions.items():
        val = table[table["subset"] == "val"] if "subset" in table.columns else table
        for name, members in splits.items():
            part = val[val["split"].isin(list(members))]
            if part.empty:
                continue
            rows += [asdict(f) for f in model_flags(model, name, part, train_accuracy(table, members),
                                                    max_shared=max_shared, max_train_gap=max_train_gap)]
    return pd.DataFrame(rows, columns=list(Flag.__dataclass_fields__))


def flag_overview(flags: pd.DataFrame) -> pd.DataFrame:
    """One row per model and split: ``pass`` or the failed flags' reasons (for the notebook and index)."""
    out = []
    for (model, split), part in flags.groupby(["model", "split"], sort=False):
        failed = part[part["failed"]]
        out.append({"model": model, "split": split, "status": "FAIL" if len(failed) else "pass",
                    "failed_flags": ", ".join(failed["flag"]),
                    "why": "; ".join(failed["detail"]) if len(failed) else "; ".join(
                        part.loc[part["flag"].isin(["not_above_majority", "identical_probabilities"]), "detail"])})
    return pd.DataFrame(out, columns=["model", "split", "status", "failed_flags", "why"])


def failure_messages(flags: pd.DataFrame) -> list[str]:
    """One sentence per failing (model, split), for ``ctslib.io.warn_report``."""
    return [f"{row['model']} model, {row['split']} split: sanity flags failed ({row['failed_flags']}): {row['why']}"
            for _, row in flag_overview(flags).iterrows() if row["status"] == "FAIL"]
