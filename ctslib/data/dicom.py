"""Reading DICOM cine loops: the header tags extraction needs, and the pixel data of chosen frames.

Only pixel data, pixel spacing and frame timing are read into the objects returned here; patient and
study tags never leave ``read_dicom_header``. Grey, RGB, YBR and PALETTE COLOR files are read
(``DICOM_PHOTOMETRIC``). What the header lacks (timing, spacing) is filled from ``acquisition.json``
by ``ctslib.data.video.probe_video``, not here. Every unreadable file raises ``InputError`` naming it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ctslib.common.errors import InputError
from ctslib.data.timing import plausible_fps, uniform_times

DICOM_PHOTOMETRIC: tuple[str, ...] = (
    "MONOCHROME2", "MONOCHROME1", "RGB", "YBR_FULL", "YBR_FULL_422", "YBR_PARTIAL_420", "YBR_ICT", "YBR_RCT",
    "PALETTE COLOR",
)
"""Photometric interpretations read: grey (MONOCHROME1 inverted), RGB, YBR (pydicom converts it to RGB
while decoding: ``convert_color_space``) and PALETTE COLOR (indices looked up in the file's colour
palette: ``apply_color_lut``); every colour frame then becomes grey by BT.601 luma (``to_gray8``)."""


@dataclass(frozen=True)
class DicomHeader:
    """What a DICOM file says about its frames; ``times`` / ``spacing_mm`` are None when it has no such tags."""

    n_frames: int
    height: int
    width: int
    times: np.ndarray | None = field(repr=False)
    timing_source: str
    spacing_mm: tuple[float, float] | None
    spacing_source: str
    codec: str
    bits_stored: int
    photometric: str
    palette: np.ndarray | None = field(default=None, repr=False)


def read_dicom_header(path: Path) -> DicomHeader:
    """Parse a DICOM file's header (pixel bytes stay on disk); InputError naming the file when it is unusable."""
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
    times, timing = dicom_frame_times(ds, n_frames)
    spacing, spacing_source = dicom_pixel_spacing(ds)
    return DicomHeader(
        n_frames=n_frames,
        height=height,
        width=width,
        times=times,
        timing_source=timing,
        spacing_mm=spacing,
        spacing_source=spacing_source,
        codec=str(ds.file_meta.get("TransferSyntaxUID", "")) if hasattr(ds, "file_meta") else "",
        bits_stored=int(ds.get("BitsStored") or ds.get("BitsAllocated") or 8),
        photometric=photometric,
        palette=dicom_palette(ds, path) if photometric == "PALETTE COLOR" else None,
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
    if frame_time is not None and plausible_fps(1000.0 / float(frame_time) if float(frame_time) > 0 else None):
        return uniform_times(n_frames, 1000.0 / float(frame_time)), "FrameTime"
    for keyword in ("CineRate", "RecommendedDisplayFrameRate"):
        rate = ds.get(keyword)
        if rate is not None and plausible_fps(float(rate)):
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


def iter_dicom_frames(path: Path, n_frames: int, photometric: str, wanted: list[int]) -> Iterator[tuple[int, np.ndarray]]:
    """Decode only the ``wanted`` frames (sorted, unique), yielding ``(index, raw frame)``; InputError naming the file."""
    from pydicom.pixels import iter_pixels

    try:
        with open(path, "rb") as handle:
            if n_frames == 1:
                frames = iter_pixels(handle)
            elif photometric == "YBR_FULL_422":
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
        raise InputError(f"DICOM pixel data cannot be decoded ({type(err).__name__}: {err})", file=path) from None


def _one_by_one(handle: Any, wanted: list[int]) -> Iterator[np.ndarray]:
    """Frames decoded one call each: pydicom 3.0 mis-reads several indices of native YBR_FULL_422 in one call."""
    from pydicom.pixels import iter_pixels

    for index in wanted:
        handle.seek(0)
        yield from iter_pixels(handle, indices=[index])
