"""Simulated cohort (ctslib.synth.cohort): the paper's Table 1, determinism, intended grades."""

from __future__ import annotations

import pandas as pd
import pytest

from ctslib import GRADES
from ctslib.data.cohort import cohort_summary, grade_cohort, read_cohort, table1, table1_vs_paper
from ctslib.data.ncs import NCSLimits, grade_wrist
from ctslib.synth.cohort import COHORT_COLUMNS, intended_grades, make_cohort

SEED = 2026


@pytest.fixture(scope="module")
def default_cohort() -> pd.DataFrame:
    return make_cohort(SEED)


@pytest.fixture(scope="module")
def default_wrists(default_cohort, tmp_path_factory) -> pd.DataFrame:
    path = tmp_path_factory.mktemp("data") / "cohort.csv"
    default_cohort.to_csv(path, index=False)
    return grade_cohort(read_cohort(path))  # through the real reader: the CSV passes every check


def test_columns_and_ids(default_cohort):
    assert list(default_cohort.columns) == list(COHORT_COLUMNS)
    assert default_cohort["participant_id"].str.fullmatch(r"S\d{3}").all()
    assert not default_cohort.duplicated(["participant_id", "side"]).any()


def test_table1_equals_paper_exactly(default_wrists):
    s = cohort_summary(default_wrists)
    assert (s["participants"], s["men"], s["women"], s["wrists"]) == (50, 13, 37, 94)
    assert (s["bilateral"], s["unilateral"]) == (44, 6)
    assert [s[g] for g in GRADES] == [30, 34, 13, 17]
    assert [round(s[f"{g}_pct"], 1) for g in GRADES] == [31.9, 36.2, 13.8, 18.1]
    assert (round(s["age_mean"], 1), round(s["age_sd"], 1), s["age_min"], s["age_max"]) == (55.9, 13.8, 20, 90)
    assert table1_vs_paper(default_wrists)["match"].all()
    values = table1(default_wrists).set_index("characteristic")["value"]
    assert values["Age, years, mean ± SD (range)"] == "55.9 ± 13.8 (20–90)"
    assert values["NCS diagnosis, mild"] == "34 (36.2 %)"


@pytest.mark.parametrize("seed", [0, 1, 7, 123])
def test_paper_age_targets_hold_for_other_seeds(seed):
    people = make_cohort(seed).drop_duplicates("participant_id")
    ages = people["age"]
    assert (round(ages.mean(), 1), round(ages.std(ddof=1), 1), ages.min(), ages.max()) == (55.9, 13.8, 20, 90)
    assert (ages == ages.round()).all()


def test_every_wrist_grades_to_its_intended_level(default_cohort):
    intended = intended_grades(SEED)
    graded = [grade_wrist(r.dml_ms, r.sncv_ms, r.snap_uv, NCSLimits(), "bland").grade for r in default_cohort.itertuples()]
    assert graded == intended.tolist()
    assert intended.value_counts().reindex(list(GRADES)).tolist() == [30, 34, 13, 17]


def test_default_cohort_has_a_few_uncovered_wrists(default_wrists):
    uncovered = default_wrists[default_wrists["uncovered"]]
    assert 2 <= len(uncovered) <= 4
    assert uncovered["rule"].str.startswith("uncovered:bland").all()


def test_bilateral_pairs_are_plausible(default_wrists):
    pairs = default_wrists.groupby("participant_id")["grade_index"].agg(["size", "min", "max"])
    bilateral = pairs[pairs["size"] == 2]
    gap = bilateral["max"] - bilateral["min"]
    assert (gap <= 2).all()          # never normal on one side and severe on the other
    assert (gap == 0).any() and (gap == 1).any()


def test_same_seed_gives_byte_identical_csv(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    make_cohort(SEED).to_csv(a, index=False)
    make_cohort(SEED).to_csv(b, index=False)
    assert a.read_bytes() == b.read_bytes()


def test_different_seed_gives_different_values():
    a, b = make_cohort(SEED), make_cohort(SEED + 1)
    assert not a[["age", "dml_ms", "sncv_ms", "snap_uv"]].equals(b[["age", "dml_ms", "sncv_ms", "snap_uv"]])


@pytest.mark.parametrize(("counts", "n"), [((2, 2, 2, 2), 4), ((2, 2, 2, 2), 8), ((2, 2, 2, 2), 5), ((1, 0, 0, 0), 1), ((3, 1, 0, 2), 4)])
def test_small_cohorts(counts, n):
    cohort = make_cohort(3, counts, n)
    assert len(cohort) == sum(counts) and cohort["participant_id"].nunique() == n
    graded = [grade_wrist(r.dml_ms, r.sncv_ms, r.snap_uv).grade for r in cohort.itertuples()]
    assert [graded.count(g) for g in GRADES] == list(counts)
    assert cohort.groupby("participant_id")["side"].nunique().eq(cohort.groupby("participant_id").size()).all()


@pytest.mark.parametrize(("counts", "n"), [((2, 2, 2, 2), 3), ((2, 2, 2, 2), 9), ((0, 0, 0, 0), 1), ((1, -1, 0, 0), 1)])
def test_impossible_arguments_are_refused(counts, n):
    with pytest.raises(ValueError):
        make_cohort(1, counts, n)


def test_small_cohort_still_exercises_uncovered_patterns():
    cohort = make_cohort(5, (2, 2, 2, 2), 4)
    flags = [grade_wrist(r.dml_ms, r.sncv_ms, r.snap_uv).uncovered for r in cohort.itertuples()]
    assert sum(flags) == 3  # one mild, one moderate, one severe
