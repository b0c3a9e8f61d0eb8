"""Stage 02's frames: the 5 fps source frames of a video as ``FRAME_SIZE`` 8-bit grey squares, and their masks.

The paper fed 256 x 256 grayscale images to its CNNs. Per video (``extract_video``): the frames a
``TARGET_FPS`` sampling takes (``ctslib.data.timing``) are decoded as grey (``ctslib.data.video``),
coloured overlays inpainted where asked, cut to the image region (screen captures,
``ctslib.frames.region``), burned-in text blacked out, and resized (anisotropically when the region is
not square, as in the paper), with the pixel spacing that results (``resized_spacing``). Nerve masks
(``ctslib.data.masks``) are cut to the same region and resized with nearest-neighbour
(``read_frame_masks``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from ctslib.data.masks import iter_masks
from ctslib.data.timing import TARGET_FPS
from ctslib.data.video import VideoHeader, colour_frame, iter_source_frames, source_gray
from ctslib.frames.region import Region, blank_boxes, inpaint_overlay, overlay_mask

FRAME_SIZE: int = 256
"""Side of the square grayscale frames handed to later stages (the paper: 256 x 256)."""


# -- resizing ------------------------------------------------------------------------------------


def resize_frame(gray: np.ndarray, size: int = FRAME_SIZE) -> np.ndarray:
    """Resize to ``size`` x ``size`` (area averaging when shrinking, bilinear when enlarging)."""
    if gray.shape[:2] == (size, size):
        return gray
    shrinking = gray.shape[0] >= size and gray.shape[1] >= size
    return cv2.resize(gray, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def resize_mask(mask: np.ndarray, size: int = FRAME_SIZE) -> np.ndarray:
    """Resize a label mask to ``size`` x ``size`` with nearest-neighbour (labels never blend)."""
    if mask.shape[:2] == (size, size):
        return mask
    return cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST)


def resized_spacing(spacing_mm: tuple[float, float], source_shape: tuple[int, int], size: int = FRAME_SIZE) -> tuple[float, float]:
    """``(row_mm, col_mm)`` spacing of a frame of ``source_shape`` (H, W) after resizing to ``size``."""
    return spacing_mm[0] * source_shape[0] / size, spacing_mm[1] * source_shape[1] / size


# -- one video's frames ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ExtractedVideo:
    """The frames one video contributes: a table and the matching ``FRAME_SIZE`` images."""

    header: VideoHeader
    frames: pd.DataFrame  # sample_index, source_index, time_s, spacing_row_mm, spacing_col_mm
    images: np.ndarray = field(repr=False)  # (N, FRAME_SIZE, FRAME_SIZE) uint8
    region: Region | None = None

    @property
    def source_shape(self) -> tuple[int, int]:
        return self.header.height, self.header.width


def blank_text_bands(gray: np.ndarray, bands: Sequence[Sequence[float]]) -> np.ndarray:
    """Black out horizontal bands given as (top, bottom) fractions of the image height.

    Scanner screen captures burn patient name, date and settings into bands of the image; blanking
    them before any frame is saved keeps that text out of frames, crops and reports.
    """
    out = gray.copy()
    height = out.shape[0]
    for top, bottom in bands:
        if not 0.0 <= top < bottom <= 1.0:
            raise ValueError(f"a text band is (top, bottom) with 0 <= top < bottom <= 1, got {(top, bottom)}")
        out[int(np.floor(top * height)):int(np.ceil(bottom * height))] = 0
    return out


def prepare_frame(
    raw: np.ndarray,
    header: VideoHeader,
    frame_size: int = FRAME_SIZE,
    text_bands: Sequence[Sequence[float]] = (),
    *,
    region: Region | None = None,
    text_boxes: Sequence[tuple[int, int, int, int]] = (),
    mask_overlay: bool = False,
) -> np.ndarray:
    """One decoded frame -> 8-bit grayscale ``frame_size`` square (checks its size against the header).

    In order: colour overlays inpainted (``mask_overlay``, ``ctslib.frames.region.inpaint_overlay``); the
    frame cut to the image ``region`` (screen captures); ``text_bands`` (fractions of the region's
    height, see ``blank_text_bands``) and ``text_boxes`` (pixels of the region) blacked out; resize.
    """
    gray = source_gray(raw, header)
    if mask_overlay:
        gray = inpaint_overlay(gray, overlay_mask(colour_frame(raw, header), header.channel_order))
    if region is not None:
        gray = region.crop(gray)
    if text_bands:
        gray = blank_text_bands(gray, text_bands)
    if text_boxes:
        gray = blank_boxes(gray, text_boxes)
    return resize_frame(gray, frame_size)


def extract_video(
    header: VideoHeader,
    *,
    target_fps: float = TARGET_FPS,
    frame_size: int = FRAME_SIZE,
    text_bands: Sequence[Sequence[float]] = (),
    region: Region | None = None,
    text_boxes: Sequence[tuple[int, int, int, int]] = (),
    mask_overlay: bool = False,
) -> ExtractedVideo:
    """Decode the ``target_fps`` frames of a probed video as ``frame_size`` 8-bit grayscale images.

    ``region``: the image region the frames are cut to (``ctslib.frames.region.find_region``); the pixel
    spacing of the output is that of the region resized to ``frame_size``. ``text_bands`` (height
    fractions of the region), ``text_boxes`` (pixels of the region) and ``mask_overlay``: see
    ``prepare_frame``.
    """
    schedule = header.schedule(target_fps)
    images = np.empty((len(schedule), frame_size, frame_size), dtype=np.uint8)
    row_of = {int(s): i for i, s in enumerate(schedule["source_index"])}
    for index, raw in iter_source_frames(header, schedule["source_index"].tolist()):
        images[row_of[index]] = prepare_frame(raw, header, frame_size, text_bands, region=region,
                                              text_boxes=text_boxes, mask_overlay=mask_overlay)
    shape = region.size if region is not None else (header.height, header.width)
    row_mm, col_mm = resized_spacing(header.pixel_spacing_mm, shape, frame_size)
    frames = schedule.assign(spacing_row_mm=row_mm, spacing_col_mm=col_mm)
    return ExtractedVideo(header=header, frames=frames.reset_index(drop=True), images=images, region=region)


def read_frame_masks(
    path: str | Path,
    source_shape: tuple[int, int],
    source_indices: Sequence[int] | None = None,
    *,
    frame_size: int = FRAME_SIZE,
    region: Region | None = None,
) -> dict[int, np.ndarray]:
    """Nerve masks of the requested source frames, cut to ``region`` like their frames, resized to ``frame_size`` (nearest-neighbour).

    Returns:
        ``{source_index: mask}`` with 0/1 uint8 masks, for the requested frames that have one
        (``ctslib.data.masks.iter_masks`` reads and checks them).
    """
    return {index: resize_mask(region.crop(nerve) if region is not None else nerve, frame_size)
            for index, nerve in iter_masks(path, source_shape, source_indices)}
