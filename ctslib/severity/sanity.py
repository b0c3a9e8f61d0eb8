"""Sanity flags for a trained classifier, computed from its validation predictions.

A model can report a respectable accuracy and still have learned nothing: it predicts the most
common grade for every frame, or one constant probability vector for most of them. These checks
catch that, for every model and split, and say why in words:

* ``never_predicted``: a grade of the validation set that the model never predicts (a grade with no
  validation frame cannot be predicted correctly anyway: it is listed as "not in validation", not failed);
* ``identical_probabilities``: more than ``max_shared`` (20 %) of the frames get the same uncertain
  probability vector (to 4 decimals, top probability below 0.99): the network's output no longer
  depends on its input for them;
* ``not_above_majority``: accuracy at or below the majority-class rate of the validation set (what
  always answering the commonest grade scores) fails; an accuracy above it whose 95 % participant-
  bootstrap interval still includes it is *borderline*: this data cannot tell it from a trivial answer;
* ``train_below_val``: training accuracy more than ``max_train_gap`` (0.15) below validation accuracy
  (an under-fitted model, or a validation set easier than training). Training accuracy here is the
  final model's on its own training frames in inference mode (predictions.csv rows with ``subset``
  "train"): Keras' running training accuracy is taken with dropout on and would trip this by design;
* ``overfitting``: training accuracy more than ``MAX_OVERFIT_GAP`` (0.30) above validation accuracy is
  *borderline*, not a failure: the validation number is still an honest estimate for new participants,
  but the model memorised its training wrists and more data or regularisation would be needed.

Each flag has a status: ``pass``, ``borderline`` (amber: the result stands but is weak) or ``FAIL``
(red: the number does not describe a trained model).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from ctslib import GRADES

FLAG_NAMES: tuple[str, ...] = ("never_predicted", "identical_probabilities", "not_above_majority", "train_below_val",
                                "overfitting")
MAX_SHARED = 0.20
MAX_TRAIN_GAP = 0.15
MAX_OVERFIT_GAP = 0.30
"""Training minus validation accuracy above which a model is flagged as overfitting. Some gap is normal for
a CNN on a few dozen participants; beyond 0.30 the model gets most training frames right while missing
about a third more of the new participants', i.e. it learnt those wrists more than the grades."""
PASS, BORDERLINE, FAIL = "pass", "borderline", "FAIL"
NOT_IN_VALIDATION = "not in validation"
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
    borderline: bool = False

    @property
    def status(self) -> str:
        """``FAIL``, ``borderline`` or ``pass``."""
        return FAIL if self.failed else BORDERLINE if self.borderline else PASS


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


def grade_recall(rows: pd.DataFrame, grade_index: int) -> float:
    """Share of ``rows`` of one grade that the model predicts as that grade (NaN without such rows)."""
    part = rows[rows["y_true"].to_numpy(int) == grade_index]
    return float((part["y_pred"].to_numpy(int) == grade_index).mean()) if len(part) else float("nan")


def never_predicted_why(grade: str, val_rows: pd.DataFrame, train_rows: pd.DataFrame | None) -> str:
    """"<grade> never predicted", with its share of the frames and whether the training frames learnt it."""
    k = GRADES.index(grade)
    text = f"{grade} never predicted ({(val_rows['y_true'].to_numpy(int) == k).mean():.0%} of validation frames"
    if train_rows is None or not len(train_rows):
        return text + ")"
    share = (train_rows["y_true"].to_numpy(int) == k).mean()
    recall = grade_recall(train_rows, k)
    if not np.isfinite(recall):
        return text + "; absent from the training frames)"
    verdict = ("not learnt even on the training wrists: too few or too unlike frames of it" if recall < 0.5
               else "learnt on the training wrists but not recognised in new ones")
    return text + f", {share:.0%} of training frames; training recall {recall:.2f}: {verdict})"


def majority_why(accuracy: float, train_rows: pd.DataFrame | None) -> str:
    """Why a model is no better than the majority rate, from its accuracy on its own training frames."""
    if train_rows is None or not len(train_rows):
        return ""
    train_acc = float((train_rows["y_true"].to_numpy(int) == train_rows["y_pred"].to_numpy(int)).mean())
    if train_acc - accuracy > 0.3:
        return (f"; training accuracy {train_acc:.3f}: it fits the training participants' frames but what it learnt "
                "does not carry over to new participants")
    return f"; training accuracy {train_acc:.3f}: it did not learn the grades even on its training frames"


