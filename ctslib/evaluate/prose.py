"""Sentences and the summary table built from the recorded numbers (never hard-coded results)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from ctslib.common.display import SYNTHETIC_CAVEAT, SYNTHETIC_NOTE
from ctslib.evaluate.intervals import difference_word, format_ci
from ctslib.evaluate.metrics import CV_POOLED, available_splits
from ctslib.evaluate.paired import split_words
from ctslib.evaluate.tables import PAPER_RESULTS
from ctslib.severity.sanity import BORDERLINE
from ctslib.severity.split import GROUPED_SPLIT, PAPER_SPLIT

__all__ = ["leakage_sentence", "interpretation", "summary_table", "fair_split", "verdict_table", "verdict_sentence",
           "flags_sentence", "seed_sentence"]


def leakage_sentence(leakage: pd.DataFrame, ci: float = 0.95) -> str:
    """One plain sentence per model on what the leakage gap means."""
    parts = []
    for _, row in leakage.iterrows():
        gap, low, high = row["gap"], row["gap_ci_low"], row["gap_ci_high"]
        interval = f" ({ci:.0%} CI {low:+.2f} to {high:+.2f})" if np.isfinite(low) else ""
        if np.isfinite(low) and low > 0:
            verdict = "so the random frame split overstates accuracy on new patients"
        elif np.isfinite(high) and high < 0:
            verdict = "so the grouped split scored higher; no sign of leakage inflating accuracy"
        else:
            verdict = "an interval that includes zero, so this data cannot show whether leakage inflates accuracy"
        seen = row.get(f"{PAPER_SPLIT}_val_frames_from_wrists_seen_in_training", np.nan)
        seen_text = (f"; {seen:.0%} of its frame-split validation frames come from wrists with other frames in "
                     "training") if np.isfinite(seen) else ""
        parts.append(f"{row['model'].capitalize()} model: frame split minus grouped split accuracy = "
                     f"{gap:+.2f}{interval}, {verdict}{seen_text}.")
    parts.append("The grouped split keeps each participant's frames on one side, so its accuracy is the one "
                 "that estimates performance on patients the model has never seen.")
    return " ".join(parts)


def interpretation(source: str, n_participants: int | None = None) -> str:
    """What the numbers of this run can and cannot support, in plain words."""
    if source == "synthetic":
        return SYNTHETIC_NOTE
    size = f" With {n_participants} validation participants the intervals are wide." if n_participants else ""
    return ("These results come from real ultrasound. The grouped split keeps every participant's frames on one "
            "side, so its numbers estimate accuracy on new patients from the same clinic and device; the paper's "
            "random frame split puts near-duplicate frames of the same wrist in training and validation and "
            "overstates it by the leakage gap. External validation (other centres, devices, operators) is still "
            "needed before clinical use." + size)


def summary_table(
    frame_metrics: pd.DataFrame,
    *,
    source: str,
    source_description: str | None = None,
    leakage: pd.DataFrame | None = None,
    wrist_metrics: pd.DataFrame | None = None,
    csa_metrics: pd.DataFrame | None = None,
    paired: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Headline findings in one small table (item, value, note), ending with the interpretation.

    The CSA baseline and the paired comparisons are shown on the fair split (``fair_split``: grouped
    CV when run), the one the verdict uses, and each row says which split it is.

    Args:
        source: "synthetic" or "real" (``acquisition.json``); picks the interpretation.
        source_description: the source in words for the first row (default ``source``).
        paired: ``ctslib.evaluate.paired_table`` output (its rows of the fair split are listed).
    """
    def pick(table: pd.DataFrame, **where) -> pd.Series | None:
        rows = table
        for key, value in where.items():
            rows = rows[rows[key] == value]
        return rows.iloc[0] if len(rows) else None

    rows = [{"item": "Data source", "value": source_description or source, "note": ""}]
    for model in frame_metrics["model"].unique():
        published = PAPER_RESULTS.get(model, {}).get("accuracy")
        for split in available_splits(frame_metrics):
            for metric in ("accuracy", "kappa_quadratic"):
                hit = pick(frame_metrics, model=model, split=split, metric=metric)
                if hit is None:
                    continue
                note = {PAPER_SPLIT: "random frame split as in the paper (leaks wrists across sides)",
                        GROUPED_SPLIT: "participant-grouped split", CV_POOLED: "grouped k-fold CV, folds pooled"}
                reported = metric == "accuracy" and split == PAPER_SPLIT and published
                extra = f"; paper reported {published:.2f}" if reported else ""
                rows.append({"item": f"{model} {metric.replace('_', ' ')}, {split} split (frames)",
                             "value": format_ci(hit["estimate"], hit["ci_low"], hit["ci_high"]),
                             "note": note.get(split, "") + extra})
    if wrist_metrics is not None:
        for model in wrist_metrics["model"].unique():
            for split in (GROUPED_SPLIT, CV_POOLED):
                hit = pick(wrist_metrics, model=model, split=split, metric="accuracy")
                if hit is not None:
                    rows.append({"item": f"{model} accuracy, {split} split (wrists)",
                                 "value": format_ci(hit["estimate"], hit["ci_low"], hit["ci_high"]),
                                 "note": f"{int(hit['n'])} wrists, mean softmax over frames"})
    if leakage is not None:
        for _, row in leakage.iterrows():
            rows.append({"item": f"{row['model']} leakage gap (frame - grouped accuracy)",
                         "value": format_ci(row["gap"], row["gap_ci_low"], row["gap_ci_high"]),
                         "note": "positive = the frame split flatters the model"})
    fair = fair_split(frame_metrics["split"])
    if csa_metrics is not None:
        baselines = csa_metrics[csa_metrics["model"].astype(str).str.startswith("CSA")]
        for model in baselines["model"].unique():
            for metric in ("accuracy", "balanced_accuracy"):
                hit = pick(baselines, model=model, split=fair, metric=metric)
                if hit is not None:
                    rows.append({"item": f"{model}: {metric.replace('_', ' ')}, {fair} split (wrists)",
                                 "value": format_ci(hit["estimate"], hit["ci_low"], hit["ci_high"]),
                                 "note": f"{int(hit['n'])} wrists; {split_words(fair)}"})
    if paired is not None:
        for _, row in paired[paired["split"] == fair].iterrows():
            rows.append({"item": f"{row['first']} minus {row['second']}, {fair} split (paired, wrists)",
                         "value": format_ci(row["difference"], row["ci_low"], row["ci_high"]),
                         "note": f"{int(row['n_wrists'])} wrists of {int(row['n_participants'])} participants "
                                 f"graded by both; {row['reading']}"})
    n_val = pick(frame_metrics, split=GROUPED_SPLIT, metric="accuracy")
    rows.append({"item": "Interpretation",
                 "value": interpretation(source, int(n_val["n_participants"]) if n_val is not None else None),
                 "note": ""})
    return pd.DataFrame(rows)


