"""Reading the user's nerve masks: ``masks/<video stem>.npz`` or a folder of one image per source frame.

Masks are numbered by source frame, from 0 (the video's first frame). Label 1 is the nerve (a purely
0/255 image counts 255); other labels are ignored. Masks are returned at the video's own resolution:
stage 02 cuts them to the image region and resizes them like their frames (``ctslib.frames.prepare``).
Every malformed file raises ``InputError`` naming it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ctslib.common.errors import InputError
from ctslib.common.paths import DataLayout, canonical_stem, is_os_litter

MASK_IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".tif", ".tiff")
"""Image files read from a mask folder ``masks/<stem>/<source frame>.<ext>`` (any letter case)."""


def find_masks(layout: DataLayout, stem: str) -> Path | None:
    """The masks of video ``stem``: ``masks/<stem>.npz`` or the folder ``masks/<stem>/``, or None.

    Side and plane match in any letter case (as video names do); OS litter is ignored.
    """
    if not layout.masks_dir.is_dir():
        return None
    wanted = canonical_stem(stem)
    entries = [e for e in sorted(layout.masks_dir.iterdir()) if not is_os_litter(e.name)]
    npz = [e for e in entries if e.suffix.lower() == ".npz" and e.is_file() and canonical_stem(e.stem) == wanted]
    if npz:
        return npz[0]
    folders = [e for e in entries if e.is_dir() and canonical_stem(e.name) == wanted]
    return folders[0] if folders else None


def mask_indices(path: str | Path) -> list[int]:
    """Source-frame numbers that have a mask in an npz file or mask folder (no pixels decoded)."""
    path = Path(path)
    if path.is_dir():
        return sorted(index for index, _ in _mask_files(path))
    try:
        with np.load(path, allow_pickle=False) as data:
            if "index" not in data:
                raise InputError("mask file needs arrays 'index' and 'mask'", file=path)
            return sorted(int(i) for i in np.asarray(data["index"]).ravel())
    except (OSError, ValueError) as err:
        raise InputError(f"mask file cannot be read ({err})", file=path) from None


def check_mask_frames(indices: Sequence[int], n_frames: int, file: str | Path) -> None:
    """Masks must lie on frames of the video (0 ... n_frames - 1); else they would land on wrong frames.

    Raises:
        InputError naming the mask file, with a hint when the numbers look 1-based (1 ... n_frames).
    """
    outside = sorted(int(i) for i in indices if not 0 <= int(i) < n_frames)
    if not outside:
        return
    shown = f"{outside[:5]}{' ...' if len(outside) > 5 else ''}"
    message = f"masks for source frames {shown} but the video has frames 0-{n_frames - 1}"
    if min(indices) >= 1 and max(indices) == n_frames:
        message += "; the masks look numbered from 1: number them by source frame starting at 0 (first frame = 0)"
    raise InputError(message, file=file)


def nerve_mask(labels: np.ndarray) -> np.ndarray:
    """Binary nerve mask (0/1 uint8) of a label image: label 1 = nerve, other labels ignored.

    A purely binary 0/255 image (a common export of single-structure masks) counts 255 as nerve.
    """
    labels = np.asarray(labels)
    if labels.ndim == 3:  # an RGB(A) export of a label image: all channels carry the label
        labels = labels[..., 0]
    values = np.unique(labels)
    if 1 not in values and set(values.tolist()) <= {0, 255}:
        return (labels == 255).astype(np.uint8)
    return (labels == 1).astype(np.uint8)


def iter_masks(
    path: str | Path, source_shape: tuple[int, int], source_indices: Sequence[int] | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """The nerve masks of the requested source frames at source resolution, one at a time.

    Args:
        path: ``<stem>.npz`` (arrays ``index`` (N,) source-frame numbers and ``mask`` (N,H,W)) or a
            folder of ``<source frame number>.png``.
        source_shape: (H, W) of the video's frames; every mask must have exactly this size.
        source_indices: frames wanted (None = all masks in the file).

    Yields:
        ``(source_index, mask)`` with 0/1 uint8 masks (label 1, or 255 in a 0/255 image), for the
        requested frames that have one, in the file's order. Stage 02 cuts and resizes them like
        their frames (``ctslib.frames.prepare.read_frame_masks``).

    Raises:
        InputError naming the mask file when it is malformed or its size differs from the frame's.
    """
    path = Path(path)
    wanted = None if source_indices is None else set(int(i) for i in source_indices)
    for index, labels, where in _mask_items(path, wanted):
        if labels.shape[:2] != tuple(source_shape):
            raise InputError(
                f"mask size {labels.shape[1]}x{labels.shape[0]} differs from its video frame size "
                f"{source_shape[1]}x{source_shape[0]}",
                file=where,
            )
        yield index, nerve_mask(labels)


def _mask_files(folder: Path) -> list[tuple[int, Path]]:
    """``(source_index, file)`` of every mask image in a mask folder; OS litter ignored.

    Raises:
        InputError for a file that is not ``<source frame number>.png|.tif|.tiff`` (it would
        otherwise be ignored without a word).
    """
    files = []
    for entry in sorted(folder.iterdir()):
        if is_os_litter(entry.name):
            continue
        if entry.is_dir() or entry.suffix.lower() not in MASK_IMAGE_EXTENSIONS:
            raise InputError("not a mask image: expected <source frame number>.png (or .tif), e.g. 12.png", file=entry)
        if not entry.stem.isdigit():
            raise InputError("mask image names must be source frame numbers, e.g. 12.png", file=entry)
        files.append((int(entry.stem), entry))
    numbers = [i for i, _ in files]
    if len(set(numbers)) != len(numbers):
        twice = sorted({i for i in numbers if numbers.count(i) > 1})
        raise InputError(f"several mask images for source frame(s) {twice[:5]} (e.g. 7.png and 007.png)", file=folder)
    return files


def _mask_items(path: Path, wanted: set[int] | None) -> Iterator[tuple[int, np.ndarray, Path]]:
    """``(source_index, label image, file)`` of every mask in an npz file or mask image folder."""
    if path.is_dir():
        from PIL import Image

        for index, image_file in _mask_files(path):
            if wanted is None or index in wanted:
                try:
                    with Image.open(image_file) as image:
                        labels = np.array(image)  # palette PNGs give label indices, not colours
                except OSError as err:
                    raise InputError(f"mask cannot be read ({err})", file=image_file) from None
                yield index, labels, image_file
        return
    try:
        with np.load(path, allow_pickle=False) as data:
            if "index" not in data or "mask" not in data:
                raise InputError("mask file needs arrays 'index' and 'mask'", file=path)
            index, mask = np.asarray(data["index"]), data["mask"]
    except (OSError, ValueError) as err:
        raise InputError(f"mask file cannot be read ({err})", file=path) from None
    if index.ndim != 1 or mask.ndim != 3 or len(index) != len(mask):
        raise InputError(f"'index' must be (N,) and 'mask' (N,H,W); got {index.shape} and {mask.shape}", file=path)
    if not np.issubdtype(index.dtype, np.integer):
        raise InputError("'index' must hold integer source frame numbers", file=path)
    for i, source_index in enumerate(index.tolist()):
        if wanted is None or source_index in wanted:
            yield int(source_index), mask[i], path
