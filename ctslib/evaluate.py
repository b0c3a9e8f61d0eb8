"""Evaluation of the two severity CNNs: the paper's Table 2 and what a reviewer needs beyond it.

Every metric is a scikit-learn function (``accuracy_score``, ``balanced_accuracy_score``,
``precision_recall_fscore_support``, ``cohen_kappa_score``, ``confusion_matrix``), always called
with ``labels=[0, 1, 2, 3]`` and an explicit ``zero_division`` so a class missing from a validation
set gives NaN for the numbers it makes undefined, and an ``EmptyClassWarning`` naming the class,
instead of a silent 0 or an obscure scikit-learn warning.

What this module adds to the paper's evaluation:

* confidence intervals by a **participant bootstrap**: participants (not frames) are resampled with
  replacement and each drawn participant brings all its frames, because frames of one wrist are
  near-duplicates and resampling them one by one would make the intervals far too narrow;
* **wrist-level** results (mean softmax probability per wrist, optionally fused over both planes);
* the **leakage gap**: accuracy on the paper's random frame split minus accuracy on the
  participant-grouped split, with a bootstrap interval;
* a **clinical baseline**: the nerve's cross-sectional area (CSA) with grade thresholds chosen on
  the grouped split's training participants only.
"""

from __future__ import annotations

import itertools
import re
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    cohen_kappa_score,
    confusion_matrix,
    precision_recall_fscore_support,
)

from ctslib import GRADES
from ctslib.errors import InputError, StageError
from ctslib.paths import data_layout
from ctslib.seed import rng
from ctslib.split import GROUPED_SPLIT, PAPER_SPLIT, SPLIT_COLUMNS, is_grouped
from ctslib.video import Acquisition
from ctslib.video import read_acquisition as read_data_acquisition

LABELS: list[int] = list(range(len(GRADES)))
"""Class ids passed to every scikit-learn metric, so absent classes still get a row/column."""

PROB_COLUMNS: tuple[str, ...] = tuple(f"p_{g}" for g in GRADES)
PREDICTION_COLUMNS: tuple[str, ...] = (
    "frame_id", "wrist_id", "participant_id", "split", "subset", "y_true", "y_pred", *PROB_COLUMNS,
)
CV_POOLED = "cv"
"""Pseudo-split name: the validation folds of every ``cv<k>`` split pooled (each frame once)."""
_CV_FOLD = re.compile(r"^cv\d+$")

PAPER_RESULTS: dict[str, dict[str, float]] = {
    "transverse": {
        "accuracy": 0.92,
        "precision_normal": 0.88, "precision_mild": 0.94, "precision_moderate": 0.93, "precision_severe": 0.97,
    },
    "longitudinal": {
        "accuracy": 0.94,
        "precision_normal": 0.98, "precision_mild": 0.94, "precision_moderate": 0.96, "precision_severe": 0.85,
    },
}
"""The paper's published validation results (Table 2), per model."""

METRIC_LABELS: dict[str, str] = {
    "accuracy": "Overall accuracy",
    "mean_precision": "Mean class precision",
    **{f"precision_{g}": f"Precision: {g}" for g in GRADES},
}


class EmptyClassWarning(UserWarning):
    """A validation set has no example of a grade: that grade's recall is undefined."""


# ----------------------------------------------------------------------------- reading inputs
def _require_columns(df: pd.DataFrame, columns: Sequence[str], file: str | Path) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(f"missing column(s) {missing}; found {list(df.columns)}", file=file, column=missing[0])


def _check_class_ids(df: pd.DataFrame, column: str, file: str | Path) -> None:
    values = pd.to_numeric(df[column], errors="coerce")
    bad = ~values.isin(LABELS)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"class id must be one of {LABELS} ({', '.join(GRADES)}), got {df[column].iloc[row]!r}",
            file=file, row=row + 1, column=column,
        )