def _pick(table: pd.DataFrame | None, **where) -> pd.Series | None:
    if table is None or table.empty:
        return None
    rows = table
    for key, value in where.items():
        rows = rows[rows[key] == value]
    return rows.iloc[0] if len(rows) else None


def _cell(row: pd.Series | None) -> str:
    return "" if row is None else format_ci(row["estimate"], row["ci_low"], row["ci_high"])


def fair_split(splits: Iterable[str]) -> str:
    """The split whose numbers estimate accuracy on new participants: pooled CV if among ``splits``, else grouped."""
    return CV_POOLED if CV_POOLED in set(splits) else GROUPED_SPLIT


def verdict_table(
    frame_metrics: pd.DataFrame,
    *,
    wrist_metrics: pd.DataFrame | None = None,
    csa_metrics: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Paper / ours on the paper's split / ours on new participants (grouped CV), per model, with CIs.

    One row per CNN (frame accuracy as the paper reports it, plus balanced accuracy and wrist-level
    accuracy on the fair split) and one row per CSA baseline (wrist level, the same participants).
    """
    fair = fair_split(frame_metrics["split"])
    fair_words = "grouped CV" if fair == CV_POOLED else "grouped split"
    rows = []
    for model in dict.fromkeys(frame_metrics["model"]):
        published = PAPER_RESULTS.get(model, {}).get("accuracy")
        rows.append({
            "model": f"{model} CNN",
            "paper: accuracy (frame split)": f"{published:.3f}" if published is not None else "",
            "ours: accuracy, paper's frame split": _cell(_pick(frame_metrics, model=model, split=PAPER_SPLIT, metric="accuracy")),
            f"ours: accuracy, {fair_words} (frames)": _cell(_pick(frame_metrics, model=model, split=fair, metric="accuracy")),
            f"ours: balanced accuracy, {fair_words} (frames)": _cell(
                _pick(frame_metrics, model=model, split=fair, metric="balanced_accuracy")),
            f"ours: accuracy, {fair_words} (wrists)": _cell(_pick(wrist_metrics, model=model, split=fair, metric="accuracy")),
        })
    if wrist_metrics is not None:
        for model in [m for m in dict.fromkeys(wrist_metrics["model"]) if m not in set(frame_metrics["model"])]:
            hit = _pick(wrist_metrics, model=model, split=fair, metric="accuracy")
            if hit is not None:
                rows.append({"model": f"{model} CNN", f"ours: accuracy, {fair_words} (wrists)": _cell(hit)})
    if csa_metrics is not None:
        for model in [m for m in dict.fromkeys(csa_metrics["model"]) if str(m).startswith("CSA")]:
            for split in (fair, GROUPED_SPLIT):
                hit = _pick(csa_metrics, model=model, split=split, metric="accuracy")
                if hit is not None:
                    words = "grouped CV" if split == CV_POOLED else "grouped split"
                    rows.append({"model": f"{model} (baseline)", f"ours: accuracy, {words} (wrists)": _cell(hit),
                                 f"ours: balanced accuracy, {words} (frames)": ""})
                    break
    return pd.DataFrame(rows).fillna("")


def verdict_sentence(
    frame_metrics: pd.DataFrame,
    *,
    source: str,
    wrist_metrics: pd.DataFrame | None = None,
    csa_metrics: pd.DataFrame | None = None,
    flags: pd.DataFrame | None = None,
    paired: pd.DataFrame | None = None,
) -> str:
    """What the verdict box shows, in a few sentences built from the numbers.

    ``flags`` (``ctslib.severity.sanity.flag_overview``): failing model/split pairs are named first, since
    their accuracies do not describe a trained model; borderline ones are named after them.
    ``paired`` (``ctslib.evaluate.paired_table``): every comparison (CNN vs CSA baseline, plane vs
    plane) is read from its paired difference on the fair split, never from overlapping intervals.
    """
    fair = fair_split(frame_metrics["split"])
    fair_words = "by grouped cross-validation" if fair == CV_POOLED else "on the participant-grouped split"
    claims = []
    for model in dict.fromkeys(frame_metrics["model"]):
        ours = _pick(frame_metrics, model=model, split=PAPER_SPLIT, metric="accuracy")
        new = _pick(frame_metrics, model=model, split=fair, metric="accuracy")
        published = PAPER_RESULTS.get(model, {}).get("accuracy")
        if ours is None or new is None:
            continue
        paper_part = f" (paper {published:g})" if published is not None else ""
        claims.append(f"the {model} CNN scores {ours['estimate']:.3f} on the paper's frame split{paper_part} and "
                      f"{new['estimate']:.3f} [{new['ci_low']:.3f}, {new['ci_high']:.3f}] {fair_words}")
    text = "On " + ("synthetic" if source == "synthetic" else "real") + " data, " + "; ".join(claims) + "."
    if flags is not None and (flags["status"] == "FAIL").any():
        failing = flags[flags["status"] == "FAIL"]
        text = (f"Caution: {len(failing)} of {len(flags)} model/split results fail a sanity flag ("
                + ", ".join(f"{r['model']} on {r['split']}" for _, r in failing.iterrows())
                + "): there the model did not learn, or does no better than always answering the commonest "
                "grade. " + text)
    if flags is not None and (flags["status"] == BORDERLINE).any():
        weak = flags[flags["status"] == BORDERLINE]
        text += (f" {len(weak)} of {len(flags)} model/split results are borderline (amber in the flag table: "
                 + ", ".join(f"{r['model']} on {r['split']}" for _, r in weak.iterrows()) + ").")
    csa = None
    if csa_metrics is not None:
        csa_rows = csa_metrics[csa_metrics["model"].astype(str).str.startswith("CSA")]
        csa = _pick(csa_rows, split=fair, metric="accuracy")
    if csa is not None:
        text += (f" The CSA-threshold baseline grades {csa['estimate']:.3f} [{csa['ci_low']:.3f}, "
                 f"{csa['ci_high']:.3f}] of the wrists correctly {fair_words}.")
    if paired is not None and len(paired):
        rows = paired[(paired["split"] == fair) & (paired["n_wrists"] > 0)]
        baseline = rows["second"].astype(str).str.startswith("CSA")
        if baseline.any():
            clauses = [_comparison_clause(row) for _, row in rows[baseline].iterrows()]
            text += (f" Against the CSA baseline on the wrists both grade {fair_words} (accuracy difference, paired "
                     "participant bootstrap): " + "; ".join(clauses) + ".")
        if (~baseline).any():
            text += (" Model against model on the wrists both grade (paired): " + "; ".join(
                f"{row['first']} minus {row['second']} {row['difference']:+.3f} [{row['ci_low']:+.3f}, "
                f"{row['ci_high']:+.3f}], {int(row['n_wrists'])} wrists, "
                f"{difference_word(row['ci_low'], row['ci_high']).replace(' than', '').replace(' from', '')}"
                for _, row in rows[~baseline].iterrows()) + ".")
    gaps = []
    for model in dict.fromkeys(frame_metrics["model"]):
        ours = _pick(frame_metrics, model=model, split=PAPER_SPLIT, metric="accuracy")
        new = _pick(frame_metrics, model=model, split=fair, metric="accuracy")
        if ours is not None and new is not None:
            gaps.append(ours["estimate"] - new["estimate"])
    if gaps and max(gaps) > 0.05:
        text += (" The frame split's higher accuracy comes partly from near-duplicate frames of the same wrists "
                 "on both sides; the grouped numbers are the estimate for new patients.")
    if source == "synthetic":
        text += f" These are {SYNTHETIC_CAVEAT}."
    return text


def _comparison_clause(row: pd.Series) -> str:
    """``the transverse CNN -0.130 [-0.240, -0.010] on 84 wrists of 42 participants, lower than the baseline``."""
    word = difference_word(row["ci_low"], row["ci_high"])
    return (f"the {row['first']} {row['difference']:+.3f} [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}] on "
            f"{int(row['n_wrists'])} wrists of {int(row['n_participants'])} participants, {word} the baseline")


def flags_sentence(overview: pd.DataFrame) -> str:
    """The sanity-flag overview in words (``ctslib.severity.sanity.flag_overview`` output): failures, then borderline."""
    if overview.empty:
        return "No predictions to check."
    failing = overview[overview["status"] == "FAIL"]
    weak = overview[overview["status"] == BORDERLINE]
    if failing.empty and weak.empty:
        return (f"All {len(overview)} model/split combinations pass the sanity flags: every grade in validation is "
                "predicted, no probability vector is shared by more than 20 % of frames, accuracy and its interval "
                "are above the majority-class rate and training accuracy is neither far below nor far above "
                "validation accuracy.")
    parts = []
    if len(failing):
        listed = "; ".join(f"{r['model']} on {r['split']}: {r['why']}" for _, r in failing.iterrows())
        parts.append(f"{len(failing)} of {len(overview)} model/split combinations fail a sanity flag (the model did "
                     f"not learn there, or does no better than a trivial answer): {listed}.")
    if len(weak):
        listed = "; ".join(f"{r['model']} on {r['split']}: {r['why']}" for _, r in weak.iterrows())
        parts.append(f"{len(weak)} of {len(overview)} are borderline (the result stands but is weak: an interval "
                     f"that includes the majority-class rate, or overfitting): {listed}.")
    return " ".join(parts)


def seed_sentence(variation: pd.DataFrame, frame_metrics: pd.DataFrame) -> str:
    """Training variance (SD over seeds) beside sampling variance (bootstrap CI width), in words."""
    if variation.empty:
        return ("Each model was trained once per split (one seed), so training variance is not measured here; "
                "the intervals show sampling variance only.")
    parts = []
    for _, row in variation.iterrows():
        hit = _pick(frame_metrics, model=row["model"], split=row["split"], metric="accuracy")
        width = f"; the bootstrap 95 % interval spans {hit['ci_high'] - hit['ci_low']:.3f}" if hit is not None else ""
        parts.append(f"{row['model']} on {row['split']}: accuracy {row['accuracy_mean']:.3f} ± {row['accuracy_sd']:.3f} "
                     f"(SD over {int(row['seeds'])} seeds){width}")
    return ("; ".join(parts) + ". The seed SD is training variance: the same validation participants, only the "
            "random initialisation, batch order and augmentation change. The bootstrap interval is sampling "
            "variance: which participants happen to be in the study. They answer different questions and do not "
            "add up to one number.")
