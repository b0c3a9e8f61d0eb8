"""The public usgra-seg data set (real B-mode ultrasound of nerves with expert masks; CC-BY 4.0).

Read here, below every stage that uses it: the synthetic data's realism check (stage 00), the
shipped segmenter's training and its real-data check (stage 03). Scoring a segmenter on it needs
a model and lives with the segmenter (``ctslib.nerve.realcheck``).
"""

from __future__ import annotations

from pathlib import Path

from ctslib.common.errors import InputError

USGRA_ATTRIBUTION = "usgra-seg dataset, T. M. Kandaouroff (github.com/tmkand/usgra-seg), CC-BY 4.0"
"""Attribution to print wherever results on the usgra-seg data are shown (CC-BY 4.0)."""

USGRA_NERVE_LABEL = 1
"""Label of the nerve in usgra-seg's palette masks."""
USGRA_VESSEL_LABEL = 2
"""Label of the blood vessels (learnt only as a second, training-time output of the shipped segmenter)."""


def usgra_pairs(root: str | Path, subset: str = "train") -> tuple[list[Path], list[Path]]:
    """Image and mask paths of the usgra-seg data set (``subset`` "train": 204 pairs, "test": 40).

    Layout: ``dataset/images`` + ``dataset/masks`` (train), ``dataset/test/images`` +
    ``dataset/test/masks`` (test); a mask has its image's file name.

    Raises:
        InputError: unknown subset, missing folder, or an image without a mask.
    """
    base = {"train": Path(root) / "dataset", "test": Path(root) / "dataset" / "test"}.get(subset)
    if base is None:
        raise InputError(f"subset must be 'train' or 'test', got {subset!r}")
    images = sorted((base / "images").glob("*.png"))
    if not images:
        raise InputError("no PNG images found", file=base / "images")
    masks = [base / "masks" / p.name for p in images]
    missing = [m for m in masks if not m.exists()]
    if missing:
        raise InputError(f"{len(missing)} images have no mask, e.g. {missing[0].name}", file=base / "masks")
    return images, masks
