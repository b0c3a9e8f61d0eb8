"""What stage 02's QC did, in numbers and pictures: the funnel beside the paper's, example frames,
and (synthetic data) the automatic verdicts scored against the generator's bad-frame labels.

The decisions themselves are ``ctslib.frames.qc``; nothing here changes a frame's verdict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ctslib.common.errors import InputError
from ctslib.frames.qc import QC_REASONS

PAPER_FUNNEL: dict[str, int] = {"extracted": 11895, "kept": 2518, "kept_transverse": 1360, "kept_longitudinal": 1158}
"""The paper's frame counts: 11,895 frames extracted at 5 fps, 2,518 kept by expert QC."""


def qc_funnel(frames: pd.DataFrame, planes: tuple[str, ...] = ("transverse", "longitudinal")) -> pd.DataFrame:
    """Extracted -> rejected per reason -> kept, per plane and overall, beside the paper's funnel.

    Args:
        frames: one row per extracted frame with ``plane``, ``kept`` and ``reason``.
        planes: plane columns, in order.

    Returns:
        Rows ``extracted``, ``rejected: <reason>`` (each reason that occurs), ``kept``, ``kept %``;
        columns ``step``, one per plane, ``all``, and ``paper_<plane>`` / ``paper_all`` (NaN where
        the paper reports no number: it gives extracted counts and reject reasons only in total).
    """
    reasons = [r for r in (*QC_REASONS, "expert_reject") if (frames["reason"] == r).any()]
    reasons += sorted(set(frames.loc[~frames["kept"].astype(bool), "reason"]) - set(reasons))
    groups = {plane: frames[frames["plane"] == plane] for plane in planes}
    groups["all"] = frames
    table: dict[str, list[float]] = {}
    for name, group in groups.items():
        kept = int(group["kept"].astype(bool).sum())
        rejected = group[~group["kept"].astype(bool)]
        table[name] = [len(group), *[int((rejected["reason"] == r).sum()) for r in reasons], kept, 100.0 * kept / len(group) if len(group) else np.nan]
    steps = ["extracted", *[f"rejected: {r}" for r in reasons], "kept", "kept %"]
    paper_total = PAPER_FUNNEL["extracted"]
    for plane in planes:
        column = [np.nan] * len(steps)
        column[-2] = PAPER_FUNNEL.get(f"kept_{plane}", np.nan)
        table[f"paper_{plane}"] = column
    paper_all = [np.nan] * len(steps)
    paper_all[0], paper_all[-2] = paper_total, PAPER_FUNNEL["kept"]
    paper_all[-1] = 100.0 * PAPER_FUNNEL["kept"] / paper_total
    table["paper_all"] = paper_all
    return pd.DataFrame({"step": steps, **table})


