"""Segmenting frames: predict -> post-process, one full-resolution 0/1 nerve mask per frame.

Predictions at the model's ``input_size`` are upsampled back to the frame's full resolution,
thresholded, and reduced to one connected component (the largest, or the one nearest a marked
point: one median nerve per frame). ``segment_images`` is that whole step.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from ctslib.nerve.inputs import to_model_input


def predict_probabilities(model, images: np.ndarray, batch_size: int = 32, *, flip_tta: bool = False,
                          unflipped: np.ndarray | None = None) -> np.ndarray:
    """Nerve probabilities (N, s, s) for model-sized images (N, s, s, 1).

    With ``flip_tta`` the prediction is averaged with that of the mirrored image (mirrored back):
    test-time augmentation by the one symmetry B-mode has (left and right wrists mirror).
    ``unflipped``: this model's probabilities (N, s, s) of ``images`` when a caller already has them
    (the nerve-presence pass of the same weights), which saves that forward pass.
    """
    if len(images) == 0:
        return np.zeros((0, *images.shape[1:3]), np.float32)
    if unflipped is not None and len(unflipped) != len(images):
        raise ValueError(f"{len(unflipped)} precomputed probability maps for {len(images)} images")
    probs = forward_batches(model, images, batch_size)[..., 0] if unflipped is None else np.asarray(unflipped, np.float32)
    if flip_tta:
        mirrored = forward_batches(model, np.ascontiguousarray(images[:, :, ::-1]), batch_size)[..., 0]
        probs = 0.5 * (probs + mirrored[:, :, ::-1])
    return probs


def forward_batches(model, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """The model's output for ``images``, ``batch_size`` at a time: ``model.predict`` without its
    per-call set-up (a new data pipeline each call; about 40 % of the time when stage 03 segments
    frames in chunks of 64; same batches, same numbers)."""
    return np.concatenate([np.asarray(model.predict_on_batch(images[i:i + batch_size]))
                           for i in range(0, len(images), batch_size)])


def segment_images(
    model,
    images: Sequence[np.ndarray],
    input_size: int,
    threshold: float = 0.5,
    *,
    keep_largest: bool = True,
    flip_tta: bool = False,
    hints: Sequence[tuple[float, float] | None] | None = None,
    batch_size: int = 32,
    unflipped: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Predict -> post-process: one full-resolution 0/1 nerve mask per 8-bit grayscale image.

    Args:
        model: a segmenter (``ctslib.nerve.unet.build_unet`` architecture, sigmoid output).
        images: grayscale images (H, W) of any size; each mask has its image's shape.
        input_size: the model's square input side.
        threshold: probability threshold.
        keep_largest: keep one component per image (the largest, or the one nearest the hint).
        flip_tta: average with the mirrored prediction (see ``predict_probabilities``).
        hints: optional (x, y) point per image (pixels of that image, or None): the component
            nearest the point is kept instead of the largest (``nearest_component``).
        unflipped: the model's probability maps of the un-mirrored inputs, when already computed
            (see ``predict_probabilities``).
    """
    if len(images) == 0:
        return []
    x = np.stack([to_model_input(im, input_size) for im in images])
    probs = predict_probabilities(model, x, batch_size, flip_tta=flip_tta, unflipped=unflipped)
    masks = []
    for k, (prob, image) in enumerate(zip(probs, images)):
        hint = hints[k] if hints is not None else None
        binary = postprocess(prob, image.shape[:2], threshold=threshold, keep_largest=keep_largest and hint is None)
        masks.append(nearest_component(binary, *hint) if keep_largest and hint is not None else binary)
    return masks


def largest_component(mask: np.ndarray) -> np.ndarray:
    """Keep only the largest 8-connected component of a binary mask (0/1 uint8)."""
    binary = (mask > 0).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if n <= 2:  # background only, or one component
        return binary
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return (labels == biggest).astype(np.uint8)


def nearest_component(mask: np.ndarray, x: float, y: float) -> np.ndarray:
    """Keep the 8-connected component of ``mask`` nearest the point (x = column, y = row).

    A component containing the point wins; otherwise the one with the smallest pixel distance to
    it (ties: the larger component). An empty mask stays empty.
    """
    binary = (mask > 0).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if n <= 2:
        return binary
    rows, cols = np.nonzero(labels)
    dist = (cols - float(x)) ** 2 + (rows - float(y)) ** 2
    best = np.full(n, np.inf)
    np.minimum.at(best, labels[rows, cols], dist)
    areas = stats[:, cv2.CC_STAT_AREA].astype(float)
    order = np.lexsort((-areas[1:], best[1:]))  # nearest first, then larger
    return (labels == 1 + int(order[0])).astype(np.uint8)


def postprocess(
    probability: np.ndarray,
    out_shape: tuple[int, int],
    *,
    threshold: float = 0.5,
    keep_largest: bool = True,
) -> np.ndarray:
    """Model-sized probabilities -> full-resolution binary mask (H, W) of 0/1.

    The probability map is resized (bilinear) to ``out_shape`` = (H, W) *before* thresholding,
    which gives smoother full-resolution edges than upsampling a binary mask. With
    ``keep_largest`` only the largest connected component survives (one nerve per frame).
    """
    height, width = out_shape
    full = cv2.resize(probability.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    binary = (full >= threshold).astype(np.uint8)
    return largest_component(binary) if keep_largest else binary
