"""Frame extraction: acquisition settings, 5 fps sampling by timestamp, video/DICOM decoding, masks.

The paper extracted frames "at 5 fps with OpenCV" and fed 256 x 256 grayscale images to its CNNs.
This module makes each of those steps explicit and testable:

* ``read_acquisition``: ``acquisition.json`` (re-exported from ``ctslib.data.acquisition``, its one reader);
* ``sample_frames``: which source frames a ``TARGET_FPS`` sampling takes, for any source rate
  (30, 25, 24, 10, 29.97 ... or a DICOM frame-time vector), as a pure function of the frame times;
* ``probe_video`` / ``extract_video``: decode sequentially (OpenCV ``grab()`` for frames we skip,
  ``retrieve()`` only for frames we keep; DICOM cine through pydicom, decoding only the kept frames);
* ``to_gray8`` / ``resize_frame``: grayscale 8-bit, ``FRAME_SIZE`` x ``FRAME_SIZE``, and the pixel
  spacing that results (the resize is anisotropic when the source is not square, as in the paper);
  ``prepare_frame`` first cuts a screen capture to its image region (``ctslib.frames.region``) and blanks
  burned-in text, and ``resized_spacing`` is given the region's shape;
* ``read_masks``: nerve masks of the source frames (npz, or a folder of PNG/TIFF images numbered by
  source frame from 0), cut to the same region, resized with nearest-neighbour.

File names: side, plane and extension in any letter case, ``.mp4 .avi .dcm .mov .m4v .mkv``; OS
litter ignored (``ctslib.common.paths``). DICOM: grey, RGB, YBR and PALETTE COLOR (``DICOM_PHOTOMETRIC``).

Timing precedence (docs/pipeline.md): DICOM timing tags, then the container's frame rate, then the
``fps`` of ``acquisition.json`` (per-video override first). Spacing precedence: DICOM
``PixelSpacing`` / ultrasound regions, then ``acquisition.json`` (per-video override first).

Privacy: from a DICOM file only pixel data, pixel spacing and frame timing are read into the objects
returned here; patient and study tags never leave ``probe_video``.

Every unreadable input raises ``ctslib.common.errors.InputError`` naming the file.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from ctslib.data.acquisition import (  # noqa: F401  (re-exported: stage 02 and the validator import them from here)
    ACQUISITION_OVERRIDE_KEYS,
    Acquisition,
    VideoSettings,
    parse_acquisition,
    read_acquisition,
)
from ctslib.common.errors import InputError
from ctslib.common.handoff import write_png  # the one atomic PNG writer (re-exported for stage 02)
from ctslib.common.paths import DataLayout, canonical_stem, is_os_litter
from ctslib.frames.region import Region, blank_boxes, inpaint_overlay, overlay_mask

TARGET_FPS: float = 5.0
"""Frames per second extracted from every video (the paper: 5 fps)."""

FRAME_SIZE: int = 256
"""Side of the square grayscale frames handed to later stages (the paper: 256 x 256)."""

TIME_TOLERANCE_S: float = 1e-6
"""Two times closer than this are equal (guards float round-off in ``k / fps``)."""

MAX_PLAUSIBLE_FPS: float = 1000.0
"""A container frame rate above this (or <= 0, NaN) is treated as missing."""

# -- acquisition.json: one reader, ``ctslib.data.acquisition`` (re-exported here for stage 02) ---------------


# -- sampling ------------------------------------------------------------------------------------


def uniform_times(n_frames: int, fps: float) -> np.ndarray:
    """Timestamps (s) of ``n_frames`` frames at a constant rate: frame ``i`` starts at ``i / fps``."""
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    return np.arange(n_frames, dtype=float) / float(fps)


def sample_frames(source_times: Sequence[float] | np.ndarray, target_fps: float = TARGET_FPS) -> pd.DataFrame:
    """Which source frames a ``target_fps`` sampling takes, chosen by timestamp.

    Target times are ``k / target_fps`` for ``k = 0, 1, ...`` up to the last source frame's time;
    each takes the source frame nearest in time (ties go to the earlier frame). From 30 fps this is
    every 6th frame, from 25 fps every 5th, from 24 fps frames 0, 5, 10, 14, 19, 24, ...; from a
    source slower than ``target_fps`` a source frame is never taken twice (the later target times
    that fall on it are dropped, so ``sample_index`` then has gaps).

    Args:
        source_times: non-decreasing start time (s) of every source frame, first usually 0.
        target_fps: sampling rate.

    Returns:
        One row per extracted frame: ``sample_index`` (k, the frame number at ``target_fps``),
        ``source_index`` (0-based frame number in the source) and ``time_s`` (that source frame's
        own timestamp, so it is exact even when it differs from ``k / target_fps``).
    """
    times = np.asarray(source_times, dtype=float)
    if times.ndim != 1:
        raise ValueError("source_times must be one-dimensional")
    if target_fps <= 0:
        raise ValueError(f"target_fps must be positive, got {target_fps}")
    empty = pd.DataFrame({"sample_index": pd.Series(dtype=int), "source_index": pd.Series(dtype=int), "time_s": pd.Series(dtype=float)})
    if times.size == 0:
        return empty
    if np.any(np.diff(times) < 0) or not np.all(np.isfinite(times)):
        raise ValueError("source_times must be finite and non-decreasing")
    start = times[0]
    n_targets = int(math.floor((times[-1] - start) * target_fps + TIME_TOLERANCE_S)) + 1
    targets = start + np.arange(n_targets) / target_fps
    after = np.clip(np.searchsorted(times, targets, side="left"), 0, times.size - 1)
    before = np.clip(after - 1, 0, times.size - 1)
    # Nearest frame; ``<=`` sends ties (within tolerance) to the earlier frame.
    take_before = np.abs(targets - times[before]) <= np.abs(times[after] - targets) + TIME_TOLERANCE_S
    source_index = np.where(take_before, before, after)
    sample_index = np.arange(n_targets)
    first = np.concatenate([[True], source_index[1:] != source_index[:-1]])
    return pd.DataFrame(
        {
            "sample_index": sample_index[first].astype(int),
            "source_index": source_index[first].astype(int),
            "time_s": times[source_index[first]],
        }
    )


# -- grayscale + resize --------------------------------------------------------------------------


def to_gray8(frame: np.ndarray, *, channel_order: str = "bgr", bits_stored: int | None = None) -> np.ndarray:
    """Convert a decoded frame to 8-bit grayscale.

    Rule for more than 8 bits: a fixed linear rescale of the stored bit depth,
    ``round(v * 255 / (2**bits_stored - 1))`` (``bits_stored`` defaults to the dtype's width), never a
    per-frame min-max stretch, so brightness stays comparable between frames (QC relies on it).
    Floats are taken as [0, 1]. Colour frames (``channel_order`` "bgr" from OpenCV, "rgb" from DICOM;
    a 4th alpha channel is dropped) use the ITU-R BT.601 luma weights of ``cv2.cvtColor``.
    """
    array = np.asarray(frame)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 3:
        if array.shape[2] not in (3, 4):
            raise ValueError(f"unsupported channel count {array.shape[2]}")
        array = array[:, :, :3]
    elif array.ndim != 2:
        raise ValueError(f"a frame must be HxW or HxWxC, got shape {array.shape}")
    array = _to_uint8(array, bits_stored)
    if array.ndim == 3:
        code = {"bgr": cv2.COLOR_BGR2GRAY, "rgb": cv2.COLOR_RGB2GRAY}[channel_order.lower()]
        array = cv2.cvtColor(np.ascontiguousarray(array), code)
    return array


def _to_uint8(array: np.ndarray, bits_stored: int | None) -> np.ndarray:
    """The 8-bit rule of ``to_gray8`` (values outside the range are clipped)."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.floating):
        return np.clip(np.rint(array * 255.0), 0, 255).astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer):
        bits = bits_stored or np.iinfo(array.dtype).bits
        if bits <= 8:
            return np.clip(array, 0, 255).astype(np.uint8)
        scale = 255.0 / float(2**bits - 1)
        return np.clip(np.rint(array.astype(np.float64) * scale), 0, 255).astype(np.uint8)
    raise ValueError(f"unsupported pixel type {array.dtype}")


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


