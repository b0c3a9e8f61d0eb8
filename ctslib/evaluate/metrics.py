"""Classification metrics of one set of predictions (all scikit-learn) and selecting a split's rows.

Every metric is called with ``labels=[0, 1, 2, 3]`` and an explicit ``zero_division`` so a class
missing from a validation set gives NaN for the numbers it makes undefined, and an
``EmptyClassWarning`` naming the class, instead of a silent 0 or an obscure scikit-learn warning.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    cohen_kappa_score,
    confusion_matrix,
    precision_recall_fscore_support,
)

from ctslib import GRADES
from ctslib.common.errors import StageError
from ctslib.severity.split import GROUPED_SPLIT, PAPER_SPLIT

__all__ = ["LABELS", "CV_POOLED", "CV_FOLD", "SEED_TAG", "EmptyClassWarning", "empty_classes", "check_classes", "confusion",
    "classification_metrics", "metrics_from_confusion", "accuracy_only", "available_splits", "select_split", "split_members", "accuracy_sentence"]

LABELS: list[int] = list(range(len(GRADES)))
"""Class ids passed to every scikit-learn metric, so absent classes still get a row/column."""

CV_POOLED = "cv"
"""Pseudo-split name: the validation folds of every ``cv<k>`` split pooled (each frame once)."""

CV_FOLD = re.compile(r"^cv\d+$")
"""Split names of the grouped cross-validation folds: ``cv0``, ``cv1``, ...."""

SEED_TAG = "~s"
"""Split-name suffix of a replicate trained with another seed: ``cv0~s1`` is fold 0 trained with seed + 1."""


class EmptyClassWarning(UserWarning):
    """A validation set has no example of a grade: that grade's recall is undefined."""


def empty_classes(y_true: Sequence[int]) -> list[str]:
    """Grades with no example in ``y_true``."""
    present = set(np.asarray(y_true, dtype=int).tolist())
    return [g for i, g in enumerate(GRADES) if i not in present]


def check_classes(y_true: Sequence[int], context: str) -> list[str]:
    """Warn (``EmptyClassWarning``) naming each grade absent from ``y_true``; return their names."""
    empty = empty_classes(y_true)
    if empty:
        warnings.warn(
            f"{context}: the validation set has no {' / '.join(repr(g) for g in empty)} example; recall of "
            f"{'that grade is' if len(empty) == 1 else 'those grades are'} undefined (NaN) and left out of "
            "balanced accuracy and the macro averages (its F1 is 0 if the model predicted it, else NaN)",
            EmptyClassWarning,
            stacklevel=2,
        )
    return empty


def confusion(y_true: Sequence[int], y_pred: Sequence[int]) -> np.ndarray:
    """4 x 4 confusion matrix (rows = NCS grade, columns = predicted), every grade present."""
    return confusion_matrix(y_true, y_pred, labels=LABELS)


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int]) -> dict[str, float]:
    """Every metric of the study for one set of predictions (all scikit-learn).

    ``mean_precision`` is the macro average of the per-class precisions that are defined;
    ``mean_precision_4`` averages over all four grades, a never-predicted grade counting 0 (the
    paper's "mean class precision" is over four grades, so this is the number to set beside it). Undefined values (a grade never predicted -> its precision; a grade absent from
    ``y_true`` -> its recall) are NaN and left out of the macro averages (``zero_division=np.nan``).
    ``balanced_accuracy`` is the mean recall over the grades present in ``y_true``.
    ``kappa_quadratic`` is Cohen's kappa with quadratic weights (grades are ordinal).
    """
    y_true = np.asarray(y_true, dtype=int)
    y_pred = np.asarray(y_pred, dtype=int)
    if len(y_true) == 0:
        raise StageError("no predictions to evaluate (empty validation set)")
    with warnings.catch_warnings():
        # Absent classes are reported by check_classes; scikit-learn's own warnings would repeat it.
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        precision, recall, f1, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=LABELS, average=None, zero_division=np.nan
        )
        macro_p, macro_r, macro_f1, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=LABELS, average="macro", zero_division=np.nan
        )
        metrics = {
            "accuracy": accuracy_score(y_true, y_pred),
            "balanced_accuracy": balanced_accuracy_score(y_true, y_pred),
            "mean_precision": macro_p,
            "mean_precision_4": float(np.nansum(precision) / len(LABELS)),
            "macro_recall": macro_r,
            "macro_f1": macro_f1,
            "kappa_quadratic": cohen_kappa_score(y_true, y_pred, labels=LABELS, weights="quadratic"),
        }
    for i, grade in enumerate(GRADES):
        metrics[f"precision_{grade}"] = precision[i]
        metrics[f"recall_{grade}"] = recall[i]
        metrics[f"f1_{grade}"] = f1[i]
    return {k: float(v) for k, v in metrics.items()}


