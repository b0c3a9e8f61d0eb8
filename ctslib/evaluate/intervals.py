"""Confidence intervals: the participant bootstrap, and exact binomial intervals where it collapses.

Participants (not frames) are resampled with replacement and each drawn participant brings all its
rows, because frames of one wrist are near-duplicates: resampling them one by one would make the
intervals far too narrow. When every resample gives the same value (an accuracy of 0 or 1 on a
small set), a percentile interval has zero width; proportions then get a Clopper-Pearson interval.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import pandas as pd
import sklearn

from ctslib.evaluate.metrics import LABELS, classification_metrics, metrics_from_confusion
from ctslib.common.seed import rng

__all__ = ["participant_bootstrap_indices", "bootstrap_confusions", "bootstrap_replicates", "percentile_interval", "clopper_pearson",
           "effective_n", "exact_applies", "metrics_with_ci", "format_ci", "mean_sd", "paired_rows", "paired_difference",
           "difference_word"]

PROPORTIONS: tuple[str, ...] = ("accuracy", "balanced_accuracy", "mean_precision", "macro_recall")
"""Metrics that are proportions (or means of proportions): an exact interval applies when the bootstrap collapses."""


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


def bootstrap_confusions(table: pd.DataFrame, n_boot: int, seed: int, stream: str) -> np.ndarray:
    """Confusion matrices (n_boot x 4 x 4) of the participant-bootstrap resamples of ``table``.

    The participants drawn are exactly those of ``participant_bootstrap_indices`` (same generator,
    same draws); a resample's matrix is the sum of its participants' matrices, each counted as often
    as it was drawn.
    """
    codes, uniques = pd.factorize(pd.Series(list(table["participant_id"])), sort=True)
    k = len(LABELS)
    cell = table["y_true"].to_numpy(dtype=int) * k + table["y_pred"].to_numpy(dtype=int)
    per_participant = np.zeros((len(uniques), k * k))
    np.add.at(per_participant, (codes, cell), 1.0)
    generator = rng(seed, "participant-bootstrap", stream)
    counts = np.stack([np.bincount(generator.integers(0, len(uniques), size=len(uniques)), minlength=len(uniques))
                       for _ in range(n_boot)])
    return (counts @ per_participant).reshape(n_boot, k, k)


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
    if metric_fn is classification_metrics:  # the same resamples, summed as confusion matrices (vectorised)
        return pd.DataFrame(metrics_from_confusion(bootstrap_confusions(table, n_boot, seed, stream)))
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


def clopper_pearson(successes: float, n: int, ci: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) binomial interval for ``successes`` out of ``n`` (NaN when n = 0)."""
    from scipy.stats import beta

    if n <= 0:
        return (np.nan, np.nan)
    alpha = 1 - ci
    k = float(np.clip(successes, 0, n))
    low = 0.0 if k <= 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    high = 1.0 if k >= n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return low, high


def effective_n(table: pd.DataFrame, metric: str) -> int:
    """Independent units behind ``metric``: the participants whose rows it is computed from.

    Frames of one participant are near-duplicates, so an exact interval counts participants, not
    frames: recall of a grade counts participants with that true grade, precision those the model
    gave that grade, every other metric all participants.
    """
    for prefix, column in (("recall_", "y_true"), ("precision_", "y_pred")):
        if metric.startswith(prefix):
            from ctslib import GRADES

            grade = GRADES.index(metric[len(prefix):])
            return int(table.loc[table[column] == grade, "participant_id"].nunique())
    return int(table["participant_id"].nunique())


def exact_applies(metric: str, estimate: float, low: float, high: float) -> bool:
    """A bootstrap interval of zero width at 0 or 1 for a proportion: it says nothing; use an exact one."""
    proportion = metric in PROPORTIONS or metric.startswith(("precision_", "recall_"))
    return proportion and np.isfinite(estimate) and estimate in (0.0, 1.0) and (
        not np.isfinite(low) or low == high)