# -- probing -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoHeader:
    """What extraction needs to know about one video file (pixels, spacing and timing only)."""

    path: Path
    kind: str  # "opencv" or "dicom"
    n_frames: int
    height: int
    width: int
    source_times: np.ndarray = field(repr=False)
    timing_source: str
    pixel_spacing_mm: tuple[float, float]
    spacing_source: str
    codec: str = ""
    bits_stored: int | None = None
    channel_order: str = "bgr"
    invert: bool = False  # DICOM MONOCHROME1: low values are bright
    photometric: str = ""  # DICOM PhotometricInterpretation ("" for OpenCV videos)
    palette: np.ndarray | None = field(default=None, repr=False)  # PALETTE COLOR: (entries, 3) uint8 RGB

    @property
    def fps(self) -> float:
        """Mean frame rate over the video (exact for constant-rate sources)."""
        if self.n_frames < 2 or self.source_times[-1] <= self.source_times[0]:
            return float("nan")
        return (self.n_frames - 1) / float(self.source_times[-1] - self.source_times[0])

    def schedule(self, target_fps: float = TARGET_FPS) -> pd.DataFrame:
        """The frames a ``target_fps`` sampling takes from this video (see ``sample_frames``)."""
        return sample_frames(self.source_times, target_fps)


def probe_video(path: str | Path, settings: VideoSettings) -> VideoHeader:
    """Open a video (``.mp4``/``.avi`` through OpenCV, ``.dcm`` through pydicom) and read its header.

    For OpenCV files the first frame is also decoded, so an unsupported codec fails here, before any
    output is written. Raises InputError naming the file for a missing, empty, corrupt or
    undecodable file, a zero-frame video, or one without any frame rate.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("video file not found", file=path)
    if path.stat().st_size == 0:
        raise InputError("video file is empty (0 bytes)", file=path)
    if path.suffix.lower() == ".dcm":
        return _probe_dicom(path, settings)
    return _probe_opencv(path, settings)


def _fourcc(capture: cv2.VideoCapture) -> str:
    code = int(capture.get(cv2.CAP_PROP_FOURCC))
    text = "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4))
    return text if text.isprintable() else f"0x{code:08x}"


def _plausible_fps(value: float | None) -> bool:
    return value is not None and math.isfinite(value) and 0 < value <= MAX_PLAUSIBLE_FPS


def choose_fps(container_fps: float | None, settings: VideoSettings, *, file: str | Path) -> tuple[float, str]:
    """The frame rate of a video file and where it came from: the container's, else acquisition.json's."""
    if _plausible_fps(container_fps):
        return float(container_fps), "container"
    if settings.fps is not None:
        return float(settings.fps), "acquisition.json"
    raise InputError('container has no frame rate; set "fps" in acquisition.json', file=file)


def _probe_opencv(path: Path, settings: VideoSettings) -> VideoHeader:
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        if not capture.isOpened():
            raise InputError("cannot be opened as a video (corrupt, truncated, or an unsupported container or codec)", file=path)
        codec = _fourcc(capture)
        n_frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        if n_frames <= 0:
            raise InputError("video has no frames", file=path)
        ok, frame = capture.read()
        if not ok or frame is None:
            raise InputError(f"no frame can be decoded (codec '{codec}' unsupported, or the data are corrupt)", file=path)
        height, width = frame.shape[:2]
        container_fps = capture.get(cv2.CAP_PROP_FPS)
    finally:
        capture.release()
    fps, timing = choose_fps(container_fps, settings, file=path)
    return VideoHeader(
        path=path,
        kind="opencv",
        n_frames=n_frames,
        height=height,
        width=width,
        source_times=uniform_times(n_frames, fps),
        timing_source=timing,
        pixel_spacing_mm=tuple(settings.pixel_spacing_mm),
        spacing_source="acquisition.json",
        codec=codec,
    )


def dicom_frame_times(ds: Any, n_frames: int) -> tuple[np.ndarray | None, str]:
    """Frame start times (s) from DICOM timing tags, or ``(None, "")`` when the file has none.

    Precedence: FrameTimeVector (0018,1065; per-frame increments in ms, first usually 0), FrameTime
    (0018,1063; ms per frame), CineRate (0018,0040; frames/s), RecommendedDisplayFrameRate (0008,2144).
    """
    vector = ds.get("FrameTimeVector")
    if vector is not None:
        increments = np.atleast_1d(np.asarray(vector, dtype=float))
        if increments.size == n_frames and np.all(np.isfinite(increments)) and np.all(increments[1:] > 0):
            return np.cumsum(increments) / 1000.0 - increments[0] / 1000.0, "FrameTimeVector"
    frame_time = ds.get("FrameTime")
    if frame_time is not None and _plausible_fps(1000.0 / float(frame_time) if float(frame_time) > 0 else None):
        return uniform_times(n_frames, 1000.0 / float(frame_time)), "FrameTime"
    for keyword in ("CineRate", "RecommendedDisplayFrameRate"):
        rate = ds.get(keyword)
        if rate is not None and _plausible_fps(float(rate)):
            return uniform_times(n_frames, float(rate)), keyword
    return None, ""


def dicom_pixel_spacing(ds: Any) -> tuple[tuple[float, float] | None, str]:
    """``(row_mm, col_mm)`` from a DICOM header, or ``(None, "")``.

    Precedence: PixelSpacing (0028,0030), the shared functional groups' PixelMeasuresSequence
    (enhanced multi-frame), then the first SequenceOfUltrasoundRegions item whose physical units
    are cm in both directions (PhysicalDeltaY -> rows, PhysicalDeltaX -> columns; cm -> mm).
    """

    def valid(pair: Any) -> tuple[float, float] | None:
        try:
            row, col = float(pair[0]), float(pair[1])
        except (TypeError, ValueError, IndexError):
            return None
        return (row, col) if row > 0 and col > 0 and math.isfinite(row) and math.isfinite(col) else None

    if (found := valid(ds.get("PixelSpacing"))) is not None:
        return found, "PixelSpacing"
    for group in ds.get("SharedFunctionalGroupsSequence") or []:
        for measures in group.get("PixelMeasuresSequence") or []:
            if (found := valid(measures.get("PixelSpacing"))) is not None:
                return found, "PixelMeasuresSequence"
    centimetres = 3  # PhysicalUnitsX/YDirection code for cm
    for region in ds.get("SequenceOfUltrasoundRegions") or []:
        if region.get("PhysicalUnitsXDirection") == centimetres and region.get("PhysicalUnitsYDirection") == centimetres:
            found = valid((region.get("PhysicalDeltaY"), region.get("PhysicalDeltaX")))
            if found is not None:
                return (found[0] * 10.0, found[1] * 10.0), "SequenceOfUltrasoundRegions"
    return None, ""


def _probe_dicom(path: Path, settings: VideoSettings) -> VideoHeader:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        # defer_size keeps the pixel bytes on disk; only the header is parsed here.
        ds = pydicom.dcmread(path, defer_size="64 KB")
    except (InvalidDicomError, OSError, EOFError, ValueError) as err:
        raise InputError(f"is not a readable DICOM file ({type(err).__name__})", file=path) from None
    if not any(keyword in ds for keyword in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise InputError("DICOM file has no pixel data", file=path)
    try:
        n_frames = int(ds.get("NumberOfFrames") or 1)
        height, width = int(ds.Rows), int(ds.Columns)
    except (AttributeError, TypeError, ValueError):
        raise InputError("DICOM file lacks Rows/Columns/NumberOfFrames", file=path) from None
    if n_frames <= 0 or height <= 0 or width <= 0:
        raise InputError("DICOM file has no frames", file=path)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    if photometric not in DICOM_PHOTOMETRIC:
        raise InputError(f"unsupported PhotometricInterpretation '{photometric}'; readable: {', '.join(DICOM_PHOTOMETRIC)}", file=path)
    palette = dicom_palette(ds, path) if photometric == "PALETTE COLOR" else None
    times, timing = dicom_frame_times(ds, n_frames)
    if times is None:
        if n_frames == 1:
            times, timing = np.zeros(1), "single frame"
        elif settings.fps is not None:
            times, timing = uniform_times(n_frames, settings.fps), "acquisition.json"
        else:
            raise InputError('DICOM file has no frame timing tags; set "fps" in acquisition.json', file=path)
    spacing, spacing_source = dicom_pixel_spacing(ds)
    if spacing is None:
        spacing, spacing_source = tuple(settings.pixel_spacing_mm), "acquisition.json"
    return VideoHeader(
        path=path,
        kind="dicom",
        n_frames=n_frames,
        height=height,
        width=width,
        source_times=times,
        timing_source=timing,
        pixel_spacing_mm=spacing,
        spacing_source=spacing_source,
        codec=str(ds.file_meta.get("TransferSyntaxUID", "")) if hasattr(ds, "file_meta") else "",
        bits_stored=int(ds.get("BitsStored") or ds.get("BitsAllocated") or 8),
        channel_order="rgb",
        invert=photometric == "MONOCHROME1",
        photometric=photometric,
        palette=palette,
    )


DICOM_PHOTOMETRIC: tuple[str, ...] = (
    "MONOCHROME2", "MONOCHROME1", "RGB", "YBR_FULL", "YBR_FULL_422", "YBR_PARTIAL_420", "YBR_ICT", "YBR_RCT",
    "PALETTE COLOR",
)
"""Photometric interpretations read: grey (MONOCHROME1 inverted), RGB, YBR (pydicom converts it to RGB
while decoding: ``convert_color_space``) and PALETTE COLOR (indices looked up in the file's colour
palette: ``apply_color_lut``); every colour frame then becomes grey by BT.601 luma (``to_gray8``)."""


def dicom_palette(ds: Any, path: Path) -> np.ndarray:
    """The RGB colour of every stored index of a PALETTE COLOR file, as a (2**BitsStored, 3) uint8 table.

    pydicom's ``apply_color_lut`` reads the palette (Red/Green/BluePaletteColorLookupTable
    Descriptor and Data, segmented or not); 16-bit palette entries are scaled to 8 bits.
    """
    from pydicom.pixels import apply_color_lut

    bits = int(ds.get("BitsStored") or ds.get("BitsAllocated") or 8)
    indices = np.arange(2 ** min(bits, 16), dtype=np.uint16 if bits > 8 else np.uint8).reshape(1, -1)
    try:
        rgb = np.asarray(apply_color_lut(indices, ds))[0]
    except Exception as err:  # pydicom raises ValueError/AttributeError/KeyError for a missing or bad palette
        raise InputError(f"PALETTE COLOR file without a usable colour palette ({type(err).__name__}: {err})", file=path) from None
    if rgb.dtype != np.uint8:
        rgb = np.clip(np.rint(rgb.astype(np.float64) / 257.0), 0, 255).astype(np.uint8) if rgb.max() > 255 else rgb.astype(np.uint8)
    return np.ascontiguousarray(rgb)


# -- decoding ------------------------------------------------------------------------------------


def iter_source_frames(header: VideoHeader, source_indices: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
    """Decode the requested source frames in order, yielding ``(source_index, raw frame)``.

    OpenCV: one sequential pass; ``grab()`` advances over frames we do not keep (no colour
    conversion or copy), ``retrieve()`` only for the frames we keep. DICOM: pydicom decodes only the
    requested frames. A requested frame past the end of the decodable data raises InputError
    (truncated file).
    """
    wanted = sorted(set(int(i) for i in source_indices))
    if not wanted:
        return
    if wanted[0] < 0 or wanted[-1] >= header.n_frames:
        raise ValueError(f"source indices must be in [0, {header.n_frames})")
    if header.kind == "dicom":
        yield from _iter_dicom(header, wanted)
    else:
        yield from _iter_opencv(header, wanted)


def _iter_opencv(header: VideoHeader, wanted: list[int]) -> Iterator[tuple[int, np.ndarray]]:
    capture = cv2.VideoCapture(str(header.path), cv2.CAP_FFMPEG)
    try:
        if not capture.isOpened():
            raise InputError("cannot be opened as a video", file=header.path)
        position = 0  # index of the frame the next grab() decodes
        for index in wanted:
            while position <= index:
                if not capture.grab():
                    raise InputError(
                        f"video ends after {position} decodable frames but its header declares "
                        f"{header.n_frames} (truncated or corrupt)",
                        file=header.path,
                    )
                position += 1
            ok, frame = capture.retrieve()
            if not ok or frame is None:
                raise InputError(f"frame {index} cannot be decoded (corrupt data)", file=header.path)
            yield index, frame
    finally:
        capture.release()


def _iter_dicom(header: VideoHeader, wanted: list[int]) -> Iterator[tuple[int, np.ndarray]]:
    from pydicom.pixels import iter_pixels

    try:
        with open(header.path, "rb") as handle:
            if header.n_frames == 1:
                frames = iter_pixels(handle)
            elif header.photometric == "YBR_FULL_422":
                frames = _one_by_one(handle, wanted)
            else:
                frames = iter_pixels(handle, indices=wanted)
            decoded = 0
            for frame in frames:  # exhaust the generator while the file is open
                yield wanted[decoded], frame
                decoded += 1
    except InputError:
        raise
    except Exception as err:  # pydicom raises many types for missing decoders / bad bytes
        raise InputError(f"DICOM pixel data cannot be decoded ({type(err).__name__}: {err})", file=header.path) from None


def _one_by_one(handle: Any, wanted: list[int]) -> Iterator[np.ndarray]:
    """Frames decoded one call each: pydicom 3.0 mis-reads several indices of native YBR_FULL_422 in one call."""
    from pydicom.pixels import iter_pixels

    for index in wanted:
        handle.seek(0)
        yield from iter_pixels(handle, indices=[index])


# -- extraction ----------------------------------------------------------------------------------


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


def colour_frame(raw: np.ndarray, header: VideoHeader) -> np.ndarray:
    """A decoded frame as the picture it shows: PALETTE COLOR indices looked up in the palette, else as is."""
    if header.palette is not None and raw.ndim == 2:
        return header.palette[np.clip(raw.astype(np.int64), 0, len(header.palette) - 1)]
    return raw


def source_gray(raw: np.ndarray, header: VideoHeader) -> np.ndarray:
    """One decoded frame as 8-bit grey at source resolution (palette applied, MONOCHROME1 inverted)."""
    if raw.shape[:2] != (header.height, header.width):
        raise InputError(
            f"frame size {raw.shape[1]}x{raw.shape[0]} differs from the video's {header.width}x{header.height}",
            file=header.path,
        )
    picture = colour_frame(raw, header)
    bits = None if picture is not raw else header.bits_stored
    gray = to_gray8(picture, channel_order=header.channel_order, bits_stored=bits)
    return 255 - gray if header.invert else gray


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


# -- masks ---------------------------------------------------------------------------------------


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


def _nerve(labels: np.ndarray) -> np.ndarray:
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


def read_masks(
    path: str | Path,
    source_shape: tuple[int, int],
    source_indices: Sequence[int] | None = None,
    *,
    frame_size: int = FRAME_SIZE,
    region: Region | None = None,
) -> dict[int, np.ndarray]:
    """Nerve masks of the requested source frames, cut to ``region`` like their frames, resized to ``frame_size`` (nearest-neighbour).

    Args:
        path: ``<stem>.npz`` (arrays ``index`` (N,) source-frame numbers and ``mask`` (N,H,W)) or a
            folder of ``<source frame number>.png``.
        source_shape: (H, W) of the video's frames; every mask must have exactly this size.
        source_indices: frames wanted (None = all masks in the file).
        frame_size: output side.

    Returns:
        ``{source_index: mask}`` with 0/1 uint8 masks, for the requested frames that have one.

    Raises:
        InputError naming the mask file when it is malformed or its size differs from the frame's.
    """
    path = Path(path)
    wanted = None if source_indices is None else set(int(i) for i in source_indices)
    masks: dict[int, np.ndarray] = {}
    for index, labels, where in _mask_items(path, wanted):
        if labels.shape[:2] != tuple(source_shape):
            raise InputError(
                f"mask size {labels.shape[1]}x{labels.shape[0]} differs from its video frame size "
                f"{source_shape[1]}x{source_shape[0]}",
                file=where,
            )
        nerve = _nerve(labels)
        masks[index] = resize_mask(region.crop(nerve) if region is not None else nerve, frame_size)
    return masks


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


# -- outputs -------------------------------------------------------------------------------------


def frame_id(wrist_id: str, plane: str, sample_index: int) -> str:
    """``<wrist_id>_<plane>_<frame number at TARGET_FPS, 4 digits>`` (docs/pipeline.md)."""
    return f"{wrist_id}_{plane}_{int(sample_index):04d}"


@contextmanager
def staged_dirs(*targets: Path) -> Iterator[list[Path]]:
    """Yield empty staging folders beside ``targets``; on success they replace the targets.

    Lets a stage write thousands of PNGs while keeping the "nothing under its final name unless the
    whole stage succeeded" rule: on an error the staging folders are removed and old outputs stay.
    """
    staging = [t.parent / f".{t.name}.staging" for t in targets]
    for folder in staging:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    try:
        yield staging
        for folder, target in zip(staging, targets):
            old = target.parent / f".{target.name}.old"
            shutil.rmtree(old, ignore_errors=True)
            if target.exists():
                os.replace(target, old)
            os.replace(folder, target)
            shutil.rmtree(old, ignore_errors=True)
    finally:
        for folder in staging:
            shutil.rmtree(folder, ignore_errors=True)


# -- stage 02 jobs and frame table ---------------------------------------------------------------

WRIST_COLUMNS: tuple[str, ...] = ("wrist_id", "participant_id", "side", "grade", "grade_index", "video_transverse", "video_longitudinal")
"""Columns of stage 01's wrists.csv that extraction reads."""