def plot_qc_funnel(funnel: pd.DataFrame, planes: tuple[str, ...] = ("transverse", "longitudinal")):
    """Stacked bars per plane (kept + rejected by reason), and kept fraction beside the paper's."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 2]})
    groups = [*planes, "all"]
    reject_rows = funnel[funnel["step"].str.startswith("rejected: ")]
    kept = funnel.loc[funnel["step"] == "kept", groups].iloc[0].to_numpy(dtype=float)
    bottom = np.zeros(len(groups))
    left.bar(groups, kept, color="#2a9d8f", label="kept")
    bottom += kept
    palette = plt.get_cmap("Set2")
    for i, (_, row) in enumerate(reject_rows.iterrows()):
        values = row[groups].to_numpy(dtype=float)
        left.bar(groups, values, bottom=bottom, color=palette(i + 1), label=row["step"])
        bottom += values
    left.set_ylabel("frames extracted at 5 fps")
    left.set_title("QC funnel (this run)")
    left.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    percent = funnel.loc[funnel["step"] == "kept %"].iloc[0]
    labels = ["this run: " + g for g in groups] + ["paper: all"]
    values = [float(percent[g]) for g in groups] + [float(percent["paper_all"])]
    colours = ["#2a9d8f"] * len(groups) + ["#e76f51"]
    right.barh(labels, values, color=colours)
    for y, v in enumerate(values):
        right.text(v, y, f" {v:.1f}%", va="center", fontsize=8)
    right.set_xlabel("frames kept (%)")
    right.set_xlim(0, 110)
    right.set_title("kept fraction vs paper (2,518 / 11,895)")
    right.invert_yaxis()
    fig.tight_layout()
    return fig


def qc_vs_truth(frames: pd.DataFrame, planes: tuple[str, ...] = ("transverse", "longitudinal")) -> pd.DataFrame:
    """Precision / recall of automatic rejection against the generator's bad-frame labels.

    Args:
        frames: one row per extracted frame with ``plane``, ``auto_kept``, ``auto_reason`` and
            ``true_reason`` (blank/NaN/"ok" = a good frame, otherwise the generator's defect).

    Returns:
        Rows per plane and ``all``: frames, truly bad, rejected, tp, fp, fn, precision (of
        rejection: rejected frames that are bad), recall (bad frames rejected), and
        ``reason_agreement`` (share of true positives whose QC reason names the generator's defect).
    """
    truth = frames["true_reason"].fillna("").astype(str).str.strip().replace("ok", "")
    bad = truth != ""
    rejected = ~frames["auto_kept"].astype(bool)
    rows = []
    for name in [*planes, "all"]:
        sel = frames["plane"] == name if name != "all" else pd.Series(True, index=frames.index)
        tp = int((bad & rejected & sel).sum())
        fp = int((~bad & rejected & sel).sum())
        fn = int((bad & ~rejected & sel).sum())
        same = int((bad & rejected & sel & (frames["auto_reason"] == truth)).sum())
        rows.append(
            {
                "plane": name,
                "frames": int(sel.sum()),
                "truly_bad": int((bad & sel).sum()),
                "rejected": int((rejected & sel).sum()),
                "tp": tp,
                "fp": fp,
                "fn": fn,
                "precision": tp / (tp + fp) if tp + fp else np.nan,
                "recall": tp / (tp + fn) if tp + fn else np.nan,
                "reason_agreement": same / tp if tp else np.nan,
            }
        )
    return pd.DataFrame(rows)


def qc_vs_truth_by_reason(frames: pd.DataFrame) -> pd.DataFrame:
    """Per generator defect (and "ok"): frames, share rejected, and how the QC named them."""
    truth = frames["true_reason"].fillna("").astype(str).str.strip().replace("", "ok")
    table = pd.crosstab(truth.rename("true_reason"), frames["auto_reason"].rename("auto_reason"))
    table.insert(0, "frames", table.sum(axis=1))
    ok_column = table["ok"] if "ok" in table.columns else 0
    table.insert(1, "rejected %", 100.0 * (table["frames"] - ok_column) / table["frames"])
    return table.reset_index()


def read_truth_frames(path: str | Path) -> pd.DataFrame:
    """The generator's per-source-frame labels (``truth/frames.csv``): video, source_index, bad_reason.

    Scoring only: these labels never decide QC. ``bad_reason`` is "" for a good frame.
    """
    path = Path(path)
    truth = pd.read_csv(path, dtype={"video": str, "bad_reason": str}, keep_default_na=False)
    missing = [c for c in ("video", "source_index", "bad_reason") if c not in truth.columns]
    if missing:
        raise InputError(f"missing columns {missing}", file=path, column=missing[0])
    return truth[["video", "source_index", "bad_reason"]].astype({"source_index": int})


def true_reasons(truth: pd.DataFrame, stem: str, source_index: pd.Series | np.ndarray) -> np.ndarray:
    """The generator's label of each source frame of video ``stem`` ("" = good; NaN = not labelled)."""
    labels = truth[truth["video"] == stem].set_index("source_index")["bad_reason"]
    return labels.reindex(np.asarray(source_index, dtype=int)).to_numpy(dtype=object)


def plot_qc_examples(examples: Mapping[str, Sequence[tuple[str, np.ndarray]]], per_reason: int = 4):
    """Example frames per automatic QC verdict: one row per verdict (``ok`` first), up to ``per_reason`` frames.

    Args:
        examples: verdict -> ``[(label, frame), ...]`` (``ctslib.frames.extraction.ExtractionResult.examples``).
        per_reason: columns of the grid.

    Each panel is titled with its verdict and the frame's label (pseudonymised video and time); the
    layout engine keeps titles apart from images and from each other.
    """
    import matplotlib.pyplot as plt

    reasons = [r for r in ("ok", *QC_REASONS) if examples.get(r)]
    reasons += sorted(r for r in examples if r not in reasons and examples[r])
    rows, cols = max(len(reasons), 1), max(min(per_reason, max((len(examples[r]) for r in reasons), default=1)), 1)
    fig, axes = plt.subplots(rows, cols, figsize=(2.5 * cols, 2.8 * rows), squeeze=False, layout="constrained")
    for ax in axes.ravel():
        ax.axis("off")
    for i, reason in enumerate(reasons):
        for j, (label, image) in enumerate(list(examples[reason])[:cols]):
            ax = axes[i][j]
            ax.imshow(image, cmap="gray", vmin=0, vmax=255)
            verdict = "kept (ok)" if reason == "ok" else f"rejected: {reason}"
            ax.set_title(f"{verdict}\n{label}", fontsize=7)
    return fig
