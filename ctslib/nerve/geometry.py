"""Geometry of binary masks shared by the segmenter's scores (``ctslib.nerve.realcheck``) and the crops (``ctslib.nerve.crop``).

Both sides score and cut by the same centroid and the same pixel rule, so it lives below them.
"""

from __future__ import annotations

import cv2
import numpy as np


def mask_centroid(mask: np.ndarray) -> tuple[float, float] | None:
    """Centroid (x = column, y = row) of a binary mask's pixels, or None when it is empty."""
    m = cv2.moments((mask > 0).astype(np.uint8), binaryImage=True)
    if m["m00"] == 0:
        return None
    return m["m10"] / m["m00"], m["m01"] / m["m00"]


def point_in_mask(mask: np.ndarray, x: float, y: float) -> bool:
    """Whether pixel (round(x), round(y)) is inside ``mask`` (False off-image or for NaN)."""
    if not (np.isfinite(x) and np.isfinite(y)):
        return False
    col, row = int(np.floor(x + 0.5)), int(np.floor(y + 0.5))
    height, width = mask.shape
    return 0 <= row < height and 0 <= col < width and bool(mask[row, col] > 0)
