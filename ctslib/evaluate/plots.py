"""Figures of the evaluation stage (seaborn / matplotlib): Figure 4, leakage, Grad-CAM.

Each function returns a Matplotlib figure; the notebook saves it with ``ctslib.common.io.save_figure``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ctslib import GRADES
from ctslib.common.display import GRADCAM_READING
from ctslib.severity.gradcam import SaliencyExample


def _titles(*parts: str | None) -> str:
    return "\n".join(p for p in parts if p)


def confusion_matrices_figure(matrices: Mapping[str, np.ndarray], *, suptitle: str | None = None,
                              subtitle: str | None = None) -> plt.Figure:
    """Confusion matrices side by side (rows = NCS grade, columns = predicted), counts and row %.

    ``subtitle`` (e.g. "synthetic data") goes under ``suptitle``.
    """
    fig, axes = plt.subplots(1, len(matrices), figsize=(4.6 * len(matrices), 4.2), squeeze=False)
    for ax, (title, matrix) in zip(axes[0], matrices.items()):
        matrix = np.asarray(matrix)
        totals = matrix.sum(axis=1, keepdims=True)
        share = np.divide(matrix, totals, out=np.zeros(matrix.shape, float), where=totals > 0)
        labels = np.array([[f"{matrix[i, j]}\n{share[i, j]:.0%}" if totals[i, 0] else f"{matrix[i, j]}"
                            for j in range(matrix.shape[1])] for i in range(matrix.shape[0])])
        sns.heatmap(share, annot=labels, fmt="", cmap="Blues", vmin=0, vmax=1, cbar=False, square=True,
                    xticklabels=GRADES, yticklabels=GRADES, ax=ax, linewidths=0.5, linecolor="white")
        ax.set_title(f"{title} (n = {int(matrix.sum())})")
        ax.set_xlabel("predicted grade")
        ax.set_ylabel("NCS grade")
    if suptitle or subtitle:
        fig.suptitle(_titles(suptitle, subtitle))
    fig.tight_layout()
    return fig


def leakage_figure(frame_metrics: pd.DataFrame, leakage: pd.DataFrame, *, ci: float = 0.95,
                   majority: Mapping[tuple[str, str], float] | None = None, subtitle: str | None = None) -> plt.Figure:
    """Left: accuracy with participant-bootstrap CIs per model and split, with the chance rate (1/4) and
    each validation set's majority-class rate (a grey dash beside each point). Right: the leakage gap."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8), gridspec_kw={"width_ratios": [3, 2]})
    acc = frame_metrics[frame_metrics["metric"] == "accuracy"].reset_index(drop=True)
    splits = list(dict.fromkeys(acc["split"]))
    models = list(dict.fromkeys(acc["model"]))
    palette = sns.color_palette("colorblind", len(splits))
    width = 0.8 / max(len(splits), 1)
    any_majority = False
    left.axhline(1 / len(GRADES), color="grey", lw=1, ls=":", label=f"chance (1/{len(GRADES)})")
    for j, split in enumerate(splits):
        for i, model in enumerate(models):
            hit = acc[(acc["model"] == model) & (acc["split"] == split)]
            if hit.empty:
                continue
            row = hit.iloc[0]
            x = i + (j - (len(splits) - 1) / 2) * width
            err = np.array([[row["estimate"] - row["ci_low"]], [row["ci_high"] - row["estimate"]]])
            left.errorbar(x, row["estimate"], yerr=None if np.isnan(err).any() else err, fmt="o", capsize=4,
                          color=palette[j], label=split if i == 0 else None)
            rate = (majority or {}).get((model, split))
            if rate is not None and np.isfinite(rate):
                left.plot([x - width * 0.4, x + width * 0.4], [rate, rate], color="dimgrey", lw=2.5, solid_capstyle="butt",
                          label="majority-class rate" if not any_majority else None)
                any_majority = True
    left.set_xticks(range(len(models)), models)
    left.set_ylim(0, 1.2)
    left.set_yticks(np.linspace(0, 1, 6))
    left.set_ylabel(f"frame accuracy ({ci:.0%} CI)")
    left.legend(title=None, loc="upper center", ncols=3, frameon=False, fontsize=8)
    left.set_title("Accuracy by split policy")
    for i, row in leakage.reset_index(drop=True).iterrows():
        err = np.array([[row["gap"] - row["gap_ci_low"]], [row["gap_ci_high"] - row["gap"]]])
        right.errorbar(i, row["gap"], yerr=None if np.isnan(err).any() else err, fmt="s", capsize=5, color="black")
    right.axhline(0, color="grey", lw=1, ls="--")
    right.set_xticks(range(len(leakage)), leakage["model"])
    right.set_xlim(-0.6, len(leakage) - 0.4)
    right.set_ylabel("frame split minus grouped split")
    right.set_title("Leakage gap (accuracy)")
    if subtitle:
        fig.suptitle(subtitle, fontsize=10)
    fig.tight_layout()
    return fig


