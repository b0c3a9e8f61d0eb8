"""Nerve conduction study (NCS) grading: the paper's modified Canterbury rule, made total.

The paper's prose rule names four patterns::

    normal    all parameters within limits
    mild      DML < 4 ms,        SNCV reduced, SNAP preserved
    moderate  DML 4 - 6.5 ms,    SNCV reduced, SNAP normal
    severe    DML > 6.5 ms,      SNCV reduced, SNAP reduced

Each wrist falls in one of 3 DML bands x 2 SNCV states x 2 SNAP states = 12 combinations, and
the prose covers 4. The other 8 are *uncovered*: they are never graded silently. Each is flagged
(``uncovered=True`` with a plain-words ``combination``) and resolved by an explicit policy:

* ``"bland"`` (default): Bland's 0-6 neurophysiological grade (Bland 2000, Muscle Nerve 23:1280),
  computed from the same three measurements and mapped to four levels
  (0 -> normal, 1-2 -> mild, 3 -> moderate, 4-6 -> severe);
* ``"exclude"``: the wrist gets no grade (``grade=None``) and is left out of the analysis;
* ``"error"``: grading stops with an error naming the wrist.

Limits are documented parameters (``NCSLimits``). Boundaries: DML 4.0 is moderate (the band is
4-6.5 inclusive), 6.5 is moderate, anything above 6.5 is severe; SNCV and SNAP *at* their lower
limit are within limits ("reduced" means strictly below). A missing SNCV/SNAP (NaN) means the
sensory response was not recordable (absent), which counts as reduced; a missing DML means the
motor response was not recordable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

UncoveredPolicy = Literal["bland", "exclude", "error"]
UNCOVERED_POLICIES: tuple[str, ...] = ("bland", "exclude", "error")


@dataclass(frozen=True)
class NCSLimits:
    """Reference limits of the grading rule.

    Attributes:
        dml_normal_max_ms: DML strictly below this is normal (the paper's "< 4 ms").
        dml_severe_above_ms: DML strictly above this is the severe band (the paper's "> 6.5 ms").
        sncv_min_ms: lower limit of normal sensory conduction velocity, m/s (common lab value 50).
        snap_min_uv: lower limit of normal sensory amplitude, microvolts (antidromic, digit II; 15).
    """

    dml_normal_max_ms: float = 4.0
    dml_severe_above_ms: float = 6.5
    sncv_min_ms: float = 50.0
    snap_min_uv: float = 15.0


@dataclass(frozen=True)
class Grading:
    """The grade of one wrist and how it was reached."""

    grade: str | None
    rule: str
    uncovered: bool
    combination: str
    bland_grade: int


def _missing(value: float | None) -> bool:
    """None or NaN of any real type (Python, NumPy float32/float64) means not recordable."""
    if value is None:
        return True
    try:
        return math.isnan(value)
    except TypeError:
        return False


def dml_band(dml_ms: float | None, limits: NCSLimits) -> str:
    """'normal' (< 4), 'prolonged' (4-6.5) or 'severe' (> 6.5 or not recordable)."""
    if _missing(dml_ms):
        return "severe"
    if dml_ms < limits.dml_normal_max_ms:
        return "normal"
    if dml_ms <= limits.dml_severe_above_ms:
        return "prolonged"
    return "severe"


def sncv_reduced(sncv_ms: float | None, limits: NCSLimits) -> bool:
    """True when SNCV is below its limit or not recordable."""
    return _missing(sncv_ms) or sncv_ms < limits.sncv_min_ms


def snap_reduced(snap_uv: float | None, limits: NCSLimits) -> bool:
    """True when SNAP is below its limit or not recordable."""
    return _missing(snap_uv) or snap_uv < limits.snap_min_uv


def describe_combination(dml_ms: float | None, sncv_ms: float | None, snap_uv: float | None, limits: NCSLimits) -> str:
    """Plain-words pattern, e.g. 'DML 4-6.5 ms, SNCV reduced, SNAP reduced'."""
    band = {
        "normal": f"DML < {limits.dml_normal_max_ms:g} ms",
        "prolonged": f"DML {limits.dml_normal_max_ms:g}-{limits.dml_severe_above_ms:g} ms",
        "severe": f"DML > {limits.dml_severe_above_ms:g} ms" if not _missing(dml_ms) else "DML absent",
    }[dml_band(dml_ms, limits)]

    def state(value: float | None, reduced: bool) -> str:
        return "absent" if _missing(value) else ("reduced" if reduced else "normal")

    return (
        f"{band}, SNCV {state(sncv_ms, sncv_reduced(sncv_ms, limits))}, "
        f"SNAP {state(snap_uv, snap_reduced(snap_uv, limits))}"
    )


# The four patterns the paper's prose names: (DML band, SNCV reduced, SNAP reduced) -> grade.
CANTERBURY_PATTERNS: dict[tuple[str, bool, bool], str] = {
    ("normal", False, False): "normal",
    ("normal", True, False): "mild",
    ("prolonged", True, False): "moderate",
    ("severe", True, True): "severe",
}

BLAND_TO_LEVEL: dict[int, str] = {0: "normal", 1: "mild", 2: "mild", 3: "moderate", 4: "severe", 5: "severe", 6: "severe"}


def bland_grade(dml_ms: float | None, sncv_ms: float | None, snap_uv: float | None, limits: NCSLimits) -> int:
    """Bland's 0-6 grade from DML, SNCV and SNAP alone.

    6 motor response absent; 5 DML > 6.5 ms; 4 sensory response absent; 3 DML prolonged with a
    sensory response present; 2 sensory slowing or low amplitude with normal DML; 0 all normal.
    Grade 1 needs comparative/inching studies that this table does not hold, so it never occurs.
    """
    if _missing(dml_ms):
        return 6
    if dml_ms > limits.dml_severe_above_ms:
        return 5
    if _missing(sncv_ms) or _missing(snap_uv):
        return 4
    if dml_ms >= limits.dml_normal_max_ms:
        return 3
    if sncv_reduced(sncv_ms, limits) or snap_reduced(snap_uv, limits):
        return 2
    return 0


def grade_wrist(
    dml_ms: float | None,
    sncv_ms: float | None,
    snap_uv: float | None,
    limits: NCSLimits = NCSLimits(),
    policy: UncoveredPolicy = "bland",
) -> Grading:
    """Grade one wrist; uncovered combinations are flagged and resolved by ``policy``."""
    if policy not in UNCOVERED_POLICIES:
        raise ValueError(f"unknown uncovered-combination policy {policy!r}; use one of {UNCOVERED_POLICIES}")
    key = (dml_band(dml_ms, limits), sncv_reduced(sncv_ms, limits), snap_reduced(snap_uv, limits))
    combination = describe_combination(dml_ms, sncv_ms, snap_uv, limits)
    bland = bland_grade(dml_ms, sncv_ms, snap_uv, limits)
    if key in CANTERBURY_PATTERNS:
        grade = CANTERBURY_PATTERNS[key]
        return Grading(grade, f"canterbury:{grade}", False, combination, bland)
    if policy == "error":
        raise ValueError(f"NCS pattern not covered by the paper's rule: {combination}")
    if policy == "exclude":
        return Grading(None, "uncovered:excluded", True, combination, bland)
    grade = BLAND_TO_LEVEL[bland]
    return Grading(grade, f"uncovered:bland{bland}->{grade}", True, combination, bland)


def uncovered_combinations(limits: NCSLimits = NCSLimits()) -> list[tuple[str, bool, bool]]:
    """The 8 (DML band, SNCV reduced, SNAP reduced) patterns the paper's prose does not grade."""
    keys = [(b, s, a) for b in ("normal", "prolonged", "severe") for s in (False, True) for a in (False, True)]
    return [k for k in keys if k not in CANTERBURY_PATTERNS]
