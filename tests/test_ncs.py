"""The NCS rule (ctslib.data.ncs): every boundary, every uncovered combination, absent values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ctslib.data.ncs import (
    CANTERBURY_PATTERNS,
    NCSLimits,
    bland_grade,
    describe_combination,
    dml_band,
    grade_wrist,
    snap_reduced,
    sncv_reduced,
    uncovered_combinations,
)

LIMITS = NCSLimits()
NAN = math.nan
# Representative values for each state of a measurement.
SNCV = {False: 55.0, True: 40.0}   # reduced?
SNAP = {False: 25.0, True: 10.0}   # reduced?
DML = {"normal": 3.5, "prolonged": 5.0, "severe": 7.5}


@pytest.mark.parametrize(
    ("dml", "band"),
    [(3.99, "normal"), (4.0, "prolonged"), (5.0, "prolonged"), (6.5, "prolonged"), (6.51, "severe"), (NAN, "severe"), (None, "severe")],
)
def test_dml_band_boundaries(dml, band):
    assert dml_band(dml, LIMITS) == band


@pytest.mark.parametrize(("sncv", "reduced"), [(50.0, False), (49.99, True), (49.9, True), (65.0, False), (NAN, True)])
def test_sncv_limit_is_within_normal(sncv, reduced):
    assert sncv_reduced(sncv, LIMITS) is reduced


@pytest.mark.parametrize(("snap", "reduced"), [(15.0, False), (14.99, True), (14.9, True), (40.0, False), (NAN, True)])
def test_snap_limit_is_within_normal(snap, reduced):
    assert snap_reduced(snap, LIMITS) is reduced


@pytest.mark.parametrize(
    ("dml", "sncv", "snap", "grade"),
    [
        (3.99, 50.0, 15.0, "normal"),      # all at/inside their limits
        (3.99, 49.99, 15.0, "mild"),       # SNCV just below
        (4.0, 49.99, 15.0, "moderate"),    # DML at the lower edge of the 4-6.5 band
        (6.5, 49.99, 15.0, "moderate"),    # DML at the upper edge of the band
        (6.51, 49.99, 14.99, "severe"),    # just above 6.5, both sensory reduced
    ],
)
def test_covered_patterns_at_boundaries(dml, sncv, snap, grade):
    result = grade_wrist(dml, sncv, snap, LIMITS, "error")  # covered: never needs the policy
    assert result.grade == grade
    assert result.rule == f"canterbury:{grade}"
    assert result.uncovered is False


def test_limits_are_parameters():
    strict = NCSLimits(dml_normal_max_ms=4.2, sncv_min_ms=45.0)
    assert grade_wrist(4.1, 44.0, 20.0, strict, "error").grade == "mild"
    assert grade_wrist(4.1, 44.0, 20.0, LIMITS, "error").grade == "moderate"


def test_exactly_eight_uncovered_combinations():
    uncovered = uncovered_combinations(LIMITS)
    assert len(uncovered) == 8
    assert not set(uncovered) & set(CANTERBURY_PATTERNS)
    assert len(set(uncovered) | set(CANTERBURY_PATTERNS)) == 12


# Each uncovered combination: values, words, Bland grade, level Bland resolves it to.
UNCOVERED_CASES = [
    (("normal", False, True), "DML < 4 ms, SNCV normal, SNAP reduced", 2, "mild"),
    (("normal", True, True), "DML < 4 ms, SNCV reduced, SNAP reduced", 2, "mild"),
    (("prolonged", False, False), "DML 4-6.5 ms, SNCV normal, SNAP normal", 3, "moderate"),
    (("prolonged", False, True), "DML 4-6.5 ms, SNCV normal, SNAP reduced", 3, "moderate"),
    (("prolonged", True, True), "DML 4-6.5 ms, SNCV reduced, SNAP reduced", 3, "moderate"),
    (("severe", False, False), "DML > 6.5 ms, SNCV normal, SNAP normal", 5, "severe"),
    (("severe", False, True), "DML > 6.5 ms, SNCV normal, SNAP reduced", 5, "severe"),
    (("severe", True, False), "DML > 6.5 ms, SNCV reduced, SNAP normal", 5, "severe"),
]


def test_cases_cover_every_uncovered_combination():
    assert sorted(key for key, *_ in UNCOVERED_CASES) == sorted(uncovered_combinations(LIMITS))


@pytest.mark.parametrize(("key", "words", "bland", "level"), UNCOVERED_CASES)
def test_uncovered_combination_under_each_policy(key, words, bland, level):
    band, sncv_red, snap_red = key
    values = (DML[band], SNCV[sncv_red], SNAP[snap_red])

    resolved = grade_wrist(*values, LIMITS, "bland")
    assert resolved.uncovered is True
    assert resolved.combination == words
    assert resolved.bland_grade == bland
    assert resolved.grade == level
    assert resolved.rule == f"uncovered:bland{bland}->{level}"

    excluded = grade_wrist(*values, LIMITS, "exclude")
    assert excluded.uncovered is True and excluded.grade is None
    assert excluded.rule == "uncovered:excluded"
    assert excluded.combination == words

    with pytest.raises(ValueError, match="not covered"):
        grade_wrist(*values, LIMITS, "error")


def test_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="policy"):
        grade_wrist(3.5, 55.0, 25.0, LIMITS, "guess")  # type: ignore[arg-type]


def test_absent_sensory_response_counts_as_reduced():
    result = grade_wrist(7.8, NAN, NAN, LIMITS, "error")
    assert result.grade == "severe" and not result.uncovered
    assert result.combination == "DML > 6.5 ms, SNCV absent, SNAP absent"
    assert result.bland_grade == 5


def test_absent_motor_response_is_severe_band():
    result = grade_wrist(NAN, NAN, NAN, LIMITS, "error")
    assert result.grade == "severe"
    assert result.combination == "DML absent, SNCV absent, SNAP absent"
    assert result.bland_grade == 6


def test_absent_snap_with_prolonged_dml_is_uncovered_bland_4():
    result = grade_wrist(5.0, NAN, NAN, LIMITS, "bland")
    assert result.uncovered and result.combination == "DML 4-6.5 ms, SNCV absent, SNAP absent"
    assert result.bland_grade == 4 and result.grade == "severe"


@pytest.mark.parametrize("nan", [None, float("nan"), np.nan, np.float32("nan"), np.float64("nan")])
def test_every_missing_type_is_absent(nan):
    assert sncv_reduced(nan, LIMITS) and snap_reduced(nan, LIMITS)
    assert "SNCV absent" in describe_combination(3.5, nan, 25.0, LIMITS)


@pytest.mark.parametrize(
    ("values", "grade"),
    [((3.5, 55.0, 25.0), 0), ((3.5, 45.0, 25.0), 2), ((3.5, 55.0, 10.0), 2), ((4.0, 45.0, 25.0), 3),
     ((5.0, 55.0, NAN), 4), ((6.51, 45.0, 10.0), 5), ((NAN, 45.0, 10.0), 6)],
)
def test_bland_grade(values, grade):
    assert bland_grade(*values, LIMITS) == grade
