"""The crop example figure: one cropped frame per grade x plane with its nerve outlines and crop box."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ctslib import GRADES, PLANES
from ctslib.common.handoff import as_bool
from ctslib.data.images import read_gray, read_mask
from ctslib.nerve.hints import hint_pixels
from ctslib.nerve.inference import segment_images


def pick_examples(crops: pd.DataFrame, seed: int) -> pd.DataFrame:
    """One cropped frame per grade x plane (seeded choice), for the example figure."""
    found = crops[as_bool(crops["nerve_found"])]
    picks = []
    for plane in PLANES:
        for grade in GRADES:
            part = found[(found["plane"] == plane) & (found["grade"] == grade)]
            if len(part):
                picks.append(part.sample(1, random_state=seed))
    return pd.concat(picks, ignore_index=True) if picks else found.head(0)


def plot_crop_examples(
    images: Sequence[np.ndarray],
    pred_masks: Sequence[np.ndarray],
    rows: pd.DataFrame,
    true_masks: Sequence[np.ndarray | None] | None = None,
    title: str | None = None,
):
    """Frames with the predicted nerve contour (yellow), true contour (cyan, if any) and crop box (red).

    Laid out with planes as rows and grades as columns (``rows`` from ``pick_examples``); a legend
    names the marks; ``title`` (e.g. from ``ctslib.common.display.figure_title``) goes on top.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    # constrained layout keeps panel titles, the suptitle and the legend below apart (tight_layout let them overlap)
    fig, axes = plt.subplots(len(PLANES), len(GRADES), figsize=(3.0 * len(GRADES), 3.5 * len(PLANES) + 0.6),
                             squeeze=False, layout="constrained")
    for ax in axes.ravel():
        ax.axis("off")
    for k, row in enumerate(rows.itertuples(index=False)):
        ax = axes[PLANES.index(row.plane), GRADES.index(row.grade)]
        ax.imshow(images[k], cmap="gray", vmin=0, vmax=255)
        true = true_masks[k] if true_masks is not None else None
        if true is not None and true.any():
            ax.contour(true > 0, levels=[0.5], colors="cyan", linewidths=0.8)
        if pred_masks[k].any():
            ax.contour(pred_masks[k] > 0, levels=[0.5], colors="yellow", linewidths=0.8)
        ax.add_patch(Rectangle((row.x0 - 0.5, row.y0 - 0.5), row.crop_size, row.crop_size,
                               fill=False, edgecolor="red", linewidth=1.2))
        ax.plot(row.centre_x, row.centre_y, "r+", markersize=8)
        measure = "CSA" if row.plane == "transverse" else "nerve area"
        ax.set_title(f"{row.plane} · {row.grade}\n{measure} {row.csa_mm2:.1f} mm²", fontsize=9)
    fig.legend(handles=crop_legend_handles(with_truth=true_masks is not None), loc="outside lower center", ncols=4,
               fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def crop_legend_handles(*, with_truth: bool) -> list:
    """Legend entries for the marks of ``plot_crop_examples``."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Line2D([], [], color="yellow", lw=1.5, label="predicted nerve outline")]
    if with_truth:
        handles.append(Line2D([], [], color="cyan", lw=1.5, label="true nerve outline (mask)"))
    handles += [Patch(fill=False, edgecolor="red", lw=1.2, label="crop box"),
                Line2D([], [], color="red", marker="+", ls="", markersize=8, label="crop centre")]
    return handles


def example_figure(
    crops: pd.DataFrame,
    frames_dir: str | Path,
    masks_dir: str | Path,
    model,
    *,
    input_size: int,
    threshold: float,
    seed: int,
    flip_tta: bool = False,
    hints: Mapping[tuple[str, str], tuple[float, float]] | None = None,
    title: str | None = None,
):
    """``plot_crop_examples`` of one seeded cropped frame per grade x plane, segmented as in ``ctslib.nerve.crop.crop_frames``."""
    examples = pick_examples(crops, seed=seed)
    rows = examples.to_dict("records")
    images = [read_gray(Path(frames_dir) / f"{r['frame_id']}.png") for r in rows]
    points = [hint_pixels(hints, r, im.shape) for r, im in zip(rows, images)] if hints else None
    preds = segment_images(model, images, input_size, threshold, flip_tta=flip_tta, hints=points)
    trues = [read_mask(p) if p.exists() else None for p in (Path(masks_dir) / f"{r['frame_id']}.png" for r in rows)]
    return plot_crop_examples(images, preds, examples, trues, title=title)