def read_predictions(path: str | Path) -> pd.DataFrame:
    """Read a stage 04/05 ``predictions.csv`` and check it: columns, class ids, probabilities.

    Raises:
        InputError: naming the file, row and column of the first problem.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("file not found (run the model notebook 04/05 first)", file=path)
    df = pd.read_csv(path, dtype={"frame_id": str, "wrist_id": str, "participant_id": str, "split": str})
    _require_columns(df, PREDICTION_COLUMNS, path)
    for column in ("y_true", "y_pred"):
        _check_class_ids(df, column, path)
    probs = df[list(PROB_COLUMNS)].apply(pd.to_numeric, errors="coerce")
    bad = ~np.isfinite(probs.to_numpy()).all(axis=1) | (probs.to_numpy() < 0).any(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        column = next(c for c in PROB_COLUMNS if not (np.isfinite(probs[c].iloc[row]) and probs[c].iloc[row] >= 0))
        raise InputError("probability must be a finite number >= 0", file=path, row=row + 1, column=column)
    df[["y_true", "y_pred"]] = df[["y_true", "y_pred"]].astype(int)
    df[list(PROB_COLUMNS)] = probs
    return df


def read_split(path: str | Path) -> pd.DataFrame:
    """Read a stage 04/05 ``split.csv`` and check its columns and subset values."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found (run the model notebook 04/05 first)", file=path)
    df = pd.read_csv(path, dtype={"frame_id": str, "wrist_id": str, "participant_id": str, "split": str})
    _require_columns(df, SPLIT_COLUMNS, path)
    bad = ~df["subset"].isin(["train", "val"])
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(f"subset must be 'train' or 'val', got {df['subset'].iloc[row]!r}", file=path,
                         row=row + 1, column="subset")
    return df


def read_acquisition(data_dir: str | Path) -> Acquisition:
    """The data folder's ``acquisition.json`` as stage 02 reads it, with ``source`` "synthetic" or "real"."""
    layout = data_layout(data_dir)
    acquisition = read_data_acquisition(layout)
    if acquisition.source not in ("synthetic", "real"):
        raise InputError(f"'source' must be 'synthetic' or 'real', got {acquisition.source!r}",
                         file=layout.acquisition_json, column="source")
    return acquisition


def describe_source(acquisition: Acquisition) -> str:
    """The data source in words, for tables and captions."""
    if acquisition.source == "synthetic":
        return "synthetic (simulated cohort and B-mode videos)"
    return f"real ultrasound ({acquisition.probe})" if acquisition.probe else "real ultrasound"


# ----------------------------------------------------------------------------- split checks
def grouped_splits(split_df: pd.DataFrame) -> list[str]:
    """The split names that must keep each participant on one side: ``grouped`` and ``cv<k>``."""
    return [s for s in sorted(split_df["split"].unique()) if is_grouped(str(s))]


def shared_participants(split_df: pd.DataFrame, split: str) -> list[str]:
    """Participants with frames in both the training and the validation subset of ``split``."""
    rows = split_df[split_df["split"] == split]
    sides = rows.groupby("participant_id")["subset"].nunique()
    return sorted(sides.index[sides > 1])


def assert_grouped(split_df: pd.DataFrame, splits: Sequence[str] | None = None) -> None:
    """Raise if any participant appears on both sides of a grouped split.

    Args:
        split_df: a ``split.csv`` table.
        splits: split names to check; default every grouped split present (``grouped``, ``cv<k>``).

    Raises:
        StageError: naming the split and the participants found in both training and validation.
    """
    names = grouped_splits(split_df) if splits is None else list(splits)
    missing = sorted(set(names) - set(split_df["split"].unique()))
    if missing:
        raise StageError(f"split(s) {missing} not found; present: {sorted(split_df['split'].unique())}")
    for name in names:
        both = shared_participants(split_df, name)
        if both:
            shown = ", ".join(both[:10]) + (" ..." if len(both) > 10 else "")
            raise StageError(
                f"split '{name}' is not grouped: {len(both)} participant(s) have frames in both training "
                f"and validation ({shown})"
            )


