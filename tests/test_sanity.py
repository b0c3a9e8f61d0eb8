"""Sanity flags computed from predictions: each flag trips on the failure it names and only then."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ctslib.severity.sanity import (
    failure_messages,
    flag_overview,
    flag_table,
    largest_shared_share,
    majority_rate,
    model_flags,
    never_predicted,
)

PROBS = ["p_normal", "p_mild", "p_moderate", "p_severe"]


def table(y_true, y_pred, probs=None, split="paper", subset="val", seed=0) -> pd.DataFrame:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if probs is None:  # distinct vectors whose argmax is y_pred
        gen = np.random.default_rng(seed)
        probs = gen.uniform(0.01, 0.2, size=(len(y_pred), 4))
        probs[np.arange(len(y_pred)), y_pred] = 0.9
        probs /= probs.sum(axis=1, keepdims=True)
    df = pd.DataFrame(np.asarray(probs), columns=PROBS)
    df.insert(0, "y_pred", y_pred)
    df.insert(0, "y_true", y_true)
    df.insert(0, "subset", subset)
    df.insert(0, "split", split)
    df.insert(0, "participant_id", [f"P{i % 5}" for i in range(len(df))])
    return df


def failed(flags) -> set[str]:
    return {f.flag for f in flags if f.failed}


def test_a_healthy_model_passes_every_flag():
    y = np.tile([0, 1, 2, 3], 10)
    pred = y.copy()
    pred[:6] = (pred[:6] + 1) % 4
    assert failed(model_flags("m", "paper", table(y, pred), train_accuracy=0.95)) == set()


def test_collapsed_model_trips_never_predicted_shared_vector_and_majority():
    y = np.array([0] * 12 + [1] * 16 + [2] * 6 + [3] * 6)
    constant = np.tile([0.25, 0.37, 0.17, 0.21], (len(y), 1))
    flags = model_flags("m", "paper", table(y, np.ones(len(y), int), probs=constant), train_accuracy=0.4)
    assert failed(flags) == {"never_predicted", "identical_probabilities", "not_above_majority"}
    by_name = {f.flag: f for f in flags}
    detail = by_name["never_predicted"].detail
    assert [part.split(" never")[0] for part in detail.split("; ")] == ["normal", "moderate", "severe"]
    assert detail.startswith("normal never predicted (30% of validation frames)")
    assert by_name["identical_probabilities"].value == 1.0
    assert by_name["not_above_majority"].value == pytest.approx(16 / 40) == majority_rate(y)


def test_shared_vector_threshold_is_strictly_above_twenty_percent():
    probs = np.random.default_rng(1).dirichlet(np.ones(4), size=10)
    probs[:2] = [0.1, 0.2, 0.3, 0.4]  # 20 %: allowed
    assert largest_shared_share(probs) == pytest.approx(0.2)
    probs[2] = [0.1, 0.2, 0.3, 0.4]
    y = probs.argmax(axis=1)
    assert "identical_probabilities" in failed(model_flags("m", "s", table(y, y, probs=probs)))


def test_training_far_below_validation_is_flagged_and_missing_training_is_not_checked():
    y = np.tile([0, 1, 2, 3], 5)
    rows = table(y, y)
    assert "train_below_val" in failed(model_flags("m", "s", rows, train_accuracy=0.5))
    assert "train_below_val" not in failed(model_flags("m", "s", rows, train_accuracy=0.9))
    unchecked = [f for f in model_flags("m", "s", rows, None) if f.flag == "train_below_val"][0]
    assert not unchecked.failed and "not checked" in unchecked.detail


def test_flag_table_pools_cv_folds_and_uses_training_rows():
    y = np.tile([0, 1, 2, 3], 5)
    folds = pd.concat([table(y, y, split="cv0"), table(y, y, split="cv1", seed=1),
                       table(y, np.zeros(len(y), int), split="cv0", subset="train"),
                       table(y, np.zeros(len(y), int), split="cv1", subset="train")], ignore_index=True)
    flags = flag_table({"transverse": folds}, {"cv": ["cv0", "cv1"], "paper": ["paper"]})
    assert set(flags["split"]) == {"cv"}  # no paper rows: not judged
    row = flags[flags["flag"] == "train_below_val"].iloc[0]
    assert row["failed"] and row["value"] == pytest.approx(1.0 - 0.25)
    overview = flag_overview(flags)
    assert list(overview["status"]) == ["FAIL"] and "train_below_val" in overview["failed_flags"].iloc[0]
    assert failure_messages(flags)[0].startswith("transverse model, cv split: sanity flags failed")


def test_never_predicted_names_grades_in_order():
    assert never_predicted([3, 3, 1]) == ["normal", "moderate"]


def test_repeated_confident_one_hot_answers_are_not_collapse():
    probs = np.tile([0.0, 0.0, 0.0, 1.0], (10, 1))
    probs[5:] = np.random.default_rng(2).dirichlet(np.ones(4), size=5)
    assert largest_shared_share(probs) == pytest.approx(0.1)


def test_failed_flags_say_why_from_the_training_frames():
    y = np.array([0] * 10 + [1] * 10 + [2] * 5 + [3] * 5)
    val_pred = np.where(y == 2, 1, y)  # moderate never predicted on new participants
    learnt = table(y, y, subset="train")  # ... though every training frame of it was right
    flags = {f.flag: f for f in model_flags("m", "grouped", table(y, val_pred), 1.0, train_rows=learnt)}
    assert "training recall 1.00: learnt on the training wrists but not recognised in new ones" in \
        flags["never_predicted"].detail
    unlearnt = table(y, np.where(y == 2, 0, y), subset="train")
    flags = {f.flag: f for f in model_flags("m", "grouped", table(y, val_pred), 0.8, train_rows=unlearnt)}
    assert "training recall 0.00: not learnt even on the training wrists" in flags["never_predicted"].detail
    assert "17% of training frames" in flags["never_predicted"].detail

    guess = table(y, np.full(len(y), 3))  # accuracy 5/30, below the majority rate 10/30
    memorised = {f.flag: f for f in model_flags("m", "cv", guess, 1.0, train_rows=learnt)}
    assert memorised["not_above_majority"].failed
    assert "does not carry over to new participants" in memorised["not_above_majority"].detail
    lazy = {f.flag: f for f in model_flags("m", "cv", guess, 0.2, train_rows=table(y, np.full(len(y), 3), subset="train"))}
    assert "did not learn the grades even on its training frames" in lazy["not_above_majority"].detail


def statuses(flags) -> dict[str, str]:
    return {f.flag: f.status for f in flags}


def forty_percent(y: np.ndarray) -> np.ndarray:
    """Predictions right on 12 of these 30 frames, every grade still predicted somewhere."""
    pred = y.copy()
    wrong = [*range(0, 6), *range(10, 16), *range(20, 23), *range(25, 28)]
    pred[wrong] = (pred[wrong] + 1) % 4
    return pred


def test_an_interval_that_includes_the_majority_rate_is_borderline_not_pass():
    y = np.array([0] * 10 + [1] * 10 + [2] * 5 + [3] * 5)  # majority rate 1/3
    pred = forty_percent(y)  # accuracy 12/30 = 0.40, just above 0.333; every grade predicted
    rows = table(y, pred)
    weak = {f.flag: f for f in model_flags("m", "grouped", rows, 0.5, accuracy_interval=(0.20, 0.55))}
    assert [f for f, flag in weak.items() if flag.status != "pass"] == ["not_above_majority"]
    assert weak["not_above_majority"].status == "borderline" and not weak["not_above_majority"].failed
    assert "accuracy 0.400 [0.20, 0.55] vs majority-class rate 0.333" in weak["not_above_majority"].detail
    assert "interval includes the majority-class rate" in weak["not_above_majority"].detail
    assert statuses(model_flags("m", "grouped", rows, 0.5, accuracy_interval=(0.35, 0.45)))["not_above_majority"] == "pass"
    assert statuses(model_flags("m", "grouped", rows, 0.5))["not_above_majority"] == "pass"  # no interval: not judged
    below = table(y, np.full(len(y), 3))  # 5/30, below the majority rate: FAIL whatever the interval
    assert statuses(model_flags("m", "grouped", below, 0.2, accuracy_interval=(0.0, 0.5)))["not_above_majority"] == "FAIL"


def test_training_far_above_validation_is_flagged_as_overfitting_borderline():
    y = np.tile([0, 1, 2, 3], 10)
    pred = y.copy()
    pred[:16] = (pred[:16] + 1) % 4  # validation accuracy 0.6
    rows = table(y, pred)
    overfit = {f.flag: f for f in model_flags("m", "cv", rows, train_accuracy=0.98)}["overfitting"]
    assert overfit.status == "borderline" and overfit.value == pytest.approx(0.38)
    assert "overfitting: training exceeds validation by 0.38 > 0.30" in overfit.detail
    assert statuses(model_flags("m", "cv", rows, train_accuracy=0.85))["overfitting"] == "pass"  # gap 0.25
    assert statuses(model_flags("m", "cv", rows, train_accuracy=None))["overfitting"] == "pass"
    overview = flag_overview(flag_table({"transverse": pd.concat(
        [rows.assign(split="cv0"), table(y, y, split="cv0", subset="train")])}, {"cv": ["cv0"]}))
    assert list(overview["status"]) == ["borderline"] and overview["borderline_flags"].iloc[0] == "overfitting"
    assert failure_messages(flag_table({"transverse": rows.assign(split="cv0")}, {"cv": ["cv0"]})) == []


def test_a_grade_absent_from_validation_is_not_in_validation_not_never_predicted():
    y = np.array([1] * 10 + [2] * 10 + [3] * 10)  # no normal wrist in this validation split
    pred = y.copy()
    pred[:3] = 2
    flags = {f.flag: f for f in model_flags("m", "grouped", table(y, pred), 0.7)}
    assert not flags["never_predicted"].failed and flags["never_predicted"].value == 0
    assert flags["never_predicted"].detail == "every grade in validation predicted at least once; normal: not in validation"
    overview = flag_overview(flag_table({"t": table(y, pred)}, {"paper": ["paper"]}))
    assert overview["status"].iloc[0] == "pass" and "normal: not in validation" in overview["why"].iloc[0]
    # a grade that IS in validation and never predicted still fails, and the absent one is still named
    missed = {f.flag: f for f in model_flags("m", "grouped", table(y, np.where(y == 3, 2, y)), 0.7)}["never_predicted"]
    assert missed.failed and missed.detail.startswith("severe never predicted") and "normal: not in validation" in missed.detail


def test_overview_status_is_fail_over_borderline_over_pass():
    y = np.array([0] * 10 + [1] * 10 + [2] * 5 + [3] * 5)
    pred = forty_percent(y)
    both = pd.concat([table(y, pred, split="grouped"), table(y, np.full(len(y), 3), split="paper"),
                      table(y, y, split="cv0")])
    overview = flag_overview(flag_table({"t": both}, {"paper": ["paper"], "grouped": ["grouped"], "cv": ["cv0"]},
                                        accuracy_intervals={("t", "grouped"): (0.2, 0.55), ("t", "cv"): (0.9, 1.0)}))
    assert dict(zip(overview["split"], overview["status"])) == {"paper": "FAIL", "grouped": "borderline", "cv": "pass"}
    assert "borderline" in overview.set_index("split").loc["grouped", "why"]
