"""Screen captures and scanner exports: the ultrasound image region, burned-in text, colour overlays.

A screen capture or a scanner's video export shows the B-mode image inside a user interface:
borders, text panels with the patient's name and the exam settings, colour bars, logos. Those must
be cut away before QC, segmentation and cropping (QC would judge the UI, the segmenter would see
text, and reports would show it). This module finds, per video, from a few of its frames:

* ``find_region``: the image region. In a video the B-mode image *moves* (speckle, the probe in a
  hand) while the UI stays still, so the region is the bounding box of the largest moving area.
  The frame is cut to it only when there is still, non-black content outside it (UI); a video that
  is B-mode edge to edge (the synthetic default, most DICOM cines) keeps its full frame, and so do
  dark rows at the bottom of an image (deep tissue without echo) since black is not UI. A single
  frame has no motion: the image is what is left when the flat UI background reaching the frame's
  border is taken away (``single_frame_area``). Edge columns that hardly move (or are flat) are
  trimmed (``trim_edges``): a settings column right beside the image ("MI 0.8") is not image.
  Dim text on a black UI counts as UI too (``TEXT_SHARE``).
* ``find_text_boxes``: burned-in text *inside* the region (an exam id, a date, a depth scale): small
  bright glyphs that stay still while the image moves, lined up in rows. Found boxes are blacked out
  in every frame (``blank_boxes``) before any frame is saved, so no report PNG shows them.
* ``overlay_mask``: coloured overlays (nerve contours, calipers, Doppler colour): saturated
  coloured pixels. Detected, they are reported; on request they are inpainted from the grey
  image around them (``inpaint_overlay``) so the CNN does not learn the sonographer's marks.

The pixel spacing of a frame belongs to the stored source pixels, so cutting to a region changes
only the shape that is resized (``ctslib.data.video.resized_spacing`` is given the region's shape).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

NOISE_LEVELS: float = 3.0
"""Temporal standard deviation (grey levels) up to which a pixel counts as still (codec noise)."""

UI_LEVEL: float = 24.0
"""Mean grey level above which still content outside the moving area counts as UI, not background."""

UI_SHARE: float = 0.005
"""Share of the frame that still, non-black content outside the moving area must reach to cut."""

MIN_REGION_SHARE: float = 0.1
"""A moving area smaller than this share of the frame is not taken as the image region (scanner screens
give the image a third to two thirds of the screen; a small moving thing is a cursor, a clock, a thumbnail)."""

FLAT_LEVELS: float = 1.0
"""Local standard deviation (grey levels, 5 x 5 pixels) up to which a single frame's pixel is flat:
UI background is flat, B-mode speckle (even dark tissue) is not."""

TEXT_SHARE: float = 5e-4
"""Share of the frame that bright still strokes (text such as "MI 0.8") outside the image must reach
to count as UI on their own, on a background too dark for ``UI_LEVEL``."""

QUIET_SHARE: float = 0.8
"""Share of the pixels outside a found region that must be still (or flat, in one frame) for text there
to count as UI: a UI column is still around its text, an image strip is not."""

EDGE_KEEP: float = 0.5
"""An edge column of a found region is trimmed while its share of moving (or textured) pixels is below
this fraction of the region's median share: a UI column beside the image flickers only where its text
is (lossy codecs), the image moves in most of its pixels."""

OVERLAY_SATURATION: float = 0.35
"""HSV saturation (0-1) above which a bright pixel is a colour overlay (B-mode is grey)."""

OVERLAY_MIN_SHARE: float = 2e-4
"""Share of the region's pixels that must be coloured for a video to count as having overlays."""