def metrics_from_confusion(cm: np.ndarray) -> dict[str, np.ndarray]:
    """``classification_metrics`` computed from confusion matrices, vectorised over a stack (B x 4 x 4).

    The same definitions as the scikit-learn calls (``zero_division=np.nan``; NaN classes left out of
    the macro averages; quadratic-weighted kappa from observed and expected counts), so the participant
    bootstrap can sum per-participant confusion matrices instead of calling scikit-learn per resample.
    ``tests/test_evaluate.py`` checks every value against ``classification_metrics``.
    """
    cm = np.asarray(cm, dtype=float)
    if cm.ndim == 2:
        cm = cm[None]
    tp = np.diagonal(cm, axis1=1, axis2=2)
    true_sum, pred_sum = cm.sum(axis=2), cm.sum(axis=1)
    total = true_sum.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(pred_sum > 0, tp / pred_sum, np.nan)
        recall = np.where(true_sum > 0, tp / true_sum, np.nan)
        f1 = np.where(true_sum + pred_sum > 0, 2 * tp / (true_sum + pred_sum), np.nan)
        weights = (np.arange(cm.shape[1])[:, None] - np.arange(cm.shape[1])[None, :]) ** 2.0
        expected = true_sum[:, :, None] * pred_sum[:, None, :] / total[:, None, None]
        kappa = 1.0 - (weights * cm).sum(axis=(1, 2)) / (weights * expected).sum(axis=(1, 2))
        metrics = {
            "accuracy": tp.sum(axis=1) / total,
            "balanced_accuracy": np.nanmean(recall, axis=1),
            "mean_precision": np.nanmean(precision, axis=1),
            "mean_precision_4": np.nansum(precision, axis=1) / cm.shape[1],
            "macro_recall": np.nanmean(recall, axis=1),
            "macro_f1": np.nanmean(f1, axis=1),
            "kappa_quadratic": kappa,
        }
    for i, grade in enumerate(GRADES):
        metrics[f"precision_{grade}"] = precision[:, i]
        metrics[f"recall_{grade}"] = recall[:, i]
        metrics[f"f1_{grade}"] = f1[:, i]
    return metrics


def accuracy_only(y_true: Sequence[int], y_pred: Sequence[int]) -> dict[str, float]:
    """Just ``accuracy`` (a cheap metric function for bootstraps that need nothing else)."""
    return {"accuracy": float(accuracy_score(y_true, y_pred))}


def available_splits(table: pd.DataFrame) -> list[str]:
    """Split names in a predictions table, with ``cv`` standing for all ``cv<k>`` folds together."""
    names = set(table["split"].unique())
    out = [s for s in (PAPER_SPLIT, GROUPED_SPLIT) if s in names]
    if any(CV_FOLD.match(s) for s in names):
        out.append(CV_POOLED)
    return out + sorted(s for s in names if s not in (PAPER_SPLIT, GROUPED_SPLIT) and not CV_FOLD.match(s)
                        and SEED_TAG not in s)


def select_split(table: pd.DataFrame, split: str) -> pd.DataFrame:
    """Validation rows of ``split``; ``"cv"`` pools the validation rows of every ``cv<k>`` fold."""
    if "subset" in table.columns:
        table = table[table["subset"] == "val"]
    if split == CV_POOLED:
        rows = table[table["split"].str.match(CV_FOLD)]
        duplicated = rows["frame_id"].duplicated() if "frame_id" in rows.columns else rows["wrist_id"].duplicated()
        if duplicated.any():
            raise StageError("pooled CV: a frame/wrist is in the validation set of more than one fold")
        return rows
    return table[table["split"] == split]


def split_members(table: pd.DataFrame, split: str) -> list[str]:
    """The predictions' split names behind an evaluated split (``cv`` -> ``cv0`` ... ``cvK-1``)."""
    names = set(table["split"].astype(str).unique())
    if split == CV_POOLED:
        return sorted((n for n in names if CV_FOLD.match(n)), key=lambda n: int(n[2:]))
    return [split] if split in names else []


def accuracy_sentence(predictions: Mapping[str, pd.DataFrame], splits: Sequence[str]) -> str:
    """Each model's accuracy and balanced accuracy on each split, in one sentence (3 decimals)."""
    parts = []
    for model, table in predictions.items():
        values = []
        for split in splits:
            rows = select_split(table, split)
            if len(rows):
                m = classification_metrics(rows["y_true"], rows["y_pred"])
                values.append(f"{m['accuracy']:.3f} (balanced {m['balanced_accuracy']:.3f}) on {split}")
        if values:
            parts.append(f"{model}: " + ", ".join(values))
    return "Accuracy " + "; ".join(parts) + "." if parts else "No predictions."
