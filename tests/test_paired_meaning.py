"""Paired comparisons (CNN vs baseline, plane vs plane) and the "What this means" box built from numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ctslib.evaluate.intervals import (
    difference_word,
    metrics_with_ci,
    paired_difference,
    paired_rows,
    participant_bootstrap_indices,
)
from ctslib.evaluate.meaning import (
    accuracy_words,
    clinical_confusion,
    confusion_words,
    in_ten,
    meaning_box,
    meaning_record,
)
from ctslib.evaluate.paired import comparison_pairs, paired_phrase, paired_table
from ctslib.evaluate.prose import summary_table, verdict_sentence
from ctslib.evaluate.readers import simulator_csa


def wrists(correct: list[bool], *, ids: list[str] | None = None, people: list[str] | None = None) -> pd.DataFrame:
    """A wrist table: grade 1 everywhere, predicted 1 where ``correct`` else 2."""
    n = len(correct)
    ids = ids or [f"W{i:03d}" for i in range(n)]
    return pd.DataFrame({"wrist_id": ids, "participant_id": people or [f"P{i:03d}" for i in range(n)],
                         "y_true": 1, "y_pred": [1 if c else 2 for c in correct]})


def separate_interval(table: pd.DataFrame, seed: int = 7) -> tuple[float, float]:
    row = metrics_with_ci(table, n_boot=1000, seed=seed, stream="separate").set_index("metric").loc["accuracy"]
    return row["ci_low"], row["ci_high"]


def test_paired_difference_is_clear_where_separate_intervals_overlap():
    # 40 participants: B right on 20, A right on the same 20 and 8 more. Separately 0.70 vs 0.50 overlap;
    # paired, every resample keeps A >= B on each wrist, so the difference stays above zero.
    b_right = [i < 20 for i in range(40)]
    a_right = [i < 28 for i in range(40)]
    a, b = wrists(a_right), wrists(b_right)
    (a_low, a_high), (b_low, b_high) = separate_interval(a), separate_interval(b)
    assert a_low < b_high  # the old "intervals overlap -> not clearly different" rule would say no difference
    result = paired_difference(a, b, n_boot=1000, seed=3, stream="t")
    assert result["difference"] == pytest.approx(0.2)
    assert 0 < result["ci_low"] <= 0.2 <= result["ci_high"]
    assert difference_word(result["ci_low"], result["ci_high"]) == "higher than"


def test_paired_difference_uses_only_wrists_both_grade_so_non_overlap_can_vanish():
    # A grades 60 wrists, B only 20 of them; on those 20 the two are right on exactly the same wrists.
    common = [i < 8 for i in range(20)]
    a = wrists(common + [True] * 40)
    b = wrists(common)
    (a_low, _), (_, b_high) = separate_interval(a), separate_interval(b)
    assert a_low > b_high  # separate intervals do not overlap (0.80 vs 0.40) ...
    result = paired_difference(a, b, n_boot=500, seed=3, stream="t")
    assert (result["n"], result["n_participants"]) == (20, 20)  # ... but only 20 wrists are graded by both
    assert result["difference"] == 0 and result["ci_low"] <= 0 <= result["ci_high"]
    assert difference_word(result["ci_low"], result["ci_high"]) == "not clearly different from"


def test_paired_bootstrap_resamples_participants_and_is_seeded():
    gen = np.random.default_rng(0)
    people = [f"P{i // 2:02d}" for i in range(40)]  # two wrists per participant
    a, b = wrists(list(gen.random(40) < 0.7), people=people), wrists(list(gen.random(40) < 0.5), people=people)
    first = paired_difference(a, b, n_boot=300, seed=11, stream="x")
    assert first == paired_difference(a, b, n_boot=300, seed=11, stream="x")
    other = paired_difference(a, b, n_boot=300, seed=12, stream="x")
    assert (other["ci_low"], other["ci_high"]) != (first["ci_low"], first["ci_high"])
    assert first["n_participants"] == 20 and first["n"] == 40
    # the same resamples as participant_bootstrap_indices: recompute the first replicate by hand
    rows = paired_rows(a, b)
    idx = next(participant_bootstrap_indices(rows["participant_id"], 1, 11, "paired/x"))
    manual = rows["correct_a"].to_numpy()[idx].mean() - rows["correct_b"].to_numpy()[idx].mean()
    single = paired_difference(a, b, n_boot=1, seed=11, stream="x")
    assert single["ci_low"] == single["ci_high"] == pytest.approx(manual)


def test_paired_rows_refuse_arms_that_disagree_on_a_wrist():
    a, b = wrists([True, False]), wrists([True, False])
    b.loc[1, "y_true"] = 3
    with pytest.raises(ValueError, match="W001 has a different y_true"):
        paired_rows(a, b)


def test_paired_table_reads_each_pair_and_names_n():
    a = wrists([i < 28 for i in range(40)])
    b = wrists([i < 20 for i in range(40)])
    c = wrists([i < 20 for i in range(30)])
    table = paired_table({"transverse CNN": a, "longitudinal CNN": c, "CSA": b},
                            comparison_pairs(["transverse CNN", "longitudinal CNN"], ["CSA"]),
                            split="cv", n_boot=500, seed=1)
    assert list(zip(table["first"], table["second"])) == [
        ("transverse CNN", "CSA"), ("longitudinal CNN", "CSA"), ("transverse CNN", "longitudinal CNN")]
    assert list(table["n_wrists"]) == [40, 30, 30]
    assert table.iloc[0]["reading"] == "transverse CNN higher than CSA"
    assert "on 40 wrists of 40 participants" in paired_phrase(table.iloc[0])
    assert paired_phrase(table.iloc[0]).startswith("transverse CNN minus CSA: +0.200 [+")


def paired_row(first, second, diff, low, high, n=84, people=42, split="cv"):
    return {"split": split, "first": first, "second": second, "n_wrists": n, "n_participants": people,
            "accuracy_first": np.nan, "accuracy_second": np.nan, "difference": diff, "ci_low": low, "ci_high": high,
            "reading": ""}


def test_verdict_and_summary_read_comparisons_from_the_paired_table_on_one_split():
    frame = pd.DataFrame([{"model": "transverse", "split": s, "metric": "accuracy", "estimate": e, "ci_low": e - 0.1,
                           "ci_high": e + 0.1, "n_participants": 40} for s, e in (("paper", 0.9), ("cv", 0.58))])
    csa = pd.DataFrame([{"model": "CSA thresholds (transverse)", "split": s, "metric": "accuracy", "estimate": e,
                         "ci_low": e - 0.1, "ci_high": e + 0.1, "n": 84} for s, e in (("grouped", 0.60), ("cv", 0.71))])
    paired = pd.DataFrame([paired_row("transverse CNN", "CSA thresholds (transverse)", -0.13, -0.24, -0.01),
                           paired_row("transverse CNN", "longitudinal CNN", 0.03, -0.08, 0.12, n=92, people=46)])
    text = verdict_sentence(frame, source="synthetic", csa_metrics=csa, paired=paired)
    assert "The CSA-threshold baseline grades 0.710 [0.610, 0.810] of the wrists correctly by grouped cross-validation" in text
    assert ("Against the CSA baseline on the wrists both grade by grouped cross-validation (accuracy difference, "
            "paired participant bootstrap): the transverse CNN -0.130 [-0.240, -0.010] on 84 wrists of 42 participants, "
            "lower than the baseline.") in text
    assert ("Model against model on the wrists both grade (paired): transverse CNN minus longitudinal CNN +0.030 "
            "[-0.080, +0.120], 92 wrists, not clearly different.") in text
    flipped = verdict_sentence(frame, source="synthetic", csa_metrics=csa,
                                  paired=paired.assign(difference=[0.13, 0.03], ci_low=[0.01, -0.08], ci_high=[0.24, 0.12]))
    assert "the transverse CNN +0.130 [+0.010, +0.240] on 84 wrists of 42 participants, higher than the baseline" in flipped
    assert "0.600" not in text  # the grouped-split baseline is not quoted beside CV numbers

    summary = summary_table(frame, source="synthetic", csa_metrics=csa, paired=paired)
    items = dict(zip(summary["item"], summary["value"]))
    assert items["CSA thresholds (transverse): accuracy, cv split (wrists)"] == "0.710 [0.610, 0.810]"
    assert "CSA thresholds (transverse): accuracy, grouped split (wrists)" not in items
    assert items["transverse CNN minus CSA thresholds (transverse), cv split (paired, wrists)"] == \
        "-0.130 [-0.240, -0.010]"


def test_meaning_accuracy_and_confusion_words_follow_the_numbers():
    assert in_ten(0.58) == "about 6 in 10" and in_ten(0.71) == "about 7 in 10" and in_ten(0.25) == "about 3 in 10"
    text = accuracy_words({"transverse CNN": (0.58, 94), "CSA cut-off": (0.71, 84)}, "grouped CV")
    assert text == ("On participants whose wrists no model or cut-off had seen (grouped CV), the transverse CNN graded "
                    "about 6 in 10 wrists correctly (55 of 94 wrists, 0.580) and the CSA cut-off about 7 in 10 (60 of 84 wrists, 0.710).")
    assert "about 4 in 10" in accuracy_words({"transverse CNN": (0.38, 94)}, "grouped CV")

    # 25 severe frames: 9 called mild (36 %, across the line), 12 right, 4 moderate; mild: 2 of 20 called moderate
    y_true = [3] * 25 + [1] * 20
    y_pred = [1] * 9 + [3] * 12 + [2] * 4 + [1] * 18 + [2] * 2
    found = clinical_confusion(y_true, y_pred)
    assert found == ("severe", "mild", pytest.approx(0.36), 9, 25)
    assert confusion_words("transverse CNN", found).startswith("transverse CNN: 36% of severe frames (9 of 25) were "
                                                                 "called mild (under-grading")
    y_pred_over = [3] * 25 + [1] * 10 + [3] * 10  # half the mild frames called severe
    over = clinical_confusion(y_true, y_pred_over)
    assert over[:2] == ("mild", "severe") and "over-grading" in confusion_words("m", over)
    assert clinical_confusion([3, 2, 1], [2, 3, 0]) is None  # no frame crosses the mild | moderate line


def test_meaning_record_changes_with_the_numbers_and_the_box_adds_the_manifest_deviations():
    def build(acc, csa_means, half_width, seeds):
        return meaning_record(
            source="synthetic", split_text="grouped CV",
            accuracies={"transverse CNN": (acc, 94), "CSA thresholds (transverse)": (0.71, 84)},
            confusions={"transverse CNN": ("severe", "mild", 0.36, 9, 25)}, csa_accuracy=0.71,
            csa_means=csa_means, csa_sds=(1.3, 2.0, 2.6, 3.4), half_width=half_width, seeds=seeds, n_participants=50)

    base = build(0.58, (9, 12, 15, 19), 0.11, 1)
    assert "about 6 in 10" in base["accuracy"] and "36% of severe frames" in base["confusions"][0]
    assert "means 9 / 12 / 15 / 19 mm² (SD 1.3 / 2 / 2.6 / 3.4) for normal / mild / moderate / severe" in base["csa"]
    assert "simulator decides how informative CSA is" in base["csa"] and "about 7 in 10" in base["csa"]
    assert "±0.11" in base["real_data"] and "other centres" in base["real_data"]
    assert base["limitations"][0].startswith("one training seed") and "50 participants" in base["limitations"][1]
    changed = build(0.81, (9, 10, 11, 12), 0.07, 3)
    assert "about 8 in 10" in changed["accuracy"] and "means 9 / 10 / 11 / 12 mm²" in changed["csa"]
    assert "±0.07" in changed["real_data"] and not any("seed" in item for item in changed["limitations"])
    real = meaning_record(source="real", split_text="grouped CV", accuracies={}, confusions={}, csa_accuracy=None)
    assert "segmentation masks" in real["csa"] and real["real_data"].startswith("These are real recordings")

    box = meaning_box(base, ["transverse model: 40 epochs (paper: 500)"])
    assert box["limitations"][-1] == "transverse model: 40 epochs (paper: 500)" and box["accuracy"] == base["accuracy"]
    assert meaning_box(None, ["x"]) is None


def test_simulator_csa_is_read_from_the_data_folder(tmp_path):
    assert simulator_csa(tmp_path) == ([9.0, 12.0, 15.0, 19.0], [1.3, 2.0, 2.6, 3.4])  # SynthConfig defaults
    (tmp_path / "synth_config.json").write_text('{"csa_mean_mm2": [8, 10, 14, 20], "csa_sd_mm2": [1, 1, 1, 1]}')
    assert simulator_csa(tmp_path) == ([8.0, 10.0, 14.0, 20.0], [1.0, 1.0, 1.0, 1.0])


def test_the_meaning_partial_renders_the_recorded_box_and_nothing_without_it():
    import jinja2

    from ctslib.report.pages import TEMPLATES_DIR

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)), autoescape=True)
    partial = env.get_template("meaning.html.j2")
    box = meaning_box({"accuracy": "about 6 in 10", "confusions": ["36% of severe frames were called mild"],
                          "csa": "simulator", "real_data": "other centres", "limitations": ["one training seed"]},
                         ["transverse model: 40 epochs (paper: 500)"])
    html = partial.render(meaning=box)
    assert 'id="what-this-means"' in html and "<li>36% of severe frames were called mild</li>" in html
    assert html.index("one training seed") < html.index("40 epochs (paper: 500)")
    assert partial.render(meaning=None).strip() == ""
