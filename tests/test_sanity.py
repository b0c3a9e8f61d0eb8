"""Sanity flags computed from predictions: each flag trips on the failure it names and only then."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ctslib.sanity import (
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