def absent_grades(y_true: Sequence[int]) -> list[str]:
    """Grades with no row in ``y_true`` (not in the validation set: nothing to predict)."""
    present = set(np.asarray(y_true, dtype=int).tolist())
    return [g for i, g in enumerate(GRADES) if i not in present]


def never_predicted_detail(missing: Sequence[str], absent: Sequence[str], rows: pd.DataFrame,
                           train_rows: pd.DataFrame | None) -> str:
    """The never_predicted flag in words: grades missed, or all predicted, plus those not in validation."""
    text = ("; ".join(never_predicted_why(g, rows, train_rows) for g in missing) if missing
            else "every grade in validation predicted at least once")
    return text + "".join(f"; {g}: {NOT_IN_VALIDATION}" for g in absent)


def majority_detail(accuracy: float, majority: float, interval: tuple[float, float] | None,
                    train_rows: pd.DataFrame | None) -> tuple[bool, bool, str]:
    """(failed, borderline, detail) of the not_above_majority flag.

    Failed: accuracy at or below the majority-class rate. Borderline: above it, but the accuracy's
    interval (participant bootstrap, when given) still includes it.
    """
    low, high = interval if interval is not None else (float("nan"), float("nan"))
    shown = f"accuracy {accuracy:.3f}" + (f" [{low:.2f}, {high:.2f}]" if np.isfinite(low) else "")
    failed = bool(accuracy <= majority)
    borderline = not failed and bool(np.isfinite(low) and low <= majority)
    detail = f"{shown} vs majority-class rate {majority:.3f}"
    if failed:
        detail += f" (no better than always answering the commonest grade{majority_why(accuracy, train_rows)})"
    elif borderline:
        detail += " (borderline: the 95 % interval includes the majority-class rate)"
    return failed, borderline, detail


def model_flags(
    model: str,
    split: str,
    rows: pd.DataFrame,
    train_accuracy: float | None = None,
    *,
    prob_columns: Sequence[str] = tuple(f"p_{g}" for g in GRADES),
    max_shared: float = MAX_SHARED,
    max_train_gap: float = MAX_TRAIN_GAP,
    max_overfit_gap: float = MAX_OVERFIT_GAP,
    train_rows: pd.DataFrame | None = None,
    accuracy_interval: tuple[float, float] | None = None,
) -> list[Flag]:
    """The five flags of one model on one split's validation rows (``y_true``, ``y_pred``, probabilities).

    ``train_accuracy``: the model's accuracy on its training frames (NaN or None: the two training
    flags are not checked).
    ``train_rows``: the same model's predictions on its training frames; when given, a failed flag
    also says why (``never_predicted_why``, ``majority_why``).
    ``accuracy_interval``: the accuracy's participant-bootstrap interval; when it includes the
    majority-class rate, ``not_above_majority`` is borderline.
    """
    y_true, y_pred = rows["y_true"].to_numpy(int), rows["y_pred"].to_numpy(int)
    accuracy = float((y_true == y_pred).mean()) if len(rows) else float("nan")
    absent = absent_grades(y_true)
    missing = [g for g in never_predicted(y_pred) if g not in absent]
    shared = largest_shared_share(rows[list(prob_columns)].to_numpy())
    majority = majority_rate(y_true)
    below, weak, majority_text = majority_detail(accuracy, majority, accuracy_interval, train_rows)
    flags = [
        Flag(model, split, "never_predicted", bool(missing), float(len(missing)), 0.0,
             never_predicted_detail(missing, absent, rows, train_rows)),
        Flag(model, split, "identical_probabilities", bool(shared > max_shared), shared, max_shared,
             f"{shared:.0%} of {len(rows)} frames share one probability vector"
             + (" (the output ignores the input: collapsed)" if shared > max_shared else "")),
        Flag(model, split, "not_above_majority", below, accuracy, majority, majority_text, borderline=weak),
    ]
    if train_accuracy is None or not np.isfinite(train_accuracy):
        flags += [Flag(model, split, name, False, float("nan"), limit, "no training accuracy recorded: not checked")
                  for name, limit in (("train_below_val", max_train_gap), ("overfitting", max_overfit_gap))]
    else:
        gap = accuracy - float(train_accuracy)
        flags.append(Flag(model, split, "train_below_val", bool(gap > max_train_gap), gap, max_train_gap,
                          f"training accuracy {train_accuracy:.3f} vs validation {accuracy:.3f}"
                          + (" (training far below validation: under-fitted)" if gap > max_train_gap else "")))
        overfit = -gap > max_overfit_gap
        flags.append(Flag(model, split, "overfitting", False, -gap, max_overfit_gap,
                          f"training accuracy {train_accuracy:.3f} vs validation {accuracy:.3f}"
                          + (f" (overfitting: training exceeds validation by {-gap:.2f} > {max_overfit_gap:.2f})"
                             if overfit else ""), borderline=bool(overfit)))
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
    accuracy_intervals: Mapping[tuple[str, str], tuple[float, float]] | None = None,
) -> pd.DataFrame:
    """Every flag of every model and evaluated split, one row per (model, split, flag).

    Args:
        predictions: model -> predictions.csv table (validation rows are judged; training rows, when
            present, give the training accuracy).
        splits: evaluated split name -> the predictions' split names it pools (``{"cv": ["cv0", ...]}``).
        accuracy_intervals: (model, split) -> the accuracy's interval (``accuracy_intervals``), for the
            borderline state of ``not_above_majority``.
    """
    rows = []
    for model, table in predictions.items():
        val = table[table["subset"] == "val"] if "subset" in table.columns else table
        for name, members in splits.items():
            part = val[val["split"].isin(list(members))]
            if part.empty:
                continue
            train = table[(table["subset"] == "train") & table["split"].isin(list(members))] \
                if "subset" in table.columns else None
            found = model_flags(model, name, part, train_accuracy(table, members), max_shared=max_shared,
                                max_train_gap=max_train_gap, train_rows=train,
                                accuracy_interval=(accuracy_intervals or {}).get((model, name)))
            rows += [{**asdict(f), "status": f.status} for f in found]
    return pd.DataFrame(rows, columns=[*Flag.__dataclass_fields__, "status"])


