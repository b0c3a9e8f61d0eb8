"""Stage 01 library (ctslib.data.cohort): input checks, pseudonyms, grading table, Table 1."""

from __future__ import annotations

import math
import statistics

import pandas as pd
import pytest

from ctslib.data.cohort import (
    COHORT_COLUMNS,
    WRISTS_COLUMNS,
    cohort_summary,
    grade_cohort,
    pseudonym_map,
    read_cohort,
    rule_table,
    table1,
    table1_vs_paper,
    uncovered_table,
)
from ctslib.common.errors import InputError, StageError
from ctslib.data.ncs import NCSLimits
from ctslib.common.paths import DataLayout

HEADER = ",".join(COHORT_COLUMNS)
# A hand-made cohort: 3 participants (2 women, 1 man), 5 wrists, one uncovered pattern, one absent SNAP.
ROWS = [
    "HOSP-0042,L,F,60,R,3.50,55.0,30.0",   # normal
    "HOSP-0042,R,F,60,R,5.10,42.0,20.0",   # moderate
    "HOSP-0007,R,M,40,L,3.60,45.0,22.0",   # mild
    "HOSP-0007,L,M,40,L,7.90,,",           # severe (sensory absent)
    "HOSP-0100,R,F,80,A,5.00,56.0,25.0",   # uncovered: DML 4-6.5, SNCV normal, SNAP normal -> Bland 3
]


def write_cohort(tmp_path, rows=ROWS, header=HEADER):
    path = tmp_path / "cohort.csv"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def replace_cell(rows, row, column, value):
    out = [r.split(",") for r in rows]
    out[row - 1][COHORT_COLUMNS.index(column)] = value
    return [",".join(r) for r in out]


def test_reads_a_good_cohort(tmp_path):
    cohort = read_cohort(write_cohort(tmp_path))
    assert list(cohort.columns) == list(COHORT_COLUMNS)
    assert len(cohort) == 5
    assert math.isnan(cohort.loc[3, "snap_uv"]) and math.isnan(cohort.loc[3, "sncv_ms"])
    assert cohort.loc[0, "dml_ms"] == pytest.approx(3.5)


@pytest.mark.parametrize(
    ("row", "column", "value", "reason"),
    [
        (2, "dml_ms", "80", "implausible"),
        (3, "dml_ms", "abc", "not a number"),
        (4, "sncv_ms", "-3", "negative"),
        (1, "snap_uv", "500", "implausible"),
        (5, "sncv_ms", "450", "implausible"),
        (2, "age", "", "blank"),
        (3, "age", "250", "implausible"),
        (1, "side", "X", "unknown value"),
        (4, "sex", "Q", "unknown value"),
        (5, "dominant_hand", "both", "unknown value"),
        (5, "participant_id", "", "blank"),
    ],
)
def test_bad_cell_names_file_row_and_column(tmp_path, row, column, value, reason):
    path = write_cohort(tmp_path, replace_cell(ROWS, row, column, value))
    with pytest.raises(InputError, match=reason) as info:
        read_cohort(path)
    err = info.value
    assert (err.row, err.column) == (row, column)
    assert f"row {row}" in str(err) and f"column '{column}'" in str(err) and "cohort.csv" in str(err)


def test_missing_column_is_named(tmp_path):
    header = HEADER.replace(",snap_uv", "")
    rows = [r.rsplit(",", 1)[0] for r in ROWS]
    with pytest.raises(InputError, match="missing column") as info:
        read_cohort(write_cohort(tmp_path, rows, header))
    assert info.value.column == "snap_uv" and "column 'snap_uv'" in str(info.value)


def test_duplicate_wrist_names_second_row(tmp_path):
    rows = [*ROWS, "HOSP-0042,r,F,60,R,3.5,55,30"]  # lower-case side is normalised, so it duplicates row 2
    with pytest.raises(InputError, match="listed twice") as info:
        read_cohort(write_cohort(tmp_path, rows))
    assert (info.value.row, info.value.column) == (6, "side")
    assert "also row 2" in str(info.value)


@pytest.mark.parametrize(("column", "value"), [("sex", "F"), ("age", "41"), ("dominant_hand", "R")])
def test_inconsistent_participant_rows(tmp_path, column, value):
    with pytest.raises(InputError, match="another row") as info:
        read_cohort(write_cohort(tmp_path, replace_cell(ROWS, 4, column, value)))
    assert (info.value.row, info.value.column) == (4, column)


def test_header_only_file_is_refused(tmp_path):
    with pytest.raises(InputError, match="no wrists"):
        read_cohort(write_cohort(tmp_path, rows=[]))


def test_pseudonyms_hide_source_ids(tmp_path):
    cohort = read_cohort(write_cohort(tmp_path))
    ids = pseudonym_map(cohort["participant_id"])
    assert list(ids["participant_id"]) == ["P001", "P002", "P003"]
    assert list(ids["source_id"]) == ["HOSP-0007", "HOSP-0042", "HOSP-0100"]  # sorted source order
    wrists = grade_cohort(cohort)
    text = wrists.drop(columns=["video_transverse", "video_longitudinal"]).to_csv(index=False)
    for source in ids["source_id"]:
        assert source not in text
        assert all(source not in p and source.split("-")[1] not in p for p in ids["participant_id"])
    assert pseudonym_map(reversed(list(cohort["participant_id"]))).equals(ids)  # order-independent


