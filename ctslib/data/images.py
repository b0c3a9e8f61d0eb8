"""Reading images and masks from disk: 8-bit grayscale frames and binary 0/1 masks.

Every stage that reads a frame PNG or a nerve mask (stage 03's segmenter and crops, the synthetic
data's realism check, the usgra-seg reader) reads it here, so a palette mask or an RGB screenshot
is read alike everywhere.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ctslib.common.errors import InputError


def read_gray(path: str | Path) -> np.ndarray:
    """Read an image as 8-bit grayscale (H, W); RGB/RGBA/palette inputs are converted.

    Raises:
        InputError: the file is missing or not a readable image.
    """
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise InputError("missing or unreadable image", file=path)
    return image


def read_mask(path: str | Path, label: int | None = None) -> np.ndarray:
    """Read a mask as a binary uint8 (H, W) array of 0/1.

    Args:
        path: PNG mask. The pipeline's masks are 0/255 grayscale; usgra-seg's are palette
            ('P') label maps, read through PIL so the *palette indices* (not colours) come back.
        label: keep pixels equal to this label; ``None`` keeps every non-zero pixel.

    Raises:
        InputError: the file is missing or not a readable image.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            labels = np.asarray(img if img.mode in ("P", "L", "1", "I", "I;16") else img.convert("L"))
    except (FileNotFoundError, UnidentifiedImageError, OSError) as exc:
        raise InputError(f"missing or unreadable mask ({exc.__class__.__name__})", file=path) from exc
    if labels.ndim != 2:
        raise InputError(f"mask must be a single-channel image, got shape {labels.shape}", file=path)
    selected = labels > 0 if label is None else labels == label
    return selected.astype(np.uint8)
