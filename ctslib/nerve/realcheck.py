"""The segmenter on real ultrasound: scored on the public usgra-seg images at their original resolution.

usgra-seg (``ctslib.data.usgra``; CC-BY 4.0, print ``USGRA_ATTRIBUTION`` with every result) shows
nerves other than the median nerve; its 40 test images were never used to train or choose the
shipped segmenter.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from ctslib.data.images import read_gray, read_mask
from ctslib.data.usgra import USGRA_ATTRIBUTION, USGRA_NERVE_LABEL, usgra_pairs
from ctslib.nerve.geometry import mask_centroid, point_in_mask
from ctslib.nerve.inference import largest_component, postprocess, predict_probabilities, segment_images
from ctslib.nerve.inputs import to_model_input
from ctslib.nerve.scores import dice_score, iou_score

OFF_NERVE_MARGIN = 0.03  # "off the nerve" starts this share of the image's longer side away from its outline


def confidence_on_and_off(probability: np.ndarray, true: np.ndarray, margin_px: int) -> tuple[float, float]:
    """A model's confidence on the true nerve and away from it, from one full-resolution probability map.

    Returns the 90th percentile of ``probability`` inside ``true`` (NaN for an empty mask) and its
    maximum farther than ``margin_px`` from the nerve (0 when nothing is that far). A low first figure
    means the nerve is not seen at all; a high second one, that something else is taken for a nerve:
    the two ways a synthetic-only segmenter misses (docs/realism.md, "Seventh round").
    """
    inside = true > 0
    near = cv2.dilate(inside.astype(np.uint8), np.ones((2 * margin_px + 1,) * 2, np.uint8)) > 0
    on = float(np.quantile(probability[inside], 0.9)) if inside.any() else float("nan")
    off = float(probability[~near].max()) if (~near).any() else 0.0
    return on, off


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
    ``pred_area_largest_px`` / ``pred_area_all_px`` (what each rule predicted, in pixels),
    ``nerve_seen`` (most of the nerve, its 90th percentile, at or above the threshold) and
    ``false_pick`` (something away from the nerve at or above it; ``confidence_on_and_off``).
    """

    image_paths, mask_paths = usgra_pairs(root, subset)
    images = [read_gray(p) for p in image_paths]
    trues = [read_mask(p, USGRA_NERVE_LABEL) for p in mask_paths]
    inputs = np.zeros((len(images), input_size, input_size, 1), np.float32)
    for k, image in enumerate(images):
        inputs[k] = to_model_input(image, input_size)
    probs = predict_probabilities(model, inputs, flip_tta=flip_tta)
    rows = []
    for path, true, prob in zip(image_paths, trues, probs):
        pred_all = postprocess(prob, true.shape, threshold=threshold, keep_largest=False)
        pred = largest_component(pred_all)
        centre = mask_centroid(pred)
        full = cv2.resize(prob.astype(np.float32), true.shape[::-1], interpolation=cv2.INTER_LINEAR)
        on, off = confidence_on_and_off(full, true, max(1, round(OFF_NERVE_MARGIN * max(true.shape))))
        rows.append({
            "id": path.name, "true_area_px": int(true.sum()),
            "dice_largest": dice_score(pred, true), "iou_largest": iou_score(pred, true),
            "dice_all": dice_score(pred_all, true), "iou_all": iou_score(pred_all, true),
            "crop_hit": centre is not None and point_in_mask(true, *centre),
            "pred_area_largest_px": int(pred.sum()), "pred_area_all_px": int(pred_all.sum()),
            "nerve_seen": bool(on >= threshold), "false_pick": bool(off >= threshold),
        })
    return pd.DataFrame(rows)


def usgra_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean/median Dice, mean IoU and crop-hit rate of a ``usgra_check`` table, per component rule.

    Two columns say how a low Dice comes about: ``empty_rate``, the share of images where nothing
    was predicted (a missed nerve), and ``area_ratio_median``, over the images whose prediction
    overlaps the true nerve, the median of predicted over true area (below 1: the nerves found are
    under-segmented; docs/realism.md, "Sixth round"). NaN when no prediction overlaps a nerve.
    Two more say why a nerve is missed: ``seen_rate`` (the model's probability reaches the threshold
    on the nerve) and ``false_pick_rate`` (it does so on something away from the nerve).
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
            "seen_rate": float(table["nerve_seen"].mean()), "false_pick_rate": float(table["false_pick"].mean()),
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
