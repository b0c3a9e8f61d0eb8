"""Reading the user's videos: probing a file's header, decoding chosen frames, 8-bit grey.

* ``probe_video``: open a video (``.mp4 .avi .mov .m4v .mkv`` through OpenCV's FFmpeg, ``.dcm`` through
  ``ctslib.data.dicom``) and read what extraction needs: frame count, size, frame times, pixel spacing;
* ``iter_source_frames``: decode the chosen source frames in one sequential pass (OpenCV ``grab()`` for
  frames we skip, ``retrieve()`` only for frames we keep; DICOM: only the chosen frames);
* ``source_gray`` / ``to_gray8``: a decoded frame as 8-bit grey at source resolution (palette applied,
  MONOCHROME1 inverted, colour by BT.601 luma, more than 8 bits by a fixed rescale).

Which frames are taken (5 fps by timestamp) is ``ctslib.data.timing``; cutting, blanking and resizing
them for the later stages is stage 02's (``ctslib.frames.prepare``).

File names: side, plane and extension in any letter case; OS litter ignored (``ctslib.common.paths``).
Timing precedence (docs/pipeline.md): DICOM timing tags, then the container's frame rate, then the
``fps`` of ``acquisition.json`` (per-video override first). Spacing precedence: DICOM
``PixelSpacing`` / ultrasound regions, then ``acquisition.json`` (per-video override first).

Every unreadable input raises ``ctslib.common.errors.InputError`` naming the file.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from ctslib.common.errors import InputError
from ctslib.data.acquisition import VideoSettings
from ctslib.data.dicom import iter_dicom_frames, read_dicom_header
from ctslib.data.timing import TARGET_FPS, plausible_fps, sample_frames, uniform_times


# -- 8-bit grey ---------------------------------------------------------------------------------------


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


def choose_fps(container_fps: float | None, settings: VideoSettings, *, file: str | Path) -> tuple[float, str]:
    """The frame rate of a video file and where it came from: the container's, else acquisition.json's."""
    if plausible_fps(container_fps):
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


def _probe_dicom(path: Path, settings: VideoSettings) -> VideoHeader:
    """A DICOM file's header, its missing timing and spacing taken from ``acquisition.json``."""
    dicom = read_dicom_header(path)
    times, timing = dicom.times, dicom.timing_source
    if times is None:
        if dicom.n_frames == 1:
            times, timing = np.zeros(1), "single frame"
        elif settings.fps is not None:
            times, timing = uniform_times(dicom.n_frames, settings.fps), "acquisition.json"
        else:
            raise InputError('DICOM file has no frame timing tags; set "fps" in acquisition.json', file=path)
    spacing, spacing_source = dicom.spacing_mm, dicom.spacing_source
    if spacing is None:
        spacing, spacing_source = tuple(settings.pixel_spacing_mm), "acquisition.json"
    return VideoHeader(
        path=path,
        kind="dicom",
        n_frames=dicom.n_frames,
        height=dicom.height,
        width=dicom.width,
        source_times=times,
        timing_source=timing,
        pixel_spacing_mm=spacing,
        spacing_source=spacing_source,
        codec=dicom.codec,
        bits_stored=dicom.bits_stored,
        channel_order="rgb",
        invert=dicom.photometric == "MONOCHROME1",
        photometric=dicom.photometric,
        palette=dicom.palette,
    )


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
        yield from iter_dicom_frames(header.path, header.n_frames, header.photometric, wanted)
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


# -- one decoded frame as grey --------------------------------------------------------------------


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
