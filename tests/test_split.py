"""Splits: the paper's stratified frame split, the participant-grouped split, grouped CV folds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ctslib import GRADES
from ctslib.common.errors import StageError
from ctslib.severity.split import (
    check_split,
    grouped_folds,
    grouped_split,
    make_splits,
    paper_split,
    participants_on_both_sides,
    split_summary,
)


def toy_frames(seed: int = 0, participants: int = 24, drop_grade: int | None = None) -> pd.DataFrame:
    """Frames of participants with one or two wrists, grades mixed within a person, uneven counts."""
    gen = np.random.default_rng(seed)
    rows = []
    for p in range(participants):
        pid = f"P{p + 1:03d}"
        for side in ("L", "R")[: 1 + int(gen.random() < 0.6)]:
            grade = int(p % 4) if side == "L" else int(gen.integers(0, 4))
            if grade == drop_grade:
                grade = (grade + 1) % 4
            for k in range(int(gen.integers(5, 25))):
                rows.append({"frame_id": f"{pid}_{side}_transverse_{k:04d}", "wrist_id": f"{pid}_{side}",
                             "participant_id": pid, "grade_index": grade})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_grouped_split_never_puts_a_participant_on_both_sides(seed):
    frames = toy_frames(seed)
    table = grouped_split(frames, seed=seed)
    train = set(table.loc[table["subset"] == "train", "participant_id"])
    val = set(table.loc[table["subset"] == "val", "participant_id"])
    assert train and val and not (train & val)
    assert set(table["frame_id"]) == set(frames["frame_id"]) and len(table) == len(frames)
    assert 0.12 < (table["subset"] == "val").mean() < 0.4  # about a quarter of the frames
    assert set(table.loc[table["subset"] == "train", "grade_index"]) == set(range(4))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_paper_split_is_stratified_and_leaks_participants(seed):
    frames = toy_frames(seed)
    table = paper_split(frames, seed=seed)
    assert (table["subset"] == "val").mean() == pytest.approx(0.25, abs=0.01)
    for grade in range(4):
        in_grade = table[table["grade_index"] == grade]
        # stratified: each grade's validation share within one frame of 25 %
        assert abs((in_grade["subset"] == "val").sum() - 0.25 * len(in_grade)) <= 1.0
    assert participants_on_both_sides(table, "paper") > 0  # the leakage the grouped split removes


def test_same_seed_same_split_other_seed_other_split():
    frames = toy_frames(5)
    a = make_splits(frames, seed=11, cv_folds=3)
    b = make_splits(frames, seed=11, cv_folds=3)
    c = make_splits(frames, seed=12, cv_folds=3)
    pd.testing.assert_frame_equal(a, b)
    assert not a["subset"].equals(c["subset"])
    assert list(a.columns) == ["frame_id", "wrist_id", "participant_id", "grade_index", "split", "subset"]
    assert list(dict.fromkeys(a["split"])) == ["paper", "grouped", "cv0", "cv1", "cv2"]


def test_cv_folds_validate_every_frame_once_without_leaks():
    frames = toy_frames(7)
    table = grouped_folds(frames, 4, seed=3)
    val = table[table["subset"] == "val"]
    assert val["frame_id"].value_counts().eq(1).all() and set(val["frame_id"]) == set(frames["frame_id"])
    for split in ("cv0", "cv1", "cv2", "cv3"):
        assert participants_on_both_sides(table, split) == 0


@pytest.mark.parametrize("maker", [paper_split, grouped_split, lambda f, seed: grouped_folds(f, 3, seed=seed)])
def test_empty_grade_is_refused_by_name(maker):
    frames = toy_frames(0, drop_grade=2)
    assert 2 not in set(frames["grade_index"])
    with pytest.raises(StageError, match=GRADES[2]):
        maker(frames, seed=0)


def test_check_split_refuses_leaking_grouped_table_and_training_set_without_a_grade():
    frames = toy_frames(1)
    table = grouped_split(frames, seed=1)
    leaked = table.copy()
    pid = leaked.loc[leaked["subset"] == "val", "participant_id"].iloc[0]
    first = leaked.index[(leaked["participant_id"] == pid)][0]
    leaked.loc[first, "subset"] = "train"
    with pytest.raises(StageError, match="both sides"):
        check_split(leaked)
    no_severe = table.copy()
    no_severe.loc[no_severe["grade_index"] == 3, "subset"] = "val"
    with pytest.raises(StageError, match="severe"):
        check_split(no_severe)


def test_grouped_split_refuses_too_few_participants_instead_of_leaking():
    wrists = [("P001", "L", 0), ("P001", "R", 1), ("P002", "L", 2), ("P003", "L", 3)]
    frames = pd.DataFrame([
        {"frame_id": f"{p}_{s}_transverse_{k:04d}", "wrist_id": f"{p}_{s}", "participant_id": p, "grade_index": g}
        for p, s, g in wrists for k in range(8)
    ])
    with pytest.raises(StageError, match="participants"):
        grouped_split(frames, seed=0)
    assert len(paper_split(frames, seed=0)) == len(frames)  # the frame split still works (and leaks)


def test_split_summary_counts_frames_and_grades():
    frames = toy_frames(3)
    summary = split_summary(make_splits(frames, seed=0))
    paper = summary[summary["split"] == "paper"]
    assert paper["frames"].sum() == len(frames)
    assert paper[list(GRADES)].to_numpy().sum() == len(frames)


def test_grouped_splits_drawn_on_the_cohort_agree_across_planes() -> None:
    """Both planes validate the same participants, so wrist-level fusion covers every wrist."""
    import numpy as np
    import pandas as pd

    from ctslib.severity.split import make_splits

    rng = np.random.default_rng(3)
    rows = []
    for p in range(16):
        grade = p % 4
        for plane in ("transverse", "longitudinal"):
            for f in range(int(rng.integers(3, 9))):
                rows.append({"frame_id": f"P{p}_L_{plane}_{f}", "wrist_id": f"P{p}_L", "participant_id": f"P{p}",
                             "grade_index": grade, "plane": plane})
    cohort = pd.DataFrame(rows)
    tables = {plane: make_splits(cohort[cohort.plane == plane], seed=1, cv_folds=2, cohort_frames=cohort)
              for plane in ("transverse", "longitudinal")}
    for split in ("grouped", "cv0", "cv1"):
        val = [set(t.loc[(t.split == split) & (t.subset == "val"), "participant_id"]) for t in tables.values()]
        assert val[0] == val[1] and val[0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cv_folds_are_stratified_by_grade(seed):
    frames = toy_frames(seed, participants=40)
    folds = grouped_folds(frames, 5, seed=seed)
    overall = frames["grade_index"].value_counts(normalize=True).sort_index()
    covered = set()
    for _, rows in folds[folds["subset"] == "val"].groupby("split"):
        mix = rows["grade_index"].value_counts(normalize=True).reindex(overall.index, fill_value=0)
        assert set(rows["grade_index"]) == set(range(len(GRADES)))  # every fold validates every grade
        assert 0.5 * (mix - overall).abs().sum() < 0.25  # and roughly in the cohort's proportions
        covered |= set(rows["participant_id"])
    assert covered == set(frames["participant_id"])  # every participant predicted once
