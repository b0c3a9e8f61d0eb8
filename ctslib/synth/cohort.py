"""Simulated study cohort: participants, wrists and NCS values that reproduce the paper's Table 1.

``make_cohort`` returns the rows of ``cohort.csv`` (docs/pipeline.md). Each wrist is given an
*intended* severity first; its NCS values (DML, SNCV, SNAP) are then drawn from a realistic range
for that severity, well clear of the grading limits, so that ``ctslib.data.ncs.grade_wrist`` with the
default limits and the default ``"bland"`` policy gives back exactly the intended grade.

For the default arguments the cohort matches the paper's Table 1 exactly: 50 participants
(13 men / 37 women), 94 wrists (44 bilateral participants + 6 unilateral), 30 normal / 34 mild /
13 moderate / 17 severe wrists, age 55.9 ± 13.8 years (sample SD), range 20-90 (integer ages,
adjusted deterministically after sampling to hit these summaries).

Deliberate uncovered patterns: when a grade has at least ``UNCOVERED_MIN_COUNT`` wrists, one of
its wrists gets an NCS pattern the paper's prose rule does not name, which the Bland fallback
resolves to the intended grade, so the uncovered-combinations table of stage 01 is not empty:

* mild: DML < 4 ms, SNCV normal, SNAP reduced (Bland 2 -> mild);
* moderate: DML 4-6.5 ms, SNCV reduced, SNAP reduced (Bland 3 -> moderate);
* severe: DML > 6.5 ms, SNCV reduced, SNAP normal (Bland 5 -> severe).

The default cohort (and any cohort with at least 2 mild, 2 moderate and 2 severe wrists)
therefore holds exactly 3 uncovered wrists. Bilateral participants get grade pairs
that are usually equal or one level apart (CTS is often bilateral and asymmetric); the worse
side is more often the dominant hand.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ctslib import GRADES
from ctslib.data.ncs import NCSLimits, grade_wrist
from ctslib.common.seed import rng

COHORT_COLUMNS: tuple[str, ...] = (
    "participant_id", "side", "sex", "age", "dominant_hand", "dml_ms", "sncv_ms", "snap_uv",
)
PAPER_GRADE_COUNTS: tuple[int, int, int, int] = (30, 34, 13, 17)
PAPER_N_PARTICIPANTS = 50
PAPER_MEN_FRACTION = 13 / 50
PAPER_AGE = {"mean": 55.9, "sd": 13.8, "min": 20, "max": 90}
UNCOVERED_MIN_COUNT = 2
"""A grade needs at least this many wrists before one of them gets an uncovered NCS pattern
(2, so that even a smoke-sized cohort exercises the uncovered-pattern path)."""

# Draw ranges (low, high) per grade, chosen clear of the limits (DML 4 / 6.5 ms, SNCV 50 m/s,
# SNAP 15 uV) so that rounding never moves a value across a boundary.
_COVERED_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "normal": {"dml_ms": (2.8, 3.85), "sncv_ms": (52.0, 64.0), "snap_uv": (18.0, 48.0)},
    "mild": {"dml_ms": (3.0, 3.9), "sncv_ms": (36.0, 48.5), "snap_uv": (16.0, 35.0)},
    "moderate": {"dml_ms": (4.1, 6.4), "sncv_ms": (28.0, 47.0), "snap_uv": (16.0, 28.0)},
    "severe": {"dml_ms": (6.6, 9.8), "sncv_ms": (20.0, 40.0), "snap_uv": (3.0, 13.5)},
}
_UNCOVERED_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "mild": {"dml_ms": (3.2, 3.9), "sncv_ms": (51.0, 56.0), "snap_uv": (8.0, 13.5)},
    "moderate": {"dml_ms": (4.2, 6.2), "sncv_ms": (30.0, 45.0), "snap_uv": (6.0, 13.0)},
    "severe": {"dml_ms": (6.7, 8.5), "sncv_ms": (25.0, 40.0), "snap_uv": (16.0, 22.0)},
}
_DECIMALS = {"dml_ms": 2, "sncv_ms": 1, "snap_uv": 1}


def make_cohort(
    seed: int,
    grade_counts: tuple[int, int, int, int] = PAPER_GRADE_COUNTS,
    n_participants: int = PAPER_N_PARTICIPANTS,
) -> pd.DataFrame:
    """The simulated ``cohort.csv`` table (one row per wrist, columns ``COHORT_COLUMNS``).

    Args:
        seed: seed of every random draw; the same seed gives the same table.
        grade_counts: wrists per grade (normal, mild, moderate, severe).
        n_participants: participants; needs ``ceil(n_wrists / 2) <= n_participants <= n_wrists``.
            ``n_wrists - n_participants`` of them are examined on both wrists.
    """
    return _simulate(seed, grade_counts, n_participants).loc[:, list(COHORT_COLUMNS)]


def intended_grades(
    seed: int,
    grade_counts: tuple[int, int, int, int] = PAPER_GRADE_COUNTS,
    n_participants: int = PAPER_N_PARTICIPANTS,
) -> pd.Series:
    """The grade each wrist of ``make_cohort(seed, ...)`` was simulated for (same row order)."""
    return _simulate(seed, grade_counts, n_participants)["intended_grade"]


def _simulate(seed: int, grade_counts: tuple[int, int, int, int], n_participants: int) -> pd.DataFrame:
    counts = tuple(int(c) for c in grade_counts)
    if len(counts) != len(GRADES) or min(counts) < 0:
        raise ValueError(f"grade_counts needs {len(GRADES)} non-negative counts, got {grade_counts!r}")
    n_wrists = sum(counts)
    if n_wrists == 0 or not math.ceil(n_wrists / 2) <= n_participants <= n_wrists:
        raise ValueError(
            f"n_participants={n_participants} impossible for {n_wrists} wrists "
            f"(needs {math.ceil(n_wrists / 2)}..{n_wrists})"
        )
    participants = _participants(seed, n_participants)
    wrists = _assign_wrists(seed, counts, participants)
    ncs = _draw_ncs(seed, wrists["intended_grade"].tolist(), counts)
    table = pd.concat([wrists.reset_index(drop=True), ncs], axis=1)
    _check_grades(table)
    return table


def _participants(seed: int, n: int) -> pd.DataFrame:
    """Ids S001..., sex (paper's men fraction), integer ages hitting the paper's summaries, hand."""
    gen = rng(seed, "participants")
    n_men = round(n * PAPER_MEN_FRACTION)
    sex = np.array(["F"] * n, dtype=object)
    sex[gen.permutation(n)[:n_men]] = "M"
    hand = gen.choice(np.array(["R", "L", "A"], dtype=object), size=n, p=[0.88, 0.09, 0.03])
    return pd.DataFrame({
        "participant_id": [f"S{i + 1:03d}" for i in range(n)],
        "sex": sex,
        "age": _ages(gen, n),
        "dominant_hand": hand,
    })


def _ages(gen: np.random.Generator, n: int) -> np.ndarray:
    """Integer ages with the paper's mean, sample SD (to one decimal), minimum and maximum.

    Sampled from a normal distribution, then nudged one year at a time (deterministically) until
    the summaries round to the targets; for very small cohorts the targets may be unreachable and
    the closest ages found are returned.
    """
    lo, hi, mean, sd = PAPER_AGE["min"], PAPER_AGE["max"], PAPER_AGE["mean"], PAPER_AGE["sd"]
    ages = np.clip(np.rint(gen.normal(mean, sd, size=n)), lo + 1, hi - 1).astype(int)
    if n >= 2:
        order = np.argsort(ages, kind="stable")
        ages[order[0]], ages[order[-1]] = lo, hi
        inner = np.sort(order[1:-1])  # positions free to move
    else:
        inner = np.arange(n)
    if inner.size == 0:
        return ages
    target_sum = round(mean * n)
    for _ in range(10 * n * (hi - lo)):  # fix the mean: move the inner age nearest the mean
        diff = target_sum - int(ages.sum())
        if diff == 0:
            break
        step = 1 if diff > 0 else -1
        movable = inner[(ages[inner] + step > lo) & (ages[inner] + step < hi)]
        if movable.size == 0:
            break
        ages[movable[np.argmin(np.abs(ages[movable] - mean))]] += step
    if inner.size < 2:
        return ages
    for _ in range(10 * n * (hi - lo)):  # fix the SD at constant sum: spread or squeeze a pair
        current = float(np.std(ages, ddof=1))
        if abs(current - sd) < 0.04:
            break
        spread = current < sd
        centre = ages.mean()
        above = inner[ages[inner] >= centre]
        below = inner[ages[inner] < centre]
        if spread:
            above, below = above[ages[above] + 1 < hi], below[ages[below] - 1 > lo]
        else:
            above, below = above[ages[above] - 1 > centre], below[ages[below] + 1 < centre]
        if above.size == 0 or below.size == 0:
            break
        # move the ages nearest the mean: the smallest change of SD per step, so no overshoot
        up = above[np.argmin(np.abs(ages[above] - centre))]
        down = below[np.argmin(np.abs(ages[below] - centre))]
        ages[up] += 1 if spread else -1
        ages[down] += -1 if spread else 1
    return ages


def _assign_wrists(seed: int, counts: tuple[int, ...], participants: pd.DataFrame) -> pd.DataFrame:
    """Give every participant one or two wrists with intended grades and sides.

    Grades are ordered by a noisy severity score and neighbours are paired, so bilateral pairs
    are mostly equal or one level apart; the worse side is the dominant hand 65 % of the time.
    """
    gen = rng(seed, "wrists")
    n = len(participants)
    grades = np.repeat(np.arange(len(GRADES)), counts)
    n_wrists = grades.size
    n_bilateral = n_wrists - n
    gen.shuffle(grades)
    unilateral, paired = grades[: n - n_bilateral], grades[n - n_bilateral:]
    paired = paired[np.argsort(paired + gen.normal(0.0, 0.45, size=paired.size), kind="stable")]
    groups = [[int(g)] for g in unilateral] + [[int(a), int(b)] for a, b in zip(paired[::2], paired[1::2])]
    groups = [groups[i] for i in gen.permutation(len(groups))]
    rows = []
    for person, group in zip(participants.itertuples(index=False), groups):
        if len(group) == 1:
            sides = [str(gen.choice(["L", "R"]))]
        else:
            dominant = person.dominant_hand if person.dominant_hand in ("L", "R") else "R"
            sides = [dominant, "L" if dominant == "R" else "R"]
            group = sorted(group, reverse=bool(gen.random() < 0.65))  # first = dominant side
        for side, grade in zip(sides, group):
            rows.append({**person._asdict(), "side": side, "intended_grade": GRADES[grade]})
    return pd.DataFrame(rows).sort_values(["participant_id", "side"], kind="stable").reset_index(drop=True)


def _draw_ncs(seed: int, intended: list[str], counts: tuple[int, ...]) -> pd.DataFrame:
    """DML, SNCV and SNAP for each wrist, drawn within its grade's range (NaN = not recordable)."""
    gen = rng(seed, "ncs")
    uncovered = {
        grade: int(gen.choice([i for i, g in enumerate(intended) if g == grade]))
        for grade, count in zip(GRADES, counts)
        if grade in _UNCOVERED_RANGES and count >= UNCOVERED_MIN_COUNT
    }
    severe_rows = [i for i, g in enumerate(intended) if g == "severe" and i not in uncovered.values()]
    n_absent_motor = 1 if len(severe_rows) >= 10 else 0
    motor_absent = set(int(i) for i in gen.choice(severe_rows, size=n_absent_motor, replace=False)) if severe_rows else set()
    rows = []
    for i, grade in enumerate(intended):
        ranges = _UNCOVERED_RANGES[grade] if uncovered.get(grade) == i else _COVERED_RANGES[grade]
        values = {k: round(float(gen.uniform(*r)), _DECIMALS[k]) for k, r in ranges.items()}
        if grade == "severe" and uncovered.get(grade) != i:
            if i in motor_absent or gen.random() < 0.4:  # sensory response not recordable
                values["sncv_ms"] = values["snap_uv"] = math.nan
            if i in motor_absent:
                values["dml_ms"] = math.nan
        rows.append(values)
    return pd.DataFrame(rows, columns=["dml_ms", "sncv_ms", "snap_uv"])


def _check_grades(table: pd.DataFrame) -> None:
    """Every simulated wrist must grade back to its intended level (default limits, Bland)."""
    limits = NCSLimits()
    for row in table.itertuples(index=False):
        got = grade_wrist(row.dml_ms, row.sncv_ms, row.snap_uv, limits, "bland").grade
        if got != row.intended_grade:
            raise AssertionError(f"simulated {row.participant_id}_{row.side} grades {got}, intended {row.intended_grade}")
