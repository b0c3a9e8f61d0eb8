"""Evaluation tables: every metric with intervals, Table 2, paper vs reproduction, leakage, CV folds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score

from ctslib import GRADES
from ctslib.common.errors import StageError
from ctslib.evaluate.intervals import (
    bootstrap_replicates,
    clopper_pearson,
    effective_n,
    exact_applies,
    format_ci,
    mean_sd,
    metrics_with_ci,
    percentile_interval,
)
from ctslib.evaluate.metrics import (
    CV_FOLD,
    CV_POOLED,
    SEED_TAG,
    accuracy_only,
    check_classes,
    classification_metrics,
    empty_classes,
    select_split,
)
from ctslib.evaluate.readers import leakage_exposure
from ctslib.severity.sanity import NOT_IN_VALIDATION
from ctslib.severity.split import GROUPED_SPLIT, PAPER_SPLIT

__all__ = [
    "PAPER_RESULTS", "METRIC_LABELS", "NEVER_PREDICTED", "shown_value", "evaluate", "headline",
    "table2", "paper_vs_reproduction", "leakage_table", "cv_fold_metrics", "cv_fold_summary", "seed_replicates",
    "seed_variation",
]

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
    "mean_precision_4": "Mean class precision (4 grades)",
    **{f"precision_{g}": f"Precision: {g}" for g in GRADES},
}


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


NEVER_PREDICTED = "never predicted"
"""Shown instead of NaN for the precision of a grade the model never predicted."""


def shown_value(metrics: Mapping[str, float], metric: str, y_pred: Sequence[int], digits: int = 3,
                y_true: Sequence[int] | None = None) -> str:
    """A metric for a reader: 3 decimals, or "never predicted" for an undefined precision ("not in
    validation" instead when ``y_true`` is given and has no example of that grade either)."""
    value = metrics.get(metric, np.nan)
    if metric.startswith("precision_") and GRADES.index(metric[len("precision_"):]) not in set(np.asarray(y_pred).tolist()):
        absent = y_true is not None and GRADES.index(metric[len("precision_"):]) not in set(np.asarray(y_true).tolist())
        return NOT_IN_VALIDATION if absent else NEVER_PREDICTED
    return "" if not np.isfinite(value) else f"{value:.{digits}f}"


def _marked_mean_label(metrics_by_model: Mapping[str, tuple[dict, Sequence[int]]]) -> str:
    never = {m: [g for g in GRADES if GRADES.index(g) not in set(np.asarray(p).tolist())]
             for m, (_, p) in metrics_by_model.items()}
    marks = "; ".join(f"{m}: {', '.join(g)} never predicted, counted 0" for m, g in never.items() if g)
    return METRIC_LABELS["mean_precision_4"] + (f" ({marks})" if marks else "")


def table2(predictions: Mapping[str, pd.DataFrame], split: str = PAPER_SPLIT) -> pd.DataFrame:
    """The paper's Table 2 layout: accuracy, mean class precision and per-class precision per model.

    Values are text with 3 decimals; a grade the model never predicted shows "never predicted"
    (its precision is undefined) and counts 0 in the 4-grade mean, which the label says.
    """
    columns, seen = {}, {}
    for model, table in predictions.items():
        rows = select_split(table, split)
        if rows.empty:
            raise StageError(f"Table 2: no validation predictions of the {model} model on split '{split}'")
        check_classes(rows["y_true"], f"Table 2, {model} · {split}")
        metrics = classification_metrics(rows["y_true"], rows["y_pred"])
        seen[model] = (metrics, rows["y_pred"].to_numpy())
        columns[model.capitalize()] = [shown_value(metrics, k, rows["y_pred"], y_true=rows["y_true"])
                                       for k in METRIC_LABELS]
    labels = [(_marked_mean_label(seen) if k == "mean_precision_4" else v) for k, v in METRIC_LABELS.items()]
    return pd.DataFrame({"Metric": labels, **columns})


def paper_vs_reproduction(
    predictions: Mapping[str, pd.DataFrame], data_source: str, *, split: str = PAPER_SPLIT,
    grouped_split: str | None = GROUPED_SPLIT, more_splits: Sequence[str] = (CV_POOLED,),
) -> pd.DataFrame:
    """The paper's published values beside ours on the same split, the grouped split and pooled CV.

    The paper's mean class precision is not among the values we transcribe; it is derived as the mean of
    its four published per-class precisions (marked in the ``metric`` label). Our values are text (3
    decimals, "never predicted" for an undefined precision); ``difference`` is ours minus the paper's
    on the paper's split.
    """
    rows = []
    for model, table in predictions.items():
        published = dict(PAPER_RESULTS.get(model, {}))
        if published:
            published["mean_precision_4"] = float(np.mean([published[f"precision_{g}"] for g in GRADES]))
        ours = {}
        for name in [split, *([grouped_split] if grouped_split else []), *more_splits]:
            part = select_split(table, name)
            if len(part):
                ours[name] = (classification_metrics(part["y_true"], part["y_pred"]), part["y_pred"].to_numpy(),
                              part["y_true"].to_numpy())
        for metric, label in METRIC_LABELS.items():
            row = {"model": model,
                   "metric": label + (" (paper: mean of its published per-class values)"
                                      if metric == "mean_precision_4" else ""),
                   "paper": f"{published[metric]:.3f}" if metric in published else ""}
            for name, (values, y_pred, y_true) in ours.items():
                row[f"ours_{name}_split"] = shown_value(values, metric, y_pred, y_true=y_true)
            mine = ours.get(split, ({}, []))[0].get(metric, np.nan)
            difference = mine - published.get(metric, np.nan)
            row["difference"] = f"{difference:+.3f}" if np.isfinite(difference) else ""
            row["data_source"] = data_source
            rows.append(row)
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
        for name, estimate, part in ((PAPER_SPLIT, acc_frame, frame_rows), (GROUPED_SPLIT, acc_grouped, grouped_rows)):
            low, high = percentile_interval(reps[name], ci)
            if n_boot > 0 and exact_applies("accuracy", estimate, low, high):
                n = effective_n(part, "accuracy")
                low, high = clopper_pearson(estimate * n, n, ci)
            row.update({f"accuracy_{name}": estimate, f"{name}_ci_low": low, f"{name}_ci_high": high})
        low, high = percentile_interval(gap_reps, ci)
        row.update({"gap": acc_frame - acc_grouped, "gap_ci_low": low, "gap_ci_high": high})
        row.update({f"{PAPER_SPLIT}_{k}": v for k, v in exposure.items()})
        rows.append(row)
    if not rows:
        raise StageError(f"leakage needs predictions of both the '{PAPER_SPLIT}' and '{GROUPED_SPLIT}' splits")
    return pd.DataFrame(rows)


def cv_fold_metrics(predictions: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Accuracy, balanced accuracy and quadratic kappa of every CV fold on its own (the spread across folds)."""
    rows = []
    for model, table in predictions.items():
        val = table[table["subset"] == "val"] if "subset" in table.columns else table
        for fold in sorted((s for s in val["split"].unique() if CV_FOLD.match(s)), key=lambda s: int(s[2:])):
            part = val[val["split"] == fold]
            metrics = classification_metrics(part["y_true"], part["y_pred"])
            rows.append({"model": model, "fold": fold, "n": len(part),
                         "n_participants": part["participant_id"].nunique(),
                         "empty_classes": ", ".join(empty_classes(part["y_true"])),
                         **{k: metrics[k] for k in ("accuracy", "balanced_accuracy", "kappa_quadratic")}})
    return pd.DataFrame(rows)


def cv_fold_summary(cv_folds: pd.DataFrame,
                    metrics: Sequence[str] = ("accuracy", "balanced_accuracy", "kappa_quadratic")) -> pd.DataFrame:
    """Fold mean ± SD (ddof 1) of each metric per model, from ``cv_fold_metrics`` output."""
    rows = []
    for model, part in cv_folds.groupby("model", sort=False):
        row = {"model": model, "folds": len(part)}
        for metric in metrics:
            mean, sd = mean_sd(part[metric])
            row[f"{metric}_mean"], row[f"{metric}_sd"] = mean, sd
        rows.append(row)
    return pd.DataFrame(rows)


def seed_replicates(table: pd.DataFrame, split: str) -> dict[int, pd.DataFrame]:
    """Validation rows of ``split`` (``cv``: pooled folds) per training seed index (0 = the study seed)."""
    val = table[table["subset"] == "val"] if "subset" in table.columns else table
    base = val["split"].str.split(SEED_TAG, regex=False).str[0]
    index = pd.to_numeric(val["split"].str.split(SEED_TAG, regex=False).str[1], errors="coerce").fillna(0).astype(int)
    out = {}
    for k in sorted(index.unique()):
        part = val[(index == k).to_numpy()]
        names = base[(index == k).to_numpy()]
        keep = names.str.match(CV_FOLD) if split == CV_POOLED else names == split
        if keep.any():
            out[int(k)] = part[keep.to_numpy()]
    return out


def seed_variation(predictions: Mapping[str, pd.DataFrame], splits: Sequence[str],
                   metrics: Sequence[str] = ("accuracy", "balanced_accuracy"),
                   frame_metrics: pd.DataFrame | None = None) -> pd.DataFrame:
    """Each metric per training seed and its mean ± SD across seeds (training variance), per model and split.

    Only model/split pairs trained with at least two seeds appear. The SD measures how much the result
    moves when only the random initialisation, shuffling and augmentation change, on the *same*
    validation participants: training variance, not the sampling variance a bootstrap interval shows.
    With ``frame_metrics`` (``evaluate`` output) each metric's bootstrap interval of the study seed is put
    beside its seed SD.
    """
    rows = []
    for model, table in predictions.items():
        for split in splits:
            replicates = seed_replicates(table, split)
            if len(replicates) < 2:
                continue
            values = {k: classification_metrics(r["y_true"], r["y_pred"]) for k, r in replicates.items()}
            row = {"model": model, "split": split, "seeds": len(replicates)}
            for metric in metrics:
                per_seed = [values[k][metric] for k in sorted(values)]
                row[f"{metric}_per_seed"] = ", ".join(f"{v:.3f}" for v in per_seed)
                row[f"{metric}_mean"], row[f"{metric}_sd"] = mean_sd(per_seed)
                if frame_metrics is not None:
                    hit = frame_metrics[(frame_metrics["model"] == model) & (frame_metrics["split"] == split)
                                        & (frame_metrics["metric"] == metric)]
                    row[f"{metric}_bootstrap_ci"] = (format_ci(*hit[["estimate", "ci_low", "ci_high"]].iloc[0])
                                                     if len(hit) else "")
            rows.append(row)
    return pd.DataFrame(rows)
