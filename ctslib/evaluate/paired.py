"""Paired comparisons: CNN against the CSA baseline and plane against plane, on the wrists both grade.

Every "A is better / worse / not clearly different from B" statement of the report comes from here:
the difference of the two accuracies on the same wrists, with a participant bootstrap that draws the
same participants for both arms (``ctslib.evaluate.intervals.paired_difference``). Whether two
separate intervals overlap is not used: it ignores that both arms grade the same wrists.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence

import pandas as pd

from ctslib.evaluate.intervals import difference_word, paired_difference
from ctslib.evaluate.metrics import CV_POOLED

__all__ = ["PAIRED_COLUMNS", "slug", "split_words", "comparison_pairs", "paired_table", "paired_phrase"]

PAIRED_COLUMNS: list[str] = ["split", "first", "second", "n_wrists", "n_participants", "accuracy_first",
                             "accuracy_second", "difference", "ci_low", "ci_high", "reading"]


def slug(name: str) -> str:
    """``transverse_cnn`` from ``transverse CNN``: a record key part (lower case, runs of other characters as ``_``)."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def split_words(split: str) -> str:
    """The split in words for a reader (which participants the numbers come from)."""
    return "grouped CV (every participant predicted once)" if split == CV_POOLED else \
        "the participant-grouped split" if split == "grouped" else f"split '{split}'"


def comparison_pairs(models: Sequence[str], baselines: Sequence[str]) -> list[tuple[str, str]]:
    """Every model against every baseline, then every pair of models (first minus second)."""
    return [(m, b) for m in models for b in baselines] + list(itertools.combinations(models, 2))


def paired_table(
    arms: Mapping[str, pd.DataFrame],
    pairs: Sequence[tuple[str, str]],
    *,
    split: str,
    n_boot: int,
    seed: int,
    ci: float = 0.95,
) -> pd.DataFrame:
    """One row per pair: accuracy of ``first`` minus ``second`` on the wrists both grade, paired CI and n.

    Args:
        arms: name -> wrist table of ``split``'s validation wrists (``wrist_id``, ``participant_id``,
            ``y_true``, ``y_pred``; one row per wrist).
        pairs: (first, second) names of ``arms``; a pair with a missing arm is skipped.
    """
    rows = []
    for first, second in pairs:
        if first not in arms or second not in arms:
            continue
        result = paired_difference(arms[first], arms[second], n_boot=n_boot, seed=seed, ci=ci,
                                   stream=f"{split}/{first}/{second}")
        rows.append({"split": split, "first": first, "second": second, "n_wrists": result["n"],
                     "n_participants": result["n_participants"], "accuracy_first": result["accuracy_a"],
                     "accuracy_second": result["accuracy_b"], "difference": result["difference"],
                     "ci_low": result["ci_low"], "ci_high": result["ci_high"],
                     "reading": f"{first} {difference_word(result['ci_low'], result['ci_high'])} {second}"
                     if result["n"] else "no wrist graded by both"})
    return pd.DataFrame(rows, columns=PAIRED_COLUMNS)


def _signed(estimate: float, low: float, high: float) -> str:
    """``-0.130 [-0.240, -0.010]``: a difference with its sign, three decimals (the report's rule) (the interval when defined)."""
    if not pd.notna(estimate):
        return "undefined"
    if not (pd.notna(low) and pd.notna(high)):
        return f"{estimate:+.3f}"
    return f"{estimate:+.3f} [{low:+.3f}, {high:+.3f}]"


def paired_phrase(row: Mapping) -> str:
    """``transverse CNN minus CSA thresholds: -0.13 [-0.24, -0.01] on 84 wrists of 42 participants``."""
    return (f"{row['first']} minus {row['second']}: "
            f"{_signed(row['difference'], row['ci_low'], row['ci_high'])}"
            f" on {int(row['n_wrists'])} wrists of {int(row['n_participants'])} participants")