PNG_POLICIES: tuple[str, ...] = ("kept", "kept+masked", "all")
"""Which frames get a PNG: kept frames only; kept frames and every frame with a mask (what stage 03
trains its segmenter on); or every extracted frame. frames.csv always lists every extracted frame."""


@dataclass(frozen=True)
class VideoJob:
    """One video to extract: the wrist it belongs to (pseudonymised) and its file name in videos/."""

    wrist_id: str
    participant_id: str
    side: str
    plane: str
    grade: str
    grade_index: int
    file: str

    @property
    def stem(self) -> str:
        """The video's stem, side and plane in canonical case (source participant id: never written to outputs)."""
        return canonical_stem(Path(self.file).stem)

    @property
    def label(self) -> str:
        """A name safe for reports: pseudonymised wrist id and plane."""
        return f"{self.wrist_id}_{self.plane}"


def read_wrists(path: str | Path) -> pd.DataFrame:
    """Read stage 01's wrists.csv (text columns kept as text; blanks as empty strings)."""
    path = Path(path)
    if not path.exists():
        raise InputError("wrists table not found; run notebook 01 first", file=path)
    wrists = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in WRIST_COLUMNS if c not in wrists.columns]
    if missing:
        raise InputError(f"missing columns {missing} (written by notebook 01)", file=path, column=missing[0])
    return wrists