@dataclass(frozen=True)
class Region:
    """The image region of a video's frames: rows ``y0:y1``, columns ``x0:x1`` of a ``shape`` frame."""

    x0: int
    y0: int
    x1: int
    y1: int
    shape: tuple[int, int]
    method: str = "full frame"

    @classmethod
    def full(cls, shape: tuple[int, int], method: str = "full frame") -> "Region":
        """The whole frame."""
        return cls(0, 0, int(shape[1]), int(shape[0]), (int(shape[0]), int(shape[1])), method)

    @property
    def is_cropped(self) -> bool:
        """True when the region is smaller than the frame."""
        return (self.x0, self.y0, self.x1, self.y1) != (0, 0, self.shape[1], self.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the region."""
        return self.y1 - self.y0, self.x1 - self.x0

    def crop(self, image: np.ndarray) -> np.ndarray:
        """The region of an image of the frame's shape (any trailing channels kept)."""
        if image.shape[:2] != tuple(self.shape):
            raise ValueError(f"image of shape {image.shape[:2]} is not a frame of shape {self.shape}")
        return image[self.y0:self.y1, self.x0:self.x1]


def to_float_stack(frames: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """Grey frames (N, H, W) as float32."""
    stack = np.asarray(frames, dtype=np.float32)
    if stack.ndim == 2:
        stack = stack[None]
    if stack.ndim != 3:
        raise ValueError(f"expected grey frames (N, H, W), got shape {stack.shape}")
    return stack


def frame_quantiles(frames: Sequence[np.ndarray] | np.ndarray, quantiles: Sequence[float]) -> list[np.ndarray]:
    """Per-pixel quantiles over frames (nearest order statistic; one ``np.partition``, fast on uint8)."""
    stack = np.asarray(frames)
    if stack.ndim == 2:
        stack = stack[None]
    n = len(stack)
    ranks = sorted({min(n - 1, max(0, int(round(q * (n - 1))))) for q in quantiles})
    parted = np.partition(stack, ranks, axis=0)
    return [parted[min(n - 1, max(0, int(round(q * (n - 1)))))] for q in quantiles]


def distinct_frames(frames: np.ndarray, min_change: float = 1.0) -> np.ndarray:
    """The frames that differ from the last one kept by more than ``min_change`` grey levels on average.

    A frozen display repeats a frame: repeats would make the image look still, like text.
    """
    if frames.ndim != 3 or len(frames) == 0:
        return frames
    kept = [0]
    for i in range(1, len(frames)):
        if np.abs(frames[i].astype(np.int16) - frames[kept[-1]]).mean() > min_change:
            kept.append(i)
    return frames[kept]


def local_std(image: np.ndarray, size: int = 7) -> np.ndarray:
    """Standard deviation of grey levels in a ``size`` x ``size`` window (texture, speckle)."""
    x = image.astype(np.float32)
    mean = cv2.blur(x, (size, size))
    return np.sqrt(np.maximum(cv2.blur(x * x, (size, size)) - mean * mean, 0))


def _odd(value: float) -> int:
    return max(3, int(value) // 2 * 2 + 1)


def _largest_component(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """The largest 8-connected component of a binary mask, and its area in pixels."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return np.zeros_like(mask, dtype=bool), 0
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return labels == best, int(stats[best, cv2.CC_STAT_AREA])


def moving_area(frames: Sequence[np.ndarray] | np.ndarray, noise_levels: float = NOISE_LEVELS) -> tuple[np.ndarray, np.ndarray, str]:
    """Pixels that belong to the B-mode image: moving over the frames, or not flat UI in a single frame.

    Returns:
        (area mask, per-pixel still map: True where the pixel changes by no more than codec noise,
        method in words).
    """
    stack = to_float_stack(frames)
    side = min(stack.shape[1:])
    close = np.ones((_odd(0.03 * side),) * 2, np.uint8)
    if len(stack) >= 3:
        activity = stack.std(axis=0)
        method = "moving image"
        active = (activity > max(noise_levels, 0.05 * float(np.quantile(activity, 0.9)))).astype(np.uint8)
        cleaned = cv2.morphologyEx(cv2.morphologyEx(active, cv2.MORPH_CLOSE, close), cv2.MORPH_OPEN,
                                   np.ones((_odd(0.015 * side),) * 2, np.uint8))
    else:
        area, activity = single_frame_area(stack[0])
        return area, activity <= noise_levels, "textured area"
    area, _ = _largest_component(cleaned > 0)
    return area, activity <= noise_levels, method


def single_frame_area(image: np.ndarray, flat_levels: float = FLAT_LEVELS) -> tuple[np.ndarray, np.ndarray]:
    """The image area of one frame (no motion to go by), and its texture map (``local_std``, 5 x 5).

    UI background is flat and reaches the frame's border; the B-mode image is not flat, even where it
    is dark (speckle). The area is the largest region left once flat pixels connected to the border
    are taken away and a small opening has cut off text glyphs and thin lines touching the image.
    Black padding at the image's own edge counts as background (it carries no image).
    """
    texture = local_std(image, 5)
    flat = (texture <= flat_levels).astype(np.uint8)
    _, labels = cv2.connectedComponents(flat, connectivity=8)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    background = np.isin(labels, edge[edge > 0])  # label 0 = textured pixels
    side = min(image.shape[:2])
    candidate = cv2.morphologyEx((~background).astype(np.uint8), cv2.MORPH_OPEN,
                                 np.ones((_odd(0.04 * side),) * 2, np.uint8))
    area, _ = _largest_component(candidate > 0)
    return area, texture


def trim_edges(active: np.ndarray, box: tuple[int, int, int, int], keep: float = EDGE_KEEP) -> tuple[int, int, int, int]:
    """``box`` (x0, y0, x1, y1) with its edge *columns* of few ``active`` pixels trimmed (see ``EDGE_KEEP``).

    Only columns: scanners put settings panels beside the image, and the image's own edge rows are
    rightly less active (the bright, still skin line on top; echo-free depth at the bottom).
    """
    x0, y0, x1, y1 = box
    cols = active[y0:y1, x0:x1].mean(axis=0)
    if not cols.size:
        return box
    inside = np.flatnonzero(cols >= keep * float(np.median(cols)))
    return (x0 + int(inside[0]), y0, x0 + int(inside[-1]) + 1, y1) if inside.size else box


def _strokes(mean: np.ndarray, contrast: float = 50.0) -> np.ndarray:
    """Bright thin strokes (text, tick marks) of a grey image: its white top-hat above ``contrast``."""
    size = _odd(max(mean.shape) * 0.02)
    tophat = cv2.morphologyEx(np.clip(mean, 0, 255).astype(np.uint8), cv2.MORPH_TOPHAT, np.ones((size, size), np.uint8))
    return tophat > contrast


def find_region(
    frames: Sequence[np.ndarray] | np.ndarray,
    *,
    noise_levels: float = NOISE_LEVELS,
    ui_level: float = UI_LEVEL,
    ui_share: float = UI_SHARE,
    min_share: float = MIN_REGION_SHARE,
) -> Region:
    """The image region of a video from a few of its grey frames (see the module docstring).

    Args:
        frames: grey frames (N, H, W) of one video at source resolution (N >= 3 for motion; one
            frame falls back to texture).
        noise_levels: temporal standard deviation that still counts as no motion.
        ui_level: mean grey level from which still content outside the image is UI.
        ui_share: share of the frame that such UI must cover before the frame is cut.
        min_share: smallest share of the frame the image region may have.

    Returns:
        The region; ``Region.full`` (method "full frame") when the frame is image edge to edge, no
        UI is found around the image, or no plausible image area is found.
    """
    stack = to_float_stack(frames)
    shape = stack.shape[1:]
    area, still, method = moving_area(stack, noise_levels)
    if area.sum() < min_share * area.size and len(stack) >= 3:  # hardly any motion: texture of the median frame
        area, _, method = moving_area(frame_quantiles(np.asarray(frames), (0.5,))[0], noise_levels)
        still = stack.std(axis=0) <= noise_levels
    if area.sum() < min_share * area.size:
        return Region.full(shape, "full frame (no image area found)")
    rows, cols = np.flatnonzero(area.any(axis=1)), np.flatnonzero(area.any(axis=0))
    box = int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1
    # the image moves (or is textured) in most of its pixels; an edge column that hardly does is UI
    # that a lossy codec made flicker around its text, or that the area's morphology took in
    active = ~still if len(stack) >= 3 and method == "moving image" else local_std(stack[len(stack) // 2], 5) > FLAT_LEVELS
    x0, y0, x1, y1 = trim_edges(active & area_hull(area, box), box)
    outside = np.ones(shape, bool)
    outside[y0:y1, x0:x1] = False
    mean = stack.mean(axis=0)
    still_here = still if len(stack) >= 3 else np.ones(shape, bool)
    ui = outside & (mean > ui_level) & still_here
    # text on a background too dark to count by level; only where the outside is UI-like (still, or
    # flat in one frame): bright speckle in an image strip is no text
    quiet = still if len(stack) >= 3 else local_std(stack[0], 5) <= FLAT_LEVELS
    text = outside & _strokes(mean) & still_here
    is_text = outside.any() and quiet[outside].mean() >= QUIET_SHARE and text.sum() >= TEXT_SHARE * text.size
    if ui.sum() < ui_share * ui.size and not is_text:
        return Region.full(shape)
    return Region(x0, y0, x1, y1, (int(shape[0]), int(shape[1])), method)


def area_hull(area: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The rows of ``area`` filled between their leftmost and rightmost pixel (inside ``box``): holes of
    the image (echo-free tissue) count as image when edge strips are judged, gaps beside it do not."""
    x0, y0, x1, y1 = box
    hull = np.zeros_like(area, dtype=bool)
    inside = area[y0:y1, x0:x1]
    has = inside.any(axis=1)
    first = np.argmax(inside, axis=1)
    last = inside.shape[1] - 1 - np.argmax(inside[:, ::-1], axis=1)
    for r in np.flatnonzero(has):
        hull[y0 + r, x0 + first[r]:x0 + last[r] + 1] = True
    return hull


# -- burned-in text ------------------------------------------------------------------------------


def find_text_boxes(
    frames: Sequence[np.ndarray] | np.ndarray,
    *,
    min_glyphs: int = 3,
    contrast: float = 50.0,
    spread: float = 25.0,
) -> list[tuple[int, int, int, int]]:
    """Boxes ``(x0, y0, x1, y1)`` of burned-in text in grey frames of one video (already cut to the region).

    Text is found as rows of at least ``min_glyphs`` small bright strokes that stay bright in every
    frame while the image around them moves: the white top-hat (above ``contrast`` grey levels) of
    the frames' per-pixel 10 % quantile, where moving speckle has gone dark and burned-in glyphs
    have not (lossy video re-codes the glyphs with the image around them, so they are not exactly
    still, but they stay bright). With fewer than three frames, or in a video that hardly moves
    (nothing to tell still text from still anatomy), nothing is found: set ``TEXT_BANDS`` then.
    """
    raw = distinct_frames(np.asarray(frames))
    if raw.ndim != 3 or len(raw) < 3:
        return []
    height, width = raw.shape[1:]
    moving_level = float(np.median(to_float_stack(raw).std(axis=0)))
    if moving_level < NOISE_LEVELS:
        return []
    low, high = (q.astype(np.float32) for q in frame_quantiles(raw, (0.1, 0.9)))
    stroke = _odd(max(height, width) * 0.02)
    tophat = cv2.morphologyEx(low.astype(np.uint8), cv2.MORPH_TOPHAT, np.ones((stroke, stroke), np.uint8)).astype(np.float32)
    # bright in every frame and nearly constant: anatomy that stays bright still flickers with speckle
    candidate = ((tophat > contrast) & (high - low < spread)).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(candidate, connectivity=8)
    glyphs = np.zeros_like(candidate)
    heights = []
    for i in range(1, count):
        w, h, a = stats[i, cv2.CC_STAT_WIDTH], stats[i, cv2.CC_STAT_HEIGHT], stats[i, cv2.CC_STAT_AREA]
        # a glyph: small, about as tall as wide or taller (pieces of a bright curve are long and flat)
        if 5 <= h <= 0.1 * height and w <= min(0.1 * width, 2.5 * h) and a >= 6:
            glyphs[labels == i] = 1
            heights.append(h)
    if len(heights) < min_glyphs:
        return []
    gap = _odd(1.5 * float(np.median(heights)))
    lines = cv2.dilate(glyphs, np.ones((3, gap), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(lines, connectivity=8)
    boxes = []
    for i in range(1, count):
        inside = glyphs[labels == i].sum()
        n_glyphs = cv2.connectedComponents((glyphs * (labels == i)).astype(np.uint8))[0] - 1
        if inside and n_glyphs >= min_glyphs:
            x, y, w, h = (int(v) for v in stats[i, :4])
            # generous margins: a glyph that lossy coding made flicker may sit just beside the line found
            across, along = max(2, h // 2), 2 * h
            boxes.append((max(0, x - along), max(0, y - across), min(width, x + w + along), min(height, y + h + across)))
    return boxes


def blank_boxes(image: np.ndarray, boxes: Sequence[tuple[int, int, int, int]]) -> np.ndarray:
    """A copy of ``image`` with each box ``(x0, y0, x1, y1)`` set to black."""
    out = image.copy()
    for x0, y0, x1, y1 in boxes:
        out[y0:y1, x0:x1] = 0
    return out


# -- colour overlays -----------------------------------------------------------------------------


def overlay_mask(raw: np.ndarray, channel_order: str = "bgr", saturation: float = OVERLAY_SATURATION) -> np.ndarray:
    """Pixels of a colour frame that carry a coloured overlay (saturated and not dark); False for grey frames."""
    if raw.ndim != 3 or raw.shape[2] < 3:
        return np.zeros(raw.shape[:2], bool)
    rgb = raw[..., :3]
    if rgb.dtype != np.uint8:
        rgb = np.clip(rgb.astype(np.float64) / max(float(rgb.max()), 1.0) * 255, 0, 255).astype(np.uint8)
    code = cv2.COLOR_BGR2HSV if channel_order.lower() == "bgr" else cv2.COLOR_RGB2HSV
    hsv = cv2.cvtColor(np.ascontiguousarray(rgb), code)
    return (hsv[..., 1] > saturation * 255) & (hsv[..., 2] > 64)


def overlay_share(raws: Sequence[np.ndarray], region: Region | None = None, channel_order: str = "bgr") -> float:
    """Mean share of coloured-overlay pixels in the region over some colour frames (0 for grey video)."""
    shares = []
    for raw in raws:
        mask = overlay_mask(raw, channel_order)
        if region is not None:
            mask = region.crop(mask)
        shares.append(float(mask.mean()) if mask.size else 0.0)
    return float(np.mean(shares)) if shares else 0.0


def inpaint_overlay(gray: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Fill overlay pixels (mask, dilated by one pixel) from the grey image around them (Telea inpainting)."""
    if not mask.any():
        return gray
    grown = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8))
    return cv2.inpaint(gray, grown, 3, cv2.INPAINT_TELEA)


# -- figure --------------------------------------------------------------------------------------


def region_preview(median_gray: np.ndarray, region: Region, text_boxes: Sequence[tuple[int, int, int, int]] = ()) -> np.ndarray:
    """A privacy-safe picture of a detected region: the image inside it (text boxes blacked out),
    everything outside replaced by flat grey, so no UI text reaches a report figure."""
    canvas = np.full(median_gray.shape[:2], 90, np.uint8)
    inside = blank_boxes(region.crop(median_gray), text_boxes)
    canvas[region.y0:region.y1, region.x0:region.x1] = inside
    return canvas


def plot_regions(previews: Sequence[tuple[str, np.ndarray, Region]], columns: int = 4):
    """Detected image regions (yellow box) of some videos, outside the region shown as flat grey."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    n = max(len(previews), 1)
    cols = min(columns, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False, layout="constrained")
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (label, image, region) in zip(axes.ravel(), previews):
        ax.imshow(image, cmap="gray", vmin=0, vmax=255)
        ax.add_patch(Rectangle((region.x0 - 0.5, region.y0 - 0.5), region.x1 - region.x0, region.y1 - region.y0,
                               fill=False, edgecolor="yellow", linewidth=1.5))
        h, w = region.size
        ax.set_title(f"{label}\n{region.method}: {w}x{h} of {region.shape[1]}x{region.shape[0]}", fontsize=7)
    return fig
