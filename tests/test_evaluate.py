"""Tests of ctslib.evaluate: metrics vs scikit-learn and by hand, participant bootstrap, wrist
aggregation, CSA baseline, grouped-split check, leakage and the paper tables."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    cohen_kappa_score,
    f1_score,
    precision_score,
    recall_score,
)

from ctslib import GRADES
from ctslib import evaluate as ev
from ctslib.common.errors import InputError, StageError
from ctslib.data.acquisition import read_acquisition

# A 10-frame confusion small enough to count by hand (rows = truth, columns = prediction):
#            pred 0  1  2  3
#   true 0        2  1  0  0
#   true 1        0  2  0  0
#   true 2        0  0  1  1
#   true 3        1  0  0  2
Y_TRUE = np.array([0, 0, 0, 1, 1, 2, 2, 3, 3, 3])
Y_PRED = np.array([0, 0, 1, 1, 1, 2, 3, 3, 3, 0])


def predictions_table(y_true, y_pred, participants, split="grouped", wrists=None) -> pd.DataFrame:
    """A predictions.csv-like table with one-hot probabilities of the predicted grade."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    wrists = wrists if wrists is not None else [f"{p}_L" for p in participants]
    probs = np.eye(4)[y_pred] * 0.7 + 0.075
    table = pd.DataFrame({
        "frame_id": [f"{w}_transverse_{i:04d}" for i, w in enumerate(wrists)],
        "wrist_id": wrists, "participant_id": list(participants), "split": split, "subset": "val",
        "y_true": y_true, "y_pred": y_pred,
    })
    for j, g in enumerate(GRADES):
        table[f"p_{g}"] = probs[:, j]
    return table


# ----------------------------------------------------------------------------- metrics
def test_metrics_match_hand_counts_and_sklearn():
    m = ev.classification_metrics(Y_TRUE, Y_PRED)
    # by hand from the confusion above
    assert m["accuracy"] == pytest.approx(7 / 10)
    assert [m[f"precision_{g}"] for g in GRADES] == pytest.approx([2 / 3, 2 / 3, 1.0, 2 / 3])
    assert [m[f"recall_{g}"] for g in GRADES] == pytest.approx([2 / 3, 1.0, 1 / 2, 2 / 3])
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 1 + 1 / 2 + 2 / 3) / 4)
    assert m["mean_precision"] == pytest.approx((2 / 3 + 2 / 3 + 1 + 2 / 3) / 4)
    # quadratic-weighted kappa from its definition: 1 - sum(W*O) / sum(W*E)
    observed = np.array([[2, 1, 0, 0], [0, 2, 0, 0], [0, 0, 1, 1], [1, 0, 0, 2]], float)
    expected = np.outer(observed.sum(1), observed.sum(0)) / observed.sum()
    weights = (np.arange(4)[:, None] - np.arange(4)[None, :]) ** 2
    assert m["kappa_quadratic"] == pytest.approx(1 - (weights * observed).sum() / (weights * expected).sum())
    # and scikit-learn called directly
    assert m["accuracy"] == accuracy_score(Y_TRUE, Y_PRED)
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(Y_TRUE, Y_PRED))
    assert m["macro_f1"] == pytest.approx(f1_score(Y_TRUE, Y_PRED, average="macro"))
    assert m["kappa_quadratic"] == pytest.approx(cohen_kappa_score(Y_TRUE, Y_PRED, weights="quadratic"))
    assert [m[f"f1_{g}"] for g in GRADES] == pytest.approx(list(f1_score(Y_TRUE, Y_PRED, average=None)))
    np.testing.assert_array_equal(ev.confusion(Y_TRUE, Y_PRED), observed.astype(int))