def leakage_exposure(split_df: pd.DataFrame, split: str = PAPER_SPLIT) -> dict[str, float]:
    """How much of ``split``'s validation set comes from participants/wrists also seen in training."""
    rows = split_df[split_df["split"] == split]
    train_wrists = set(rows.loc[rows["subset"] == "train", "wrist_id"])
    train_people = set(rows.loc[rows["subset"] == "train", "participant_id"])
    val = rows[rows["subset"] == "val"]
    val_people = set(val["participant_id"])
    return {
        "val_participants": len(val_people),
        "val_participants_seen_in_training": len(val_people & train_people),
        "val_frames_from_wrists_seen_in_training": (
            float(val["wrist_id"].isin(train_wrists).mean()) if len(val) else np.nan),
    }


# ----------------------------------------------------------------------------- metrics
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

    ``mean_precision`` is the macro average of the per-class precisions (the paper's "mean class
    precision"). Undefined values (a grade never predicted -> its precision; a grade absent from
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
            "macro_recall": macro_r,
            "macro_f1": macro_f1,
            "kappa_quadratic": cohen_kappa_score(y_true, y_pred, labels=LABELS, weights="quadratic"),
        }
    for i, grade in enumerate(GRADES):
        metrics[f"precision_{grade}"] = precision[i]
        metrics[f"recall_{grade}"] = recall[i]
        metrics[f"f1_{grade}"] = f1[i]
    return {k: float(v) for k, v in metrics.items()}


def accuracy_only(y_true: Sequence[int], y_pred: Sequence[int]) -> dict[str, float]:
    """Just ``accuracy`` (a cheap metric function for bootstraps that need nothing else)."""
    return {"accuracy": float(accuracy_score(y_true, y_pred))}


# ----------------------------------------------------------------------------- selecting rows
def available_splits(table: pd.DataFrame) -> list[str]:
    """Split names in a predictions table, with ``cv`` standing for all ``cv<k>`` folds together."""
    names = set(table["split"].unique())
    out = [s for s in (PAPER_SPLIT, GROUPED_SPLIT) if s in names]
    if any(_CV_FOLD.match(s) for s in names):
        out.append(CV_POOLED)
    return out + sorted(s for s in names if s not in (PAPER_SPLIT, GROUPED_SPLIT) and not _CV_FOLD.match(s))


def select_split(table: pd.DataFrame, split: str) -> pd.DataFrame:
    """Validation rows of ``split``; ``"cv"`` pools the validation rows of every ``cv<k>`` fold."""
    if "subset" in table.columns:
        table = table[table["subset"] == "val"]
    if split == CV_POOLED:
        rows = table[table["split"].str.match(_CV_FOLD)]
        duplicated = rows["frame_id"].duplicated() if "frame_id" in rows.columns else rows["wrist_id"].duplicated()
        if duplicated.any():
            raise StageError("pooled CV: a frame/wrist is in the validation set of more than one fold")
        return rows
    return table[table["split"] == split]


# ----------------------------------------------------------------------------- bootstrap
def participant_bootstrap_indices(groups: Sequence, n_boot: int, seed: int, stream: str = "") -> Iterator[np.ndarray]:
    """Row indices of ``n_boot`` participant-bootstrap resamples.

    Each resample draws as many participants as there are, with replacement, and takes *all*
    rows of every drawn participant (a participant drawn twice contributes its rows twice). So a
    resample never splits a participant's frames. Seeded by ``seed`` and ``stream``.
    """
    codes, uniques = pd.factorize(pd.Series(list(groups)), sort=True)
    members = [np.flatnonzero(codes == k) for k in range(len(uniques))]
    generator = rng(seed, "participant-bootstrap", stream)
    for _ in range(n_boot):
        drawn = generator.integers(0, len(uniques), size=len(uniques))
        yield np.concatenate([members[k] for k in drawn]) if len(drawn) else np.array([], dtype=int)