def video_jobs(wrists: pd.DataFrame, planes: Sequence[str] = ("transverse", "longitudinal")) -> tuple[list[VideoJob], pd.DataFrame]:
    """Videos to extract, one per graded wrist and plane with a video file.

    Returns:
        The jobs, and a table (wrist_id, plane, why) of wrist-planes that have nothing to extract:
        wrists without a grade (left out by the NCS policy) and planes without a video file.
    """
    jobs, left_out = [], []
    for row in wrists.to_dict("records"):
        for plane in planes:
            file = str(row.get(f"video_{plane}", "") or "").strip()
            if not str(row["grade"]).strip():
                left_out.append({"wrist_id": row["wrist_id"], "plane": plane, "why": "wrist has no grade"})
            elif not file:
                left_out.append({"wrist_id": row["wrist_id"], "plane": plane, "why": "no video file"})
            else:
                jobs.append(
                    VideoJob(
                        wrist_id=row["wrist_id"],
                        participant_id=row["participant_id"],
                        side=row["side"],
                        plane=plane,
                        grade=row["grade"],
                        grade_index=int(float(row["grade_index"])),
                        file=file,
                    )
                )
    return jobs, pd.DataFrame(left_out, columns=["wrist_id", "plane", "why"])


def missing_video_warnings(left_out: pd.DataFrame) -> list[str]:
    """One report-index warning per graded wrist-plane without a video file (``video_jobs``' ``left_out``).

    Names the pseudonymised wrist and the plane (never the source id); ``ctslib.data.validate`` gives
    the same finding as a WARNING naming the cohort row, so the check and the run agree.
    """
    missing = left_out[left_out["why"] == "no video file"]
    return [f"{row.wrist_id}: no {row.plane} video in the data folder; the wrist is left out of the {row.plane} "
            "model and its other plane is used (see ctslib.data.validate)." for row in missing.itertuples(index=False)]