def test_empty_class_is_named_and_undefined_not_zero():
    y_true = np.array([0, 0, 1, 1, 3, 3])  # no "moderate"
    y_pred = np.array([0, 1, 1, 1, 3, 2])
    with pytest.warns(ev.EmptyClassWarning, match="'moderate'"):
        assert ev.check_classes(y_true, "toy") == ["moderate"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no obscure scikit-learn warning leaks out
        m = ev.classification_metrics(y_true, y_pred)
    assert np.isnan(m["recall_moderate"])
    assert m["precision_moderate"] == 0.0  # predicted once, never right
    assert m["balanced_accuracy"] == pytest.approx(recall_score(y_true, y_pred, labels=[0, 1, 3], average="macro"))
    table = predictions_table(y_true, y_pred, ["A", "A", "B", "B", "C", "C"])
    with pytest.warns(ev.EmptyClassWarning):
        result = ev.evaluate({"transverse": table}, ["grouped"], level="frame", n_boot=5, seed=1)
    assert set(result["empty_classes"]) == {"moderate"}


def test_never_predicted_grade_has_undefined_precision_left_out_of_mean():
    y_true, y_pred = np.array([0, 1, 2, 3]), np.array([0, 1, 1, 3])
    m = ev.classification_metrics(y_true, y_pred)
    assert np.isnan(m["precision_moderate"])
    assert m["mean_precision"] == pytest.approx(np.mean([1.0, 0.5, 1.0]))
    assert m["mean_precision"] == pytest.approx(
        precision_score(y_true, y_pred, labels=[0, 1, 2, 3], average="macro", zero_division=np.nan))


# ----------------------------------------------------------------------------- bootstrap
def test_participant_bootstrap_never_splits_a_participant():
    participants = ["P1"] * 5 + ["P2"] * 1 + ["P3"] * 3 + ["P4"] * 7 + ["P5"] * 2
    groups = np.array(participants)
    resamples = list(ev.participant_bootstrap_indices(participants, 60, seed=3, stream="t"))
    assert len(resamples) == 60
    drawn_counts = []
    for idx in resamples:
        counts = np.bincount(idx, minlength=len(participants))
        for p in set(participants):
            # every frame of a participant appears the same number of times: all or none (or k copies of all)
            assert len(set(counts[groups == p])) == 1
        drawn_counts.append(sum(counts[groups == p][0] for p in set(participants)))
    assert all(n == 5 for n in drawn_counts)  # as many participant draws as participants
    again = list(ev.participant_bootstrap_indices(participants, 60, seed=3, stream="t"))
    assert all(np.array_equal(a, b) for a, b in zip(resamples, again))
    other = list(ev.participant_bootstrap_indices(participants, 60, seed=4, stream="t"))
    assert not all(np.array_equal(a, b) for a, b in zip(resamples, other))


def test_bootstrap_interval_brackets_estimate_and_is_reproducible():
    rng = np.random.default_rng(0)
    participants = np.repeat([f"P{i}" for i in range(12)], 6)
    y_true = rng.integers(0, 4, len(participants))
    y_pred = np.where(rng.random(len(participants)) < 0.7, y_true, rng.integers(0, 4, len(participants)))
    table = predictions_table(y_true, y_pred, participants)
    a = ev.metrics_with_ci(table, n_boot=200, seed=5, stream="x").set_index("metric")
    b = ev.metrics_with_ci(table, n_boot=200, seed=5, stream="x").set_index("metric")
    pd.testing.assert_frame_equal(a, b)
    acc = a.loc["accuracy"]
    assert acc["ci_low"] < acc["estimate"] < acc["ci_high"]
    assert acc["estimate"] == accuracy_score(y_true, y_pred)
    none = ev.metrics_with_ci(table, n_boot=0, seed=5, stream="x")
    assert none["ci_low"].isna().all()


# ----------------------------------------------------------------------------- wrist level
def test_wrist_aggregation_by_mean_probability():
    table = pd.DataFrame({
        "frame_id": ["a1", "a2", "a3", "b1"], "wrist_id": ["A_L", "A_L", "A_L", "B_R"],
        "participant_id": ["A", "A", "A", "B"], "split": "grouped", "subset": "val",
        "y_true": [1, 1, 1, 2], "y_pred": [0, 1, 0, 2],
        "p_normal": [0.55, 0.0, 0.5, 0.1], "p_mild": [0.45, 1.0, 0.4, 0.1],
        "p_moderate": [0.0, 0.0, 0.1, 0.7], "p_severe": [0.0, 0.0, 0.0, 0.1],
    })
    wrists = ev.wrist_probabilities(table).set_index("wrist_id")
    # wrist A: two of three frames vote "normal", but the mean probability favours "mild"
    assert wrists.loc["A_L", ["p_normal", "p_mild", "p_moderate", "p_severe"]].tolist() == pytest.approx(
        [0.35, 0.6166667, 1 / 30, 0.0], abs=1e-6)
    assert wrists.loc["A_L", "y_pred"] == 1 and wrists.loc["A_L", "n_frames"] == 3
    assert wrists.loc["B_R", "y_pred"] == 2 and wrists.loc["B_R", "y_true"] == 2
    assert wrists.loc["B_R", "participant_id"] == "B"

    other = wrists.reset_index().copy()
    other[["p_normal", "p_mild", "p_moderate", "p_severe"]] = [[0.95, 0.05, 0, 0], [0, 0, 0.1, 0.9]]
    fused = ev.fuse_planes(wrists.reset_index(), other).set_index("wrist_id")
    assert fused.loc["A_L", "p_normal"] == pytest.approx((0.35 + 0.95) / 2)
    assert fused.loc["A_L", "y_pred"] == 0  # (0.65, 0.33, 0.02, 0) after fusing
    assert fused.loc["B_R", ["p_moderate", "p_severe"]].tolist() == pytest.approx([0.4, 0.5])
    assert fused.loc["B_R", "y_pred"] == 3 and fused.loc["B_R", "n_frames"] == 2
    clash = other.assign(y_true=[1, 3])
    with pytest.raises(StageError, match="B_R"):
        ev.fuse_planes(wrists.reset_index(), clash)


def test_wrist_with_conflicting_grades_is_an_input_error():
    table = predictions_table([1, 2], [1, 2], ["A", "A"], wrists=["A_L", "A_L"])
    with pytest.raises(InputError, match="A_L"):
        ev.wrist_probabilities(table, source="predictions.csv")


# ----------------------------------------------------------------------------- grouped split
def split_table(assignments: dict[str, dict[str, str]]) -> pd.DataFrame:
    """split.csv from {split: {participant: subset}} with two frames per participant."""
    rows = []
    for split, sides in assignments.items():
        for participant, subset in sides.items():
            for k in range(2):
                rows.append({"frame_id": f"{participant}_L_transverse_{k:04d}", "wrist_id": f"{participant}_L",
                             "participant_id": participant, "grade_index": 0, "split": split, "subset": subset})
    return pd.DataFrame(rows)


def test_assert_grouped_passes_grouped_and_raises_on_shared_participant():
    good = split_table({"grouped": {"A": "train", "B": "train", "C": "val"},
                        "cv0": {"A": "val", "B": "train", "C": "train"}})
    ev.assert_grouped(good)
    bad = good.copy()
    bad.loc[(bad["split"] == "cv0") & (bad["participant_id"] == "B") &
            (bad["frame_id"].str.endswith("0001")), "subset"] = "val"
    with pytest.raises(StageError, match=r"cv0.*B"):
        ev.assert_grouped(bad)
    # the paper's frame split is allowed (and expected) to share participants
    frame_split = split_table({"paper": {"A": "train"}})
    frame_split.loc[0, "subset"] = "val"
    ev.assert_grouped(pd.concat([good, frame_split]))
    with pytest.raises(StageError, match="paper"):
        ev.assert_grouped(frame_split, ["paper"])
    assert ev.leakage_exposure(frame_split)["val_frames_from_wrists_seen_in_training"] == 1.0


# ----------------------------------------------------------------------------- CSA baseline
def test_csa_thresholds_separate_separable_grades():
    rng = np.random.default_rng(1)
    ranges = [(5, 7), (9, 11), (13, 15), (17, 19)]
    csa = np.concatenate([rng.uniform(lo, hi, 8) for lo, hi in ranges])
    grade = np.repeat([0, 1, 2, 3], 8)
    for method in ("balanced_accuracy", "midpoints"):
        thresholds = ev.choose_csa_thresholds(csa, grade, method=method)
        assert np.all(np.diff(thresholds) > 0)
        for t, (upper_of_lower, lower_of_upper) in zip(thresholds, [(7, 9), (11, 13), (15, 17)]):
            assert upper_of_lower <= t <= lower_of_upper, (method, thresholds)
        np.testing.assert_array_equal(ev.apply_csa_thresholds(csa, thresholds), grade)
    assert ev.apply_csa_thresholds([4.0, 8.0, 100.0], [7.5, 11.5, 15.5]).tolist() == [0, 1, 3]


def test_csa_threshold_search_matches_sklearn_triple_by_triple():
    """The vectorised search scores every triple as sklearn's balanced_accuracy_score does, bit for
    bit, and its choice (from the grade-change cuts only) reaches the best score over every midpoint,
    also with tied CSAs and a grade absent from training."""
    for seed in range(4):
        rng = np.random.default_rng(seed)
        grade = rng.integers(0, 4 if seed % 2 else 3, 24)  # odd seeds: all grades; even: no severe
        csa = np.round(8 + 3 * grade + rng.normal(0, 2.5, grade.size), 0 if seed < 2 else 2)  # seeds 0, 1: ties
        cuts = np.unique(np.concatenate([[csa.min() - 1], (np.unique(csa)[:-1] + np.unique(csa)[1:]) / 2,
                                         [csa.max() + 1]]))
        triples = np.array(list(itertools.combinations_with_replacement(cuts, 3)))
        scores = ev.balanced_accuracy_of_thresholds(csa, grade, triples)
        with warnings.catch_warnings(), sklearn.config_context(skip_parameter_validation=True):
            warnings.simplefilter("ignore", UserWarning)  # a triple may predict a grade absent from `grade`
            expected = np.array([balanced_accuracy_score(grade, ev.apply_csa_thresholds(csa, t)) for t in triples])
        np.testing.assert_array_equal(scores, expected)
        chosen = ev.choose_csa_thresholds(csa, grade, max_candidates=len(cuts))  # grade-change cuts only
        assert balanced_accuracy_score(grade, ev.apply_csa_thresholds(csa, chosen)) == expected.max()


def test_csa_midpoints_needs_every_grade():
    with pytest.raises(StageError, match="severe"):
        ev.choose_csa_thresholds([5, 6, 10, 14], [0, 0, 1, 2], method="midpoints")
    thresholds = ev.choose_csa_thresholds([5, 6, 10, 14], [0, 0, 1, 2], method="balanced_accuracy")
    assert ev.apply_csa_thresholds([5, 6, 10, 14], thresholds).tolist() == [0, 0, 1, 2]


def test_csa_baseline_fits_on_training_participants_only():
    people = [f"P{i:02d}" for i in range(16)]
    grades = [i % 4 for i in range(16)]
    crops = pd.DataFrame([
        {"frame_id": f"{p}_L_transverse_{k:04d}", "wrist_id": f"{p}_L", "participant_id": p, "plane": "transverse",
         "grade_index": g, "csa_mm2": 6 + 4 * g + 0.1 * k, "nerve_found": True}
        for p, g in zip(people, grades) for k in range(3)
    ] + [{"frame_id": "P00_L_longitudinal_0000", "wrist_id": "P00_L", "participant_id": "P00",
          "plane": "longitudinal", "grade_index": 0, "csa_mm2": 999.0, "nerve_found": True},
         {"frame_id": "P00_L_transverse_0009", "wrist_id": "P00_L", "participant_id": "P00",
          "plane": "transverse", "grade_index": 0, "csa_mm2": 500.0, "nerve_found": False}])
    wrists = ev.wrist_csa(crops).set_index("wrist_id")
    assert wrists.loc["P00_L", "csa_mm2"] == pytest.approx(6.1)  # median of 6.0, 6.1, 6.2; others ignored
    assert wrists.loc["P00_L", "n_frames"] == 3
    split = split_table({"grouped": {p: ("val" if i >= 12 else "train") for i, p in enumerate(people)}})
    val, thresholds, train = ev.csa_baseline_predictions(wrists.reset_index(), split)
    assert set(train["participant_id"]) == set(people[:12]) and set(val["participant_id"]) == set(people[12:])
    assert val["y_pred"].tolist() == val["y_true"].tolist()
    # changing validation CSAs must not move the thresholds (they are fitted on training wrists only)
    moved = wrists.reset_index()
    moved.loc[moved["participant_id"].isin(people[12:]), "csa_mm2"] += 50
    _, thresholds_moved, _ = ev.csa_baseline_predictions(moved, split)
    np.testing.assert_allclose(thresholds, thresholds_moved)
    leaky = split.copy()
    leaky.loc[0, "subset"] = "val"
    with pytest.raises(StageError, match="not grouped"):
        ev.csa_baseline_predictions(wrists.reset_index(), leaky)


# ----------------------------------------------------------------------------- tables
def test_table2_and_paper_vs_reproduction():
    participants = [f"P{i}" for i in range(len(Y_TRUE))]
    table = pd.concat([predictions_table(Y_TRUE, Y_PRED, participants, split="paper"),
                       predictions_table(Y_TRUE, Y_TRUE, participants, split="grouped")])
    t2 = ev.table2({"transverse": table}).set_index("Metric")
    assert t2.loc["Overall accuracy", "Transverse"] == "0.700"  # text for readers: 3 decimals
    assert t2.loc["Precision: moderate", "Transverse"] == "1.000"
    pvr = ev.paper_vs_reproduction({"transverse": table}, "synthetic (simulated)")
    acc = pvr[pvr["metric"] == "Overall accuracy"].iloc[0]
    assert acc["paper"] == "0.920" and acc["ours_paper_split"] == "0.700"
    assert acc["difference"] == f"{0.7 - 0.92:+.3f}" and acc["ours_grouped_split"] == "1.000"
    assert "ours_cv_split" not in pvr.columns  # no CV folds in these predictions
    assert (pvr["data_source"] == "synthetic (simulated)").all()
    severe = pvr[pvr["metric"] == "Precision: severe"].iloc[0]
    assert severe["paper"] == "0.970"


def test_leakage_gap_and_its_interval_match_the_metrics_table():
    rng = np.random.default_rng(2)
    participants = np.repeat([f"P{i}" for i in range(10)], 8)
    y = rng.integers(0, 4, len(participants))
    wrong = (y + 1) % 4
    grouped_pred = np.where(np.arange(len(y)) % 2 == 0, y, wrong)  # 50 % right
    table = pd.concat([predictions_table(y, y, participants, split="paper"),
                       predictions_table(y, grouped_pred, participants, split="grouped")])
    split = split_table({"paper": {p: "val" for p in set(participants)}})
    leak = ev.leakage_table({"transverse": table}, {"transverse": split}, n_boot=100, seed=9).iloc[0]
    assert leak["gap"] == pytest.approx(0.5)
    assert leak["gap_ci_low"] <= 0.5 <= leak["gap_ci_high"]
    frame = ev.evaluate({"transverse": table}, ["paper", "grouped"], level="frame", n_boot=100, seed=9)
    grouped_acc = frame[(frame["split"] == "grouped") & (frame["metric"] == "accuracy")].iloc[0]
    assert leak["grouped_ci_low"] == pytest.approx(grouped_acc["ci_low"])
    assert leak["grouped_ci_high"] == pytest.approx(grouped_acc["ci_high"])
    sentence = ev.leakage_sentence(pd.DataFrame([leak]))
    assert "+0.50" in sentence and "Transverse" in sentence and "overstates" in sentence
    point_only = ev.leakage_table({"transverse": table}, {"transverse": split}, n_boot=0, seed=9).iloc[0]
    assert point_only["gap"] == pytest.approx(0.5) and np.isnan(point_only["gap_ci_low"])


def test_pooled_cv_uses_every_fold_once():
    a = predictions_table([0, 1], [0, 1], ["A", "B"], split="cv0")
    b = predictions_table([2, 3], [2, 2], ["C", "D"], split="cv1")
    b["frame_id"] = ["c", "d"]
    pooled = ev.select_split(pd.concat([a, b]), "cv")
    assert len(pooled) == 4
    assert ev.available_splits(pd.concat([a, b])) == ["cv"]
    with pytest.raises(StageError, match="more than one fold"):
        ev.select_split(pd.concat([a, a.assign(split="cv1")]), "cv")


def test_read_predictions_names_bad_row_and_column(tmp_path):
    table = predictions_table([0, 1, 2], [0, 1, 2], ["A", "B", "C"])
    table.loc[1, "y_pred"] = 7
    path = tmp_path / "predictions.csv"
    table.to_csv(path, index=False)
    with pytest.raises(InputError, match=r"row 2.*y_pred"):
        ev.read_predictions(path)
    table.loc[1, "y_pred"] = 1
    table.drop(columns="p_severe").to_csv(path, index=False)
    with pytest.raises(InputError, match="p_severe"):
        ev.read_predictions(path)


def test_labels_are_checked_against_the_ncs_grades(tmp_path):
    table = predictions_table([0, 2], [0, 2], ["A", "B"])
    wrists = pd.DataFrame({"wrist_id": ["A_L", "B_L"], "grade_index": [0, 2]})
    ev.check_grades_against_wrists(table, wrists, "predictions.csv")
    with pytest.raises(InputError, match=r"row 2.*y_true"):
        ev.check_grades_against_wrists(table, wrists.assign(grade_index=[0, 1]), "predictions.csv")
    with pytest.raises(InputError, match="B_L"):
        ev.check_grades_against_wrists(table, wrists.assign(grade_index=[0, None]), "predictions.csv")
    (tmp_path / "acquisition.json").write_text('{"source": "real", "probe": "GE Vscan Air L3-12", "pixel_spacing_mm": [0.1, 0.1]}')
    assert ev.describe_source(read_acquisition(tmp_path)) == "real ultrasound (GE Vscan Air L3-12)"
    (tmp_path / "acquisition.json").write_text('{"source": "simulated", "pixel_spacing_mm": [0.1, 0.1]}')
    with pytest.raises(InputError, match="source"):
        read_acquisition(tmp_path)


def test_interpretation_depends_on_source():
    synthetic = ev.interpretation("synthetic")
    assert "SYNTHETIC" in synthetic and "validate the pipeline" in synthetic
    real = ev.interpretation("real", n_participants=12)
    assert "synthetic" not in real.lower() and "grouped split" in real and "12" in real
    frame = ev.evaluate({"transverse": predictions_table(Y_TRUE, Y_PRED, list("ABCDEFGHIJ"))}, ["grouped"],
                        level="frame", n_boot=0, seed=0)
    summary = ev.summary_table(frame, source="synthetic")
    assert summary.iloc[-1]["value"] == synthetic


def test_figure4_annotates_counts_and_row_shares():
    import matplotlib

    matplotlib.use("Agg")
    from ctslib.evaluate.plots import confusion_matrices_figure

    fig = confusion_matrices_figure({"Transverse": ev.confusion(Y_TRUE, Y_PRED), "Longitudinal": np.zeros((4, 4), int)})
    left, right = fig.axes
    texts = [t.get_text() for t in left.texts]
    assert texts[:2] == ["2\n67%", "1\n33%"] and len(texts) == 16  # row "normal": 2 of 3, 1 of 3
    assert [t.get_text() for t in right.texts] == ["0"] * 16  # empty rows: counts only, no 0/0 share
    assert left.get_title() == "Transverse (n = 10)"


# ----------------------------------------------------------------------------- issue 15 additions
def test_four_grade_mean_precision_counts_a_never_predicted_grade_as_zero():
    y_true, y_pred = np.array([0, 1, 2, 3]), np.array([0, 1, 1, 3])
    m = ev.classification_metrics(y_true, y_pred)
    assert m["mean_precision_4"] == pytest.approx((1.0 + 0.5 + 0.0 + 1.0) / 4)
    table = predictions_table(y_true, y_pred, ["A", "B", "C", "D"], split="paper")
    t2 = ev.table2({"transverse": table}, split="paper")
    assert t2.loc[t2["Metric"] == "Precision: moderate", "Transverse"].item() == "never predicted"
    mean_label = t2["Metric"][t2["Metric"].str.startswith("Mean class precision")].item()
    assert "moderate never predicted, counted 0" in mean_label
    assert t2.loc[t2["Metric"] == "Overall accuracy", "Transverse"].item() == "0.750"



def test_table2_says_not_in_validation_for_a_grade_with_no_validation_example():
    y_true, y_pred = np.array([1, 1, 2, 3]), np.array([1, 1, 1, 3])  # no normal wrist; moderate missed
    table = predictions_table(y_true, y_pred, ["A", "B", "C", "D"], split="paper")
    with pytest.warns(ev.EmptyClassWarning):
        t2 = ev.table2({"transverse": table}, split="paper")
    shown = dict(zip(t2["Metric"], t2["Transverse"]))
    assert shown["Precision: normal"] == "not in validation" and shown["Precision: moderate"] == "never predicted"
    pvr = ev.paper_vs_reproduction({"transverse": table}, "synthetic", grouped_split=None, more_splits=())
    assert pvr.set_index("metric").loc["Precision: normal", "ours_paper_split"] == "not in validation"


def test_zero_width_bootstrap_at_one_becomes_a_clopper_pearson_interval_on_participants():
    participants = [f"P{i}" for i in range(12) for _ in range(3)]
    y = np.tile([0, 1, 2, 3], 9)
    result = ev.metrics_with_ci(predictions_table(y, y, participants), n_boot=50, seed=0, stream="s")
    acc = result[result["metric"] == "accuracy"].iloc[0]
    assert acc["estimate"] == 1.0 and acc["ci_high"] == 1.0
    assert acc["ci_low"] == pytest.approx(0.025 ** (1 / 12))  # exact: all 12 participants right
    assert acc["interval"].startswith("clopper-pearson")
    mixed = ev.metrics_with_ci(predictions_table(Y_TRUE, Y_PRED, list("ABCDEFGHIJ")), n_boot=50, seed=0, stream="s")
    assert set(mixed.loc[mixed["metric"] == "accuracy", "interval"]) == {"bootstrap"}


def test_clopper_pearson_matches_beta_quantiles():
    from scipy.stats import beta

    low, high = ev.clopper_pearson(3, 10, 0.95)
    assert low == pytest.approx(beta.ppf(0.025, 3, 8)) and high == pytest.approx(beta.ppf(0.975, 4, 7))
    assert ev.clopper_pearson(0, 5) == pytest.approx((0.0, 1 - 0.025 ** (1 / 5)))


def test_seed_variation_uses_only_replicates_and_reports_sd():
    base = predictions_table(Y_TRUE, Y_PRED, list("ABCDEFGHIJ"), split="cv0")
    better = predictions_table(Y_TRUE, Y_TRUE, list("ABCDEFGHIJ"), split="cv0~s1")
    table = pd.concat([base, better], ignore_index=True)
    assert ev.available_splits(table) == ["cv"]  # replicates are not splits of their own
    assert len(ev.select_split(table, "cv")) == len(base)
    variation = ev.seed_variation({"transverse": table}, ["cv"])
    row = variation.iloc[0]
    assert row["seeds"] == 2 and row["accuracy_mean"] == pytest.approx(0.85)
    assert row["accuracy_sd"] == pytest.approx(np.std([0.7, 1.0], ddof=1))
    assert "training variance" in ev.seed_sentence(variation, pd.DataFrame(columns=["model", "split", "metric"]))


def test_cv_fold_summary_is_mean_and_sd_over_folds():
    folds = pd.concat([predictions_table(Y_TRUE, Y_PRED, list("ABCDEFGHIJ"), split="cv0"),
                       predictions_table(Y_TRUE, Y_TRUE, list("KLMNOPQRST"), split="cv1")], ignore_index=True)
    summary = ev.cv_fold_summary(ev.cv_fold_metrics({"transverse": folds}))
    assert summary.iloc[0]["folds"] == 2
    assert summary.iloc[0]["accuracy_mean"] == pytest.approx(0.85)
    assert summary.iloc[0]["accuracy_sd"] == pytest.approx(np.std([0.7, 1.0], ddof=1))


def test_csa_baseline_by_cv_predicts_every_wrist_once_from_its_own_fold():
    wrists = pd.DataFrame({"wrist_id": [f"P{i}_L" for i in range(8)], "participant_id": [f"P{i}" for i in range(8)],
                           "grade_index": [0, 1, 2, 3] * 2, "csa_mm2": [8.0, 11.0, 15.0, 20.0, 9.0, 12.0, 16.0, 21.0],
                           "n_frames": 3})
    rows = []
    for k in range(2):
        for i in range(8):
            rows.append({"frame_id": f"f{i}", "wrist_id": f"P{i}_L", "participant_id": f"P{i}",
                         "grade_index": i % 4, "split": f"cv{k}", "subset": "val" if i // 4 == k else "train"})
    predictions, cuts = ev.csa_baseline_cv(wrists, pd.DataFrame(rows))
    assert sorted(predictions["wrist_id"]) == sorted(wrists["wrist_id"]) and list(cuts["fold"]) == ["cv0", "cv1"]
    assert (predictions["y_pred"] == predictions["y_true"]).all()


def test_verdict_sentence_is_built_from_the_numbers():
    rows = []
    for model, paper_acc, cv_acc in (("transverse", 0.95, 0.40), ("longitudinal", 0.90, 0.55)):
        for split, est in (("paper", paper_acc), ("cv", cv_acc)):
            rows.append({"model": model, "split": split, "metric": "accuracy", "estimate": est,
                         "ci_low": est - 0.1, "ci_high": est + 0.05})
    frame = pd.DataFrame(rows)
    wrist = frame[frame["split"] == "cv"].assign(level="wrist")
    csa = pd.DataFrame([{"model": "CSA thresholds (transverse)", "split": "cv", "metric": "accuracy",
                         "estimate": 0.62, "ci_low": 0.52, "ci_high": 0.72}])
    text = ev.verdict_sentence(frame, source="synthetic", wrist_metrics=wrist, csa_metrics=csa)
    assert "transverse CNN scores 0.950" in text and "0.400 [0.300, 0.450] by grouped cross-validation" in text
    assert "The CSA-threshold baseline grades 0.620 [0.520, 0.720] of the wrists correctly" in text and "synthetic" in text
    # without a paired table no comparison is claimed: overlapping separate intervals decide nothing
    assert "not clearly different" not in text and "lower than" not in text and "falls below" not in text
    table = ev.verdict_table(frame, wrist_metrics=wrist, csa_metrics=csa)
    assert list(table["model"]) == ["transverse CNN", "longitudinal CNN", "CSA thresholds (transverse) (baseline)"]
    assert table.iloc[0]["paper: accuracy (frame split)"] == "0.920"


def test_verdict_sentence_names_failing_sanity_flags_first():
    frame = pd.DataFrame([{"model": "transverse", "split": s, "metric": "accuracy", "estimate": 0.4, "ci_low": 0.3,
                           "ci_high": 0.5} for s in ("paper", "grouped")])
    flags = pd.DataFrame([{"model": "transverse", "split": "paper", "status": "FAIL"},
                          {"model": "transverse", "split": "grouped", "status": "pass"}])
    text = ev.verdict_sentence(frame, source="real", flags=flags)
    assert text.startswith("Caution: 1 of 2 model/split results fail a sanity flag (transverse on paper)")
    assert not ev.verdict_sentence(frame, source="real", flags=flags.assign(status="pass")).startswith("Caution")


def test_figures_carry_the_synthetic_subtitle_reference_lines_and_a_colour_scale():
    import matplotlib

    matplotlib.use("Agg")
    from ctslib.severity.gradcam import SaliencyExample
    from ctslib.evaluate.plots import confusion_matrices_figure, gradcam_figure, leakage_figure

    fig = confusion_matrices_figure({"T": ev.confusion(Y_TRUE, Y_PRED)}, suptitle="Figure 4", subtitle="synthetic data")
    assert fig._suptitle.get_text() == "Figure 4\nsynthetic data"
    frame = pd.DataFrame([{"model": "transverse", "split": s, "metric": "accuracy", "estimate": 0.6, "ci_low": 0.5,
                           "ci_high": 0.7} for s in ("paper", "grouped")])
    leakage = pd.DataFrame([{"model": "transverse", "gap": 0.1, "gap_ci_low": 0.0, "gap_ci_high": 0.2}])
    fig = leakage_figure(frame, leakage, majority={("transverse", "paper"): 0.4, ("transverse", "grouped"): 0.45},
                         subtitle="synthetic data")
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert "chance (1/4)" in labels and "majority-class rate" in labels
    heights = {round(y, 3) for line in fig.axes[0].lines for y in line.get_ydata()}
    assert {0.25, 0.4, 0.45} <= heights
    cam = np.zeros((8, 8))
    cam[2:4, 2:4] = 1.0
    example = SaliencyExample("transverse", "f1", np.full((8, 8), 0.5), cam, 1, 1, 0.8)
    fig = gradcam_figure([example], subtitle="synthetic data")
    colorbars = [ax for ax in fig.axes if ax.get_ylabel().startswith("Grad-CAM")]
    assert len(colorbars) == 1 and colorbars[0].get_ylim() == (0.0, 1.0)


@pytest.mark.parametrize("case", ["balanced", "grade_absent", "never_predicted", "one_participant_class"])
def test_vectorised_bootstrap_equals_scikit_learn_on_every_resample(case):
    """The confusion-matrix bootstrap gives every metric of every resample as scikit-learn does."""
    gen = np.random.default_rng(11)
    n = 240
    participants = [f"P{i:02d}" for i in gen.integers(0, 20, n)]
    y_true = gen.integers(0, 4, n)
    y_pred = np.where(gen.random(n) < 0.6, y_true, gen.integers(0, 4, n))
    if case == "grade_absent":
        y_true = np.where(y_true == 2, 1, y_true)
    if case == "never_predicted":
        y_pred = np.where(y_pred == 3, 0, y_pred)
    if case == "one_participant_class":  # only P00 has severe wrists: many resamples lack the grade
        y_true = np.where((y_true == 3) & (np.array(participants) != "P00"), 2, y_true)
    table = pd.DataFrame({"participant_id": participants, "y_true": y_true, "y_pred": y_pred})

    fast = ev.bootstrap_replicates(table, 60, seed=5, stream="s")
    slow = ev.bootstrap_replicates(table, 60, seed=5, stream="s",
                                   metric_fn=lambda t, p: ev.classification_metrics(t, p))  # not the fast path
    assert list(fast.columns) == list(slow.columns)
    np.testing.assert_allclose(fast.to_numpy(), slow.to_numpy(), rtol=1e-12, atol=1e-12, equal_nan=True)
    point = ev.metrics_from_confusion(ev.confusion(y_true, y_pred))
    expected = ev.classification_metrics(y_true, y_pred)
    assert set(point) == set(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(point[name][0], value, rtol=1e-12, equal_nan=True, err_msg=name)