def test_grade_cohort_table(tmp_path):
    data = tmp_path / "data"
    (data / "videos").mkdir(parents=True)
    (data / "videos" / "HOSP-0042_L_transverse.mp4").write_bytes(b"")
    (data / "videos" / "HOSP-0042_L_longitudinal.dcm").write_bytes(b"")
    wrists = grade_cohort(read_cohort(write_cohort(data)), layout=DataLayout(data))
    assert list(wrists.columns) == list(WRISTS_COLUMNS)
    by_id = wrists.set_index("wrist_id")
    # HOSP-0007 -> P001, HOSP-0042 -> P002, HOSP-0100 -> P003
    assert by_id.loc["P002_L", ["grade", "video_transverse", "video_longitudinal"]].tolist() == [
        "normal", "HOSP-0042_L_transverse.mp4", "HOSP-0042_L_longitudinal.dcm"]
    assert by_id.loc["P002_R", "video_transverse"] == ""
    assert by_id["grade"].to_dict() == {
        "P001_L": "severe", "P001_R": "mild", "P002_L": "normal", "P002_R": "moderate", "P003_R": "moderate"}
    assert by_id.loc["P003_R", "uncovered"] and by_id.loc["P003_R", "bland_grade"] == 3
    assert by_id["grade_index"].tolist() == [3, 1, 0, 2, 2]


def test_exclude_policy_keeps_row_without_grade(tmp_path):
    cohort = read_cohort(write_cohort(tmp_path))
    wrists = grade_cohort(cohort, NCSLimits(), "exclude")
    row = wrists.set_index("wrist_id").loc["P003_R"]
    assert pd.isna(row["grade"]) and pd.isna(row["grade_index"]) and row["rule"] == "uncovered:excluded"
    table = uncovered_table(wrists)
    assert table.to_dict("records") == [{
        "pattern": "DML 4-6.5 ms, SNCV normal, SNAP normal", "wrists": 1, "bland_grade": 3,
        "resolved_as": "excluded (no grade)", "wrist_ids": "P003_R"}]
    assert "not graded" in table1(wrists)["characteristic"].iloc[-1]


def test_uncovered_table_under_bland_and_empty(tmp_path):
    cohort = read_cohort(write_cohort(tmp_path))
    table = uncovered_table(grade_cohort(cohort))
    assert table["resolved_as"].tolist() == ["moderate (Bland grade 3)"]
    covered_only = uncovered_table(grade_cohort(cohort.iloc[:4]))
    assert covered_only.empty and "pattern" in covered_only.columns


def test_error_policy_names_wrist_and_row(tmp_path):
    cohort = read_cohort(write_cohort(tmp_path))
    with pytest.raises(StageError, match=r"P003_R \(cohort.csv row 5\)"):
        grade_cohort(cohort, NCSLimits(), "error")


def test_table1_numbers_on_hand_made_cohort(tmp_path):
    wrists = grade_cohort(read_cohort(write_cohort(tmp_path)))
    s = cohort_summary(wrists)
    ages = [60, 40, 80]  # one age per participant, not per wrist
    assert (s["participants"], s["men"], s["women"], s["wrists"]) == (3, 1, 2, 5)
    assert (s["bilateral"], s["unilateral"]) == (2, 1)
    assert s["age_mean"] == pytest.approx(statistics.mean(ages))
    assert s["age_sd"] == pytest.approx(statistics.stdev(ages))
    assert (s["age_min"], s["age_max"]) == (40, 80)
    assert (s["right_handed"], s["left_handed"], s["ambidextrous"]) == (1, 1, 1)
    assert [s[g] for g in ("normal", "mild", "moderate", "severe")] == [1, 1, 2, 1]
    assert s["moderate_pct"] == pytest.approx(40.0)

    values = table1(wrists).set_index("characteristic")["value"]
    assert values["Participants, n"] == "3"
    assert values["Age, years, mean ± SD (range)"] == "60.0 ± 20.0 (40–80)"
    assert values["Sex, men"] == "1 (33.3 %)"
    assert values["NCS diagnosis, moderate"] == "2 (40.0 %)"
    assert values["Wrists, n"].startswith("5 ")


def test_table1_vs_paper_flags_mismatches(tmp_path):
    wrists = grade_cohort(read_cohort(write_cohort(tmp_path)))
    comparison = table1_vs_paper(wrists).set_index("quantity")
    assert comparison.loc["participants", ["paper", "ours", "match"]].tolist() == [50.0, 3.0, False]
    mine = {"participants": 3, "moderate_pct": 40.0, "age_sd": 20.0}
    assert table1_vs_paper(wrists, mine)["match"].all()


def test_rule_table_lists_the_twelve_patterns():
    table = rule_table(NCSLimits())
    assert len(table) == 12 and table["pattern"].is_unique
    assert (table["paper_rule"] == "not covered").sum() == 8
    covered = table[table["paper_rule"] != "not covered"]
    assert sorted(covered["paper_rule"]) == sorted(["normal", "mild", "moderate", "severe"])
    assert (covered["paper_rule"] == covered["grade_with_bland_policy"]).all()
    shifted = rule_table(NCSLimits(dml_normal_max_ms=3.5, dml_severe_above_ms=7.0))  # limits are honoured
    assert shifted["pattern"].str.contains("DML < 3.5 ms").sum() == 4
    assert shifted["pattern"].str.contains("DML 3.5-7 ms").sum() == 4
