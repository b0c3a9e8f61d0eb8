"""The segmenter on real ultrasound: scored on the public usgra-seg images at their original resolution.

usgra-seg (``ctslib.data.usgra``; CC-BY 4.0, print ``USGRA_ATTRIBUTION`` with every result) shows
nerves other than the median nerve; its 40 test images were never used to train or choose the
shipped segmenter.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ctslib.data.images import read_gray, read_mask
from ctslib.data.usgra import USGRA_ATTRIBUTION, USGRA_NERVE_LABEL, usgra_pairs
from ctslib.nerve.geometry import mask_centroid, point_in_mask
from ctslib.nerve.inference import largest_component, segment_images
from ctslib.nerve.scores import dice_score, iou_score


def usgra_check(
    model,
    input_size: int,
    threshold: float = 0.5,
    *,
    root: str | Path,
    subset: str = "test",
    flip_tta: bool = False,
) -> pd.DataFrame:
    """Score a segmenter on usgra-seg images at their original resolution, one row per image.

    Columns: ``id``, ``true_area_px``, ``dice_largest`` / ``iou_largest`` (largest predicted
    component: the pipeline's rule), ``dice_all`` / ``iou_all`` (every component above the
    threshold; several nerves can be in one usgra-seg image), ``crop_hit`` (the centroid of
    the largest component lies inside the true nerve; False when nothing was predicted) and
    ``pred_area_largest_px`` / ``pred_area_all_px`` (what each rule predicted, in pixels).
    """

    image_paths, mask_paths = usgra_pairs(root, subset)
    images = [read_gray(p) for p in image_paths]
    trues = [read_mask(p, USGRA_NERVE_LABEL) for p in mask_paths]
    every = segment_images(model, images, input_size, threshold, keep_largest=False, flip_tta=flip_tta)
    rows = []
    for path, true, pred_all in zip(image_paths, trues, every):
        pred = largest_component(pred_all)
        centre = mask_centroid(pred)
        rows.append({
            "id": path.name, "true_area_px": int(true.sum()),
            "dice_largest": dice_score(pred, true), "iou_largest": iou_score(pred, true),
            "dice_all": dice_score(pred_all, true), "iou_all": iou_score(pred_all, true),
            "crop_hit": centre is not None and point_in_mask(true, *centre),
            "pred_area_largest_px": int(pred.sum()), "pred_area_all_px": int(pred_all.sum()),
        })
    return pd.DataFrame(rows)


def usgra_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean/median Dice, mean IoU and crop-hit rate of a ``usgra_check`` table, per component rule.

    Two columns say how a low Dice comes about: ``empty_rate``, the share of images where nothing
    was predicted (a missed nerve), and ``area_ratio_median``, over the images whose prediction
    overlaps the true nerve, the median of predicted over true area (below 1: the nerves found are
    under-segmented; docs/realism.md, "Sixth round"). NaN when no prediction overlaps a nerve.
    """
    rows = []
    for rule in ("largest", "all"):
        predicted = table[f"pred_area_{rule}_px"]
        overlap = table[f"dice_{rule}"] > 0  # a Dice above 0 needs pixels of a true nerve
        ratios = predicted[overlap] / table.loc[overlap, "true_area_px"]
        rows.append({
            "components": rule, "n_images": len(table),
            "dice_mean": table[f"dice_{rule}"].mean(), "dice_median": table[f"dice_{rule}"].median(),
            "iou_mean": table[f"iou_{rule}"].mean(), "crop_hit_rate": float(table["crop_hit"].mean()),
            "empty_rate": float((predicted == 0).mean()),
            "area_ratio_median": float(ratios.median()) if len(ratios) else float("nan"),
        })
    return pd.DataFrame(rows)


def plot_usgra_worst(model, table: pd.DataFrame, input_size: int, threshold: float, *, root: str | Path,
                     subset: str = "test", n: int = 4, flip_tta: bool = False):
    """The ``n`` usgra-seg images of lowest Dice: true nerve (cyan), prediction (yellow), crop centre (red)."""
    import matplotlib.pyplot as plt


    worst = table.sort_values(["dice_largest", "id"]).head(n)
    image_paths, mask_paths = usgra_pairs(root, subset)
    by_name = {p.name: (p, m) for p, m in zip(image_paths, mask_paths)}
    fig, axes = plt.subplots(1, max(n, 1), figsize=(3.4 * max(n, 1), 3.6), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, row in zip(axes.ravel(), worst.itertuples(index=False)):
        image_path, mask_path = by_name[row.id]
        image, true = read_gray(image_path), read_mask(mask_path, USGRA_NERVE_LABEL)
        pred = segment_images(model, [image], input_size, threshold, flip_tta=flip_tta)[0]
        ax.imshow(image, cmap="gray", vmin=0, vmax=255)
        ax.contour(true > 0, levels=[0.5], colors="cyan", linewidths=0.8)
        if pred.any():
            ax.contour(pred > 0, levels=[0.5], colors="yellow", linewidths=0.8)
            ax.plot(*mask_centroid(pred), "r+", markersize=9)
        ax.set_title(f"{row.id}: Dice {row.dice_largest:.2f}", fontsize=9)
    fig.suptitle(f"Lowest Dice on usgra-seg {subset} images (cyan truth, yellow prediction). {USGRA_ATTRIBUTION}",
                 fontsize=7)
    fig.tight_layout()
    return fig