def accuracy_intervals(frame_metrics: pd.DataFrame) -> dict[tuple[str, str], tuple[float, float]]:
    """(model, split) -> (ci_low, ci_high) of the accuracy rows of ``ctslib.evaluate.evaluate`` output."""
    rows = frame_metrics[frame_metrics["metric"] == "accuracy"]
    return {(r["model"], r["split"]): (float(r["ci_low"]), float(r["ci_high"])) for _, r in rows.iterrows()}


def flag_overview(flags: pd.DataFrame) -> pd.DataFrame:
    """One row per model and split: ``FAIL``, ``borderline`` or ``pass``, and why (for the notebook and index).

    ``why`` gives the failed flags' reasons, else the borderline ones', else the majority and shared-vector
    checks; a grade absent from validation is always named ("not in validation").
    """
    out = []
    borderline_column = flags["borderline"] if "borderline" in flags.columns else pd.Series(False, index=flags.index)
    flags = flags.assign(borderline=borderline_column.fillna(False).astype(bool))
    for (model, split), part in flags.groupby(["model", "split"], sort=False):
        failed, weak = part[part["failed"]], part[part["borderline"] & ~part["failed"]]
        status = FAIL if len(failed) else BORDERLINE if len(weak) else PASS
        shown = failed if len(failed) else weak if len(weak) else part[
            part["flag"].isin(["not_above_majority", "identical_probabilities"])]
        details = list(shown["detail"])
        absent = part[(part["flag"] == "never_predicted") & part["detail"].str.contains(NOT_IN_VALIDATION)]
        if len(absent) and not shown["flag"].eq("never_predicted").any():
            details += [d.strip() for d in absent["detail"].iloc[0].split(";") if NOT_IN_VALIDATION in d]
        out.append({"model": model, "split": split, "status": status, "failed_flags": ", ".join(failed["flag"]),
                    "borderline_flags": ", ".join(weak["flag"]), "why": "; ".join(details)})
    return pd.DataFrame(out, columns=["model", "split", "status", "failed_flags", "borderline_flags", "why"])


def failure_messages(flags: pd.DataFrame) -> list[str]:
    """One sentence per failing (model, split), for ``ctslib.common.io.warn_report``."""
    return [f"{row['model']} model, {row['split']} split: sanity flags failed ({row['failed_flags']}): {row['why']}"
            for _, row in flag_overview(flags).iterrows() if row["status"] == FAIL]