def skip_record(job: VideoJob, step: str, error: InputError) -> dict[str, str]:
    """One row of the ``skipped_inputs`` table: the pseudonymised video and why it was skipped.

    The error's reason is kept, its file path is not (file names carry source participant ids).
    """
    return {"wrist_id": job.wrist_id, "plane": job.plane, "step": step, "error": error.reason}


def frame_table(job: VideoJob, video: ExtractedVideo, masks: Mapping[int, np.ndarray], decision: pd.DataFrame) -> pd.DataFrame:
    """frames.csv rows of one video: identity, timing, spacing, mask flag, QC scores and decision."""
    frames = video.frames.reset_index(drop=True)
    table = pd.DataFrame(
        {
            "frame_id": [frame_id(job.wrist_id, job.plane, k) for k in frames["sample_index"]],
            "wrist_id": job.wrist_id,
            "participant_id": job.participant_id,
            "side": job.side,
            "plane": job.plane,
            "grade": job.grade,
            "grade_index": job.grade_index,
            "sample_index": frames["sample_index"],
            "time_s": frames["time_s"],
            "source_index": frames["source_index"],
            "spacing_row_mm": frames["spacing_row_mm"],
            "spacing_col_mm": frames["spacing_col_mm"],
            "has_mask": [int(i) in masks for i in frames["source_index"]],
        }
    )
    return pd.concat([table, decision.reset_index(drop=True)], axis=1)


def write_frame_pngs(
    table: pd.DataFrame,
    images: np.ndarray,
    masks: Mapping[int, np.ndarray],
    frames_dir: Path,
    masks_dir: Path,
    policy: str = "kept+masked",
) -> pd.Series:
    """Write ``<frame_id>.png`` frames (and 0/255 masks) per ``PNG_POLICIES``; returns ``has_png``.

    The folders are staging folders (``staged_dirs``), so each file is written in place, not atomically.
    """
    if policy not in PNG_POLICIES:
        raise ValueError(f"unknown PNG policy {policy!r}; use one of {PNG_POLICIES}")
    kept, has_mask = table["kept"].astype(bool), table["has_mask"].astype(bool)
    wanted = {"kept": kept, "kept+masked": kept | has_mask, "all": pd.Series(True, index=table.index)}[policy]
    for i in np.flatnonzero(wanted.to_numpy()):
        row = table.iloc[i]
        write_png(frames_dir / f"{row['frame_id']}.png", images[i], atomic=False)
        if row["has_mask"]:
            write_png(masks_dir / f"{row['frame_id']}.png", masks[int(row["source_index"])] * np.uint8(255), atomic=False)
    return wanted.rename("has_png")