GRADCAM_CMAP = "cividis"
"""Grad-CAM's colour map: perceptually uniform and readable with colour-vision deficiency (jet is neither)."""

GRADCAM_CAPTION = f"How to read: {GRADCAM_READING} ✗ = wrong prediction."
"""The caption printed under the Grad-CAM figure (and shown on the report index)."""


def gradcam_figure(examples: Sequence[SaliencyExample], *, alpha: float = 0.6, subtitle: str | None = None) -> plt.Figure:
    """Crops with their Grad-CAM overlay: columns = true grade, rows = model x example; a labelled colour bar
    gives the scale (0 = no positive evidence, 1 = the map's maximum) and a caption says what to read from it."""
    models = list(dict.fromkeys(e.model for e in examples))
    per_cell: dict[tuple[str, int], list[SaliencyExample]] = {}
    for e in examples:
        per_cell.setdefault((e.model, e.y_true), []).append(e)
    depth = max((len(v) for v in per_cell.values()), default=1)
    n_rows = max(len(models) * depth, 1)
    fig, axes = plt.subplots(n_rows, len(GRADES), figsize=(2.3 * len(GRADES), 2.4 * n_rows + 0.6), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for m, model in enumerate(models):
        for g, grade in enumerate(GRADES):
            for k, e in enumerate(per_cell.get((model, g), [])):
                ax = axes[m * depth + k, g]
                ax.imshow(e.image, cmap="gray", vmin=0, vmax=1)
                ax.imshow(e.cam, cmap=GRADCAM_CMAP, alpha=alpha * e.cam, vmin=0, vmax=1)  # no evidence: no tint
                mark = "" if e.y_pred == e.y_true else " ✗"
                empty = "" if e.cam.max() > 0 else "\n(map empty: no positive evidence)"
                ax.set_title(f"{model[:5]}. {grade} → {GRADES[e.y_pred]} ({e.probability:.2f}){mark}{empty}",
                             fontsize=8)
    fig.suptitle(_titles("Grad-CAM (last conv layer) for the predicted grade; columns = NCS grade", subtitle), fontsize=10)
    caption_height = 0.6 / fig.get_figheight()
    fig.tight_layout(rect=(0, caption_height, 0.88, 1))
    scale = fig.add_axes((0.9, 0.15 + caption_height, 0.02, 0.65))
    bar = fig.colorbar(plt.cm.ScalarMappable(norm=plt.Normalize(0, 1), cmap=GRADCAM_CMAP), cax=scale)
    bar.set_ticks([0, 0.5, 1], labels=["0: none", "0.5", "1: strongest"])
    bar.set_label("Grad-CAM: evidence for the predicted grade\n(relative to each map's maximum)", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    fig.text(0.01, 0.01, GRADCAM_CAPTION, fontsize=7.5, wrap=True, va="bottom", ha="left")
    return fig