def bootstrap_replicates(
    table: pd.DataFrame,
    n_boot: int,
    seed: int,
    stream: str,
    metric_fn: Callable[[Sequence[int], Sequence[int]], dict[str, float]] = classification_metrics,
) -> pd.DataFrame:
    """``metric_fn`` on each participant-bootstrap resample of ``table`` (one row per replicate)."""
    if n_boot <= 0:
        return pd.DataFrame(columns=list(metric_fn([0], [0])), dtype=float)
    y_true = table["y_true"].to_numpy(dtype=int)
    y_pred = table["y_pred"].to_numpy(dtype=int)
    # The labels were validated once for the point estimate; skipping scikit-learn's per-call input
    # validation makes each replicate about three times faster and changes no value.
    with sklearn.config_context(skip_parameter_validation=True, assume_finite=True):
        rows = [metric_fn(y_true[idx], y_pred[idx])
                for idx in participant_bootstrap_indices(table["participant_id"], n_boot, seed, stream)]
    return pd.DataFrame(rows)


def percentile_interval(values: Sequence[float], ci: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval (NaN replicates ignored; NaN if none is defined)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return (np.nan, np.nan)
    tail = 100 * (1 - ci) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def metrics_with_ci(
    table: pd.DataFrame, *, n_boot: int, seed: int, stream: str, ci: float = 0.95
) -> pd.DataFrame:
    """Point estimates of every metric plus participant-bootstrap intervals, one row per metric."""
    point = classification_metrics(table["y_true"], table["y_pred"])
    reps = bootstrap_replicates(table, n_boot, seed, stream)
    rows = []
    for metric, estimate in point.items():
        low, high = percentile_interval(reps[metric], ci)
        rows.append({"metric": metric, "estimate": estimate, "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- wrist level
def wrist_probabilities(predictions: pd.DataFrame, source: str | Path = "predictions") -> pd.DataFrame:
    """One row per (split, wrist): mean softmax probability over its validation frames, argmax grade.

    Raises:
        InputError: if the frames of one wrist disagree on the true grade or the participant.
    """
    rows = predictions[predictions["subset"] == "val"] if "subset" in predictions.columns else predictions
    keys = ["split", "wrist_id"]
    for column in ("y_true", "participant_id"):
        varying = rows.groupby(keys)[column].nunique()
        if (varying > 1).any():
            split, wrist = varying.index[varying > 1][0]
            raise InputError(f"frames of wrist {wrist} (split {split}) disagree on {column}", file=source,
                             column=column)
    grouped = rows.groupby(keys, sort=True)
    wrists = grouped[list(PROB_COLUMNS)].mean()
    wrists["participant_id"] = grouped["participant_id"].first()
    wrists["y_true"] = grouped["y_true"].first().astype(int)
    wrists["n_frames"] = grouped.size()
    wrists["y_pred"] = wrists[list(PROB_COLUMNS)].to_numpy().argmax(axis=1)
    return wrists.reset_index()[["split", "wrist_id", "participant_id", "y_true", "y_pred", "n_frames", *PROB_COLUMNS]]


def fuse_planes(first: pd.DataFrame, second: pd.DataFrame) -> pd.DataFrame:
    """Average two planes' wrist probabilities; wrists missing from either plane are left out.

    Raises:
        StageError: if a wrist's true grade differs between the planes.
    """
    both = first.merge(second, on=["split", "wrist_id"], suffixes=("_a", "_b"), validate="one_to_one")
    clash = both["y_true_a"] != both["y_true_b"]
    if clash.any():
        raise StageError(f"wrist {both.loc[clash, 'wrist_id'].iloc[0]} has different grades in the two planes")
    fused = pd.DataFrame({
        "split": both["split"], "wrist_id": both["wrist_id"], "participant_id": both["participant_id_a"],
        "y_true": both["y_true_a"], "n_frames": both["n_frames_a"] + both["n_frames_b"],
    })
    for column in PROB_COLUMNS:
        fused[column] = (both[f"{column}_a"] + both[f"{column}_b"]) / 2
    fused["y_pred"] = fused[list(PROB_COLUMNS)].to_numpy().argmax(axis=1)
    return fused[["split", "wrist_id", "participant_id", "y_true", "y_pred", "n_frames", *PROB_COLUMNS]]


def check_grades_against_wrists(predictions: pd.DataFrame, wrists: pd.DataFrame, source: str | Path) -> None:
    """Every prediction's ``y_true`` must equal its wrist's NCS ``grade_index`` in ``wrists.csv``."""
    graded = wrists[["wrist_id", "grade_index"]].drop_duplicates("wrist_id")
    merged = predictions[["wrist_id", "y_true"]].merge(graded, on="wrist_id", how="left")
    unknown = merged["grade_index"].isna()
    if unknown.any():
        row = int(np.flatnonzero(unknown.to_numpy())[0])
        raise InputError(f"wrist {merged['wrist_id'].iloc[row]} is not in wrists.csv or has no NCS grade there",
                         file=source, row=row + 1, column="wrist_id")
    wrong = merged["y_true"] != merged["grade_index"].astype(int)
    if wrong.any():
        row = int(np.flatnonzero(wrong.to_numpy())[0])
        raise InputError(f"y_true {merged['y_true'].iloc[row]} differs from the NCS grade_index "
                         f"{int(merged['grade_index'].iloc[row])} of wrist {merged['wrist_id'].iloc[row]}",
                         file=source, row=row + 1, column="y_true")


# ----------------------------------------------------------------------------- evaluation tables
def evaluate(
    tables: Mapping[str, pd.DataFrame],
    splits: Sequence[str],
    *,
    level: str,
    n_boot: int,
    seed: int,
    ci: float = 0.95,
) -> pd.DataFrame:
    """Every metric with participant-bootstrap CIs, for each model and split (long format).

    Args:
        tables: model name -> predictions (frame level) or wrist table (``wrist_probabilities``).
        splits: split names; ``"cv"`` pools the CV folds; splits a model lacks are skipped.
        level: "frame" or "wrist" (a label; also seeds a separate bootstrap stream).
        n_boot: bootstrap resamples (0 = point estimates only).
        seed: the study seed.
        ci: interval coverage, e.g. 0.95.

    Returns:
        Columns model, split, level, n, n_participants, empty_classes, metric, estimate, ci_low, ci_high.
    """
    parts = []
    for model, table in tables.items():
        for split in splits:
            rows = select_split(table, split)
            if rows.empty:
                continue
            empty = check_classes(rows["y_true"], f"{model} · {split} · {level} level")
            result = metrics_with_ci(rows, n_boot=n_boot, seed=seed, stream=f"{model}/{split}/{level}", ci=ci)
            result.insert(0, "empty_classes", ", ".join(empty))
            result.insert(0, "n_participants", rows["participant_id"].nunique())
            result.insert(0, "n", len(rows))
            result.insert(0, "level", level)
            result.insert(0, "split", split)
            result.insert(0, "model", model)
            parts.append(result)
    if not parts:
        raise StageError(f"no validation predictions for splits {list(splits)} in models {list(tables)}")
    return pd.concat(parts, ignore_index=True)


def headline(metrics_long: pd.DataFrame, metrics: Sequence[str] = ("accuracy", "balanced_accuracy", "macro_f1",
                                                                  "kappa_quadratic")) -> pd.DataFrame:
    """Compact wide view of ``evaluate`` output: one row per model x split, "0.91 [0.85, 0.95]" cells."""
    rows = metrics_long[metrics_long["metric"].isin(metrics)].copy()
    rows["value"] = [format_ci(e, lo, hi) for e, lo, hi in zip(rows["estimate"], rows["ci_low"], rows["ci_high"])]
    wide = rows.pivot_table(index=["model", "split", "level", "n", "n_participants", "empty_classes"],
                            columns="metric", values="value", aggfunc="first", sort=False)
    return wide[[m for m in metrics if m in wide.columns]].reset_index()


def format_ci(estimate: float, low: float, high: float, digits: int = 2) -> str:
    """``0.91 [0.85, 0.95]`` (or just the estimate when the interval is undefined)."""
    if not np.isfinite(estimate):
        return "undefined"
    if not (np.isfinite(low) and np.isfinite(high)):
        return f"{estimate:.{digits}f}"
    return f"{estimate:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def table2(predictions: Mapping[str, pd.DataFrame], split: str = PAPER_SPLIT) -> pd.DataFrame:
    """The paper's Table 2 layout: accuracy, mean class precision and per-class precision per model."""
    columns = {}
    for model, table in predictions.items():
        rows = select_split(table, split)
        if rows.empty:
            raise StageError(f"Table 2: no validation predictions of the {model} model on split '{split}'")
        check_classes(rows["y_true"], f"Table 2, {model} · {split}")
        metrics = classification_metrics(rows["y_true"], rows["y_pred"])
        columns[model.capitalize()] = [metrics[k] for k in METRIC_LABELS]
    return pd.DataFrame({"Metric": list(METRIC_LABELS.values()), **columns})


def paper_vs_reproduction(
    predictions: Mapping[str, pd.DataFrame], data_source: str, *, split: str = PAPER_SPLIT,
    grouped_split: str | None = GROUPED_SPLIT,
) -> pd.DataFrame:
    """The paper's published values beside ours on the same split (and on the grouped split).

    The paper's mean class precision is not among the values we transcribe; it is derived as the mean of
    its four published per-class precisions (marked in the ``metric`` label).
    """
    rows = []
    for model, table in predictions.items():
        frame_rows = select_split(table, split)
        ours = classification_metrics(frame_rows["y_true"], frame_rows["y_pred"])
        grouped_rows = select_split(table, grouped_split) if grouped_split else pd.DataFrame()
        grouped = classification_metrics(grouped_rows["y_true"], grouped_rows["y_pred"]) if len(grouped_rows) else {}
        published = dict(PAPER_RESULTS.get(model, {}))
        if published:
            published["mean_precision"] = float(np.mean([published[f"precision_{g}"] for g in GRADES]))
        for metric, label in METRIC_LABELS.items():
            rows.append({
                "model": model,
                "metric": label + (" (mean of published per-class values)" if metric == "mean_precision" else ""),
                "paper": published.get(metric, np.nan),
                f"ours_{split}_split": ours[metric],
                "difference": ours[metric] - published.get(metric, np.nan),
                f"ours_{grouped_split}_split": grouped.get(metric, np.nan) if grouped_split else np.nan,
                "data_source": data_source,
            })
    return pd.DataFrame(rows)


def leakage_table(
    predictions: Mapping[str, pd.DataFrame],
    split_tables: Mapping[str, pd.DataFrame],
    *,
    n_boot: int,
    seed: int,
    ci: float = 0.95,
    level: str = "frame",
) -> pd.DataFrame:
    """Frame-split minus grouped-split accuracy per model, with a participant-bootstrap interval.

    The two validation sets are resampled independently with the same streams ``evaluate`` uses,
    so the intervals here match those of the frame-level metrics table.
    """
    rows = []
    for model, table in predictions.items():
        frame_rows, grouped_rows = select_split(table, PAPER_SPLIT), select_split(table, GROUPED_SPLIT)
        if frame_rows.empty or grouped_rows.empty:
            continue
        reps = {}
        for name, part in ((PAPER_SPLIT, frame_rows), (GROUPED_SPLIT, grouped_rows)):
            reps[name] = bootstrap_replicates(part, n_boot, seed, f"{model}/{name}/{level}", accuracy_only)["accuracy"]
        gap_reps = reps[PAPER_SPLIT].to_numpy() - reps[GROUPED_SPLIT].to_numpy()
        acc_frame = accuracy_score(frame_rows["y_true"], frame_rows["y_pred"])
        acc_grouped = accuracy_score(grouped_rows["y_true"], grouped_rows["y_pred"])
        exposure = leakage_exposure(split_tables[model], PAPER_SPLIT) if model in split_tables else {}
        row = {"model": model, "level": level}
        for name, estimate in ((PAPER_SPLIT, acc_frame), (GROUPED_SPLIT, acc_grouped)):
            low, high = percentile_interval(reps[name], ci)
            row.update({f"accuracy_{name}": estimate, f"{name}_ci_low": low, f"{name}_ci_high": high})
        low, high = percentile_interval(gap_reps, ci)
        row.update({"gap": acc_frame - acc_grouped, "gap_ci_low": low, "gap_ci_high": high})
        row.update({f"{PAPER_SPLIT}_{k}": v for k, v in exposure.items()})
        rows.append(row)
    if not rows:
        raise StageError(f"leakage needs predictions of both the '{PAPER_SPLIT}' and '{GROUPED_SPLIT}' splits")
    return pd.DataFrame(rows)


def leakage_sentence(leakage: pd.DataFrame, ci: float = 0.95) -> str:
    """One plain sentence per model on what the leakage gap means."""
    parts = []
    for _, row in leakage.iterrows():
        gap, low, high = row["gap"], row["gap_ci_low"], row["gap_ci_high"]
        interval = f" ({ci:.0%} CI {low:+.2f} to {high:+.2f})" if np.isfinite(low) else ""
        if np.isfinite(low) and low > 0:
            verdict = "so the random frame split overstates accuracy on new patients"
        elif np.isfinite(high) and high < 0:
            verdict = "so the grouped split scored higher; no sign of leakage inflating accuracy"
        else:
            verdict = "an interval that includes zero, so this data cannot show whether leakage inflates accuracy"
        seen = row.get(f"{PAPER_SPLIT}_val_frames_from_wrists_seen_in_training", np.nan)
        seen_text = (f"; {seen:.0%} of its frame-split validation frames come from wrists with other frames in "
                     "training") if np.isfinite(seen) else ""
        parts.append(f"{row['model'].capitalize()} model: frame split minus grouped split accuracy = "
                     f"{gap:+.2f}{interval}, {verdict}{seen_text}.")
    parts.append("The grouped split keeps each participant's frames on one side, so its accuracy is the one "
                 "that estimates performance on patients the model has never seen.")
    return " ".join(parts)


def cv_fold_metrics(predictions: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Accuracy, balanced accuracy and quadratic kappa of every CV fold on its own (the spread across folds)."""
    rows = []
    for model, table in predictions.items():
        val = table[table["subset"] == "val"] if "subset" in table.columns else table
        for fold in sorted((s for s in val["split"].unique() if _CV_FOLD.match(s)), key=lambda s: int(s[2:])):
            part = val[val["split"] == fold]
            metrics = classification_metrics(part["y_true"], part["y_pred"])
            rows.append({"model": model, "fold": fold, "n": len(part),
                         "n_participants": part["participant_id"].nunique(),
                         "empty_classes": ", ".join(empty_classes(part["y_true"])),
                         **{k: metrics[k] for k in ("accuracy", "balanced_accuracy", "kappa_quadratic")}})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- CSA baseline
def wrist_csa(crops: pd.DataFrame, plane: str = "transverse", source: str | Path = "crops.csv") -> pd.DataFrame:
    """Per-wrist median CSA (mm²) over the frames of ``plane`` where the nerve was found.

    Returns:
        wrist_id, participant_id, grade_index, csa_mm2 (median), n_frames (with a finite CSA).
    """
    _require_columns(crops, ["wrist_id", "participant_id", "plane", "grade_index", "csa_mm2"], source)
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
    best, best_score = None, -np.inf
    with warnings.catch_warnings(), sklearn.config_context(skip_parameter_validation=True, assume_finite=True):
        warnings.simplefilter("ignore", UserWarning)
        for triple in itertools.combinations_with_replacement(cuts, len(LABELS) - 1):
            score = balanced_accuracy_score(grade, apply_csa_thresholds(csa, triple))
            if score > best_score:
                best, best_score = np.array(triple), score
    return best


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


# ----------------------------------------------------------------------------- summary
def interpretation(source: str, n_participants: int | None = None) -> str:
    """What the numbers of this run can and cannot support, in plain words."""
    if source == "synthetic":
        return ("These results come from SYNTHETIC data (a simulated cohort and simulated ultrasound): they "
                "validate the pipeline (data flow, training, evaluation code), not the clinical claim that "
                "ultrasound CNNs grade carpal tunnel syndrome.")
    size = f" With {n_participants} validation participants the intervals are wide." if n_participants else ""
    return ("These results come from real ultrasound. The grouped split keeps every participant's frames on one "
            "side, so its numbers estimate accuracy on new patients from the same clinic and device; the paper's "
            "random frame split puts near-duplicate frames of the same wrist in training and validation and "
            "overstates it by the leakage gap. External validation (other centres, devices, operators) is still "
            "needed before clinical use." + size)


def summary_table(
    frame_metrics: pd.DataFrame,
    *,
    source: str,
    source_description: str | None = None,
    leakage: pd.DataFrame | None = None,
    wrist_metrics: pd.DataFrame | None = None,
    csa_metrics: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Headline findings in one small table (item, value, note), ending with the interpretation.

    Args:
        source: "synthetic" or "real" (``acquisition.json``); picks the interpretation.
        source_description: the source in words for the first row (default ``source``).
    """
    def pick(table: pd.DataFrame, **where) -> pd.Series | None:
        rows = table
        for key, value in where.items():
            rows = rows[rows[key] == value]
        return rows.iloc[0] if len(rows) else None

    rows = [{"item": "Data source", "value": source_description or source, "note": ""}]
    for model in frame_metrics["model"].unique():
        published = PAPER_RESULTS.get(model, {}).get("accuracy")
        for split in available_splits(frame_metrics):
            for metric in ("accuracy", "kappa_quadratic"):
                hit = pick(frame_metrics, model=model, split=split, metric=metric)
                if hit is None:
                    continue
                note = {PAPER_SPLIT: "random frame split as in the paper (leaks wrists across sides)",
                        GROUPED_SPLIT: "participant-grouped split", CV_POOLED: "grouped k-fold CV, folds pooled"}
                reported = metric == "accuracy" and split == PAPER_SPLIT and published
                extra = f"; paper reported {published:.2f}" if reported else ""
                rows.append({"item": f"{model} {metric.replace('_', ' ')}, {split} split (frames)",
                             "value": format_ci(hit["estimate"], hit["ci_low"], hit["ci_high"]),
                             "note": note.get(split, "") + extra})
    if wrist_metrics is not None:
        for model in wrist_metrics["model"].unique():
            for split in (GROUPED_SPLIT, CV_POOLED):
                hit = pick(wrist_metrics, model=model, split=split, metric="accuracy")
                if hit is not None:
                    rows.append({"item": f"{model} accuracy, {split} split (wrists)",
                                 "value": format_ci(hit["estimate"], hit["ci_low"], hit["ci_high"]),
                                 "note": f"{int(hit['n'])} wrists, mean softmax over frames"})
    if leakage is not None:
        for _, row in leakage.iterrows():
            rows.append({"item": f"{row['model']} leakage gap (frame - grouped accuracy)",
                         "value": format_ci(row["gap"], row["gap_ci_low"], row["gap_ci_high"]),
                         "note": "positive = the frame split flatters the model"})
    if csa_metrics is not None:
        for model in csa_metrics["model"].unique():
            for metric in ("accuracy", "balanced_accuracy"):
                hit = pick(csa_metrics, model=model, metric=metric)
                if hit is not None:
                    rows.append({"item": f"{model}: {metric.replace('_', ' ')} (grouped validation wrists)",
                                 "value": format_ci(hit["estimate"], hit["ci_low"], hit["ci_high"]),
                                 "note": f"{int(hit['n'])} wrists"})
    n_val = pick(frame_metrics, split=GROUPED_SPLIT, metric="accuracy")
    rows.append({"item": "Interpretation",
                 "value": interpretation(source, int(n_val["n_participants"]) if n_val is not None else None),
                 "note": ""})
    return pd.DataFrame(rows)