def metrics_with_ci(
    table: pd.DataFrame, *, n_boot: int, seed: int, stream: str, ci: float = 0.95
) -> pd.DataFrame:
    """Point estimates of every metric plus participant-bootstrap intervals, one row per metric.

    Where every resample gives the same 0 or 1 (a percentile interval of zero width, "1.000 [1.000,
    1.000]"), a proportion gets a Clopper-Pearson interval with the participants as the count
    (``effective_n``); column ``interval`` says which kind each row has.
    """
    point = classification_metrics(table["y_true"], table["y_pred"])
    reps = bootstrap_replicates(table, n_boot, seed, stream)
    rows = []
    for metric, estimate in point.items():
        low, high = percentile_interval(reps[metric], ci)
        kind = "bootstrap" if np.isfinite(low) else ""
        if n_boot > 0 and exact_applies(metric, estimate, low, high):
            n = effective_n(table, metric)
            low, high = clopper_pearson(estimate * n, n, ci)
            kind = "clopper-pearson (participants)"
        rows.append({"metric": metric, "estimate": estimate, "ci_low": low, "ci_high": high, "interval": kind})
    return pd.DataFrame(rows)


def paired_rows(first: pd.DataFrame, second: pd.DataFrame, key: str = "wrist_id") -> pd.DataFrame:
    """The rows both tables predict (inner join on ``key``), with ``correct_a`` / ``correct_b``.

    Each table needs ``key``, ``participant_id``, ``y_true`` and ``y_pred``; a row whose participant
    or true grade differs between the two is an error, since the arms would not grade the same wrist.
    """
    both = first[[key, "participant_id", "y_true", "y_pred"]].merge(
        second[[key, "participant_id", "y_true", "y_pred"]], on=key, suffixes=("_a", "_b"), validate="one_to_one")
    for column in ("participant_id", "y_true"):
        clash = both[f"{column}_a"].astype(str) != both[f"{column}_b"].astype(str)
        if clash.any():
            raise ValueError(f"paired comparison: {key} {both.loc[clash, key].iloc[0]} has a different {column} "
                             "in the two arms")
    return pd.DataFrame({key: both[key], "participant_id": both["participant_id_a"],
                         "correct_a": (both["y_true_a"] == both["y_pred_a"]).to_numpy(float),
                         "correct_b": (both["y_true_b"] == both["y_pred_b"]).to_numpy(float)})


def paired_difference(
    first: pd.DataFrame, second: pd.DataFrame, *, n_boot: int, seed: int, stream: str, ci: float = 0.95,
    key: str = "wrist_id",
) -> dict[str, float]:
    """Accuracy of ``first`` minus accuracy of ``second`` on the rows both predict, with a paired
    participant-bootstrap interval.

    Both arms are scored on the same resample of participants (``participant_bootstrap_indices``), so
    what the participants share (an easy or a hard wrist) cancels in the difference; two separate
    intervals that overlap say little about it. Returns the two accuracies, the difference, its
    interval (NaN without resamples) and the counts behind it (rows, participants).
    """
    rows = paired_rows(first, second, key)
    if rows.empty:
        return {"n": 0, "n_participants": 0, "accuracy_a": np.nan, "accuracy_b": np.nan, "difference": np.nan,
                "ci_low": np.nan, "ci_high": np.nan}
    a, b = rows["correct_a"].to_numpy(), rows["correct_b"].to_numpy()
    diffs = [a[idx].mean() - b[idx].mean()
             for idx in participant_bootstrap_indices(rows["participant_id"], n_boot, seed, f"paired/{stream}")]
    low, high = percentile_interval(diffs, ci) if n_boot > 0 else (np.nan, np.nan)
    return {"n": len(rows), "n_participants": int(rows["participant_id"].nunique()), "accuracy_a": float(a.mean()),
            "accuracy_b": float(b.mean()), "difference": float(a.mean() - b.mean()), "ci_low": low, "ci_high": high}


def difference_word(low: float, high: float) -> str:
    """"higher than" / "lower than" when the paired interval excludes zero, else "not clearly different from"."""
    if np.isfinite(low) and low > 0:
        return "higher than"
    if np.isfinite(high) and high < 0:
        return "lower than"
    return "not clearly different from"


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof = 1; NaN SD for fewer than two finite values)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return (np.nan, np.nan)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else np.nan


def format_ci(estimate: float, low: float, high: float, digits: int = 3) -> str:
    """``0.910 [0.850, 0.950]`` (or just the estimate when the interval is undefined)."""
    if not np.isfinite(estimate):
        return "undefined"
    if not (np.isfinite(low) and np.isfinite(high)):
        return f"{estimate:.{digits}f}"
    return f"{estimate:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"
