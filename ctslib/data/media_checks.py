"""The validator's checks of the files' contents: videos opened as stage 02 opens them, masks, the expert's list.

By default each video is opened and its first frame decoded (cheap: finds corrupt files, zero-frame
files and unsupported codecs); ``deep`` decodes every frame (also finds truncated files). Masks and
accept-list rows are checked against the frames a ``TARGET_FPS`` sampling takes (``ctslib.data.timing``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ctslib.common.errors import InputError
from ctslib.common.paths import DataLayout, canonical_stem, is_os_litter
from ctslib.data.accept_list import match_accept_list, read_accept_list
from ctslib.data.acquisition import VideoSettings
from ctslib.data.checks import EXPECTED_VIDEO, DataCheck
from ctslib.data.masks import check_mask_frames, find_masks, iter_masks
from ctslib.data.timing import TARGET_FPS
from ctslib.data.video import VideoHeader, iter_source_frames, probe_video, source_gray

GRAY_TOLERANCE: int = 8
"""Channels differing by at most this many grey levels count as grey (codecs tint grey frames slightly)."""


# -- video contents ------------------------------------------------------------------------------


def _file_digest(path: Path, chunk: int = 1 << 20) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def check_duplicate_videos(videos: Sequence[Path], check: DataCheck) -> None:
    """WARNING for byte-identical video files filed under different names (wrists or planes).

    One recording counted as two wrists gives the models the same frames twice, possibly on both
    sides of a split. Only files of equal size are hashed (cheap on large folders).
    """
    by_size: dict[int, list[Path]] = {}
    for path in videos:
        by_size.setdefault(path.stat().st_size, []).append(path)
    for same_size in by_size.values():
        if len(same_size) < 2:
            continue
        by_digest: dict[str, list[Path]] = {}
        for path in same_size:
            by_digest.setdefault(_file_digest(path), []).append(path)
        for copies in by_digest.values():
            for path in copies[1:]:
                check.add("warning", f"byte-identical to videos/{copies[0].name}: one recording filed under two names; "
                          "its frames would count twice, as different wrists or planes (check which is right)", path)


def note_single_frame(header: VideoHeader, check: DataCheck) -> None:
    """NOTE for a video of one frame (a still image, e.g. a single-frame DICOM), which the run accepts."""
    if header.n_frames == 1:
        check.add("note", "a single frame (a still image, not a cine loop): stage 02 extracts that one frame, "
                  "and QC cannot compare it with neighbouring frames", header.path)


def check_video(path: Path, settings: VideoSettings, deep: bool, check: DataCheck) -> VideoHeader | None:
    """Open a video as stage 02 does and decode its first frame (``deep``: every frame).

    Returns the header when the video is usable, else None (the problem is recorded). Frames that
    stage 02 converts (colour, more than 8 bits) are reported as ``info``.
    """
    try:
        header = probe_video(path, settings)
        wanted = range(header.n_frames) if deep else [0]
        for index, raw in iter_source_frames(header, wanted):
            source_gray(raw, header)  # stage 02's conversion to grey; checks each frame's size
            if index == 0:
                _note_conversions(raw, header, check)
    except InputError as err:
        check.add_error(err)
        return None
    check.readable_videos += 1
    return header


def _channel_spread(raw: np.ndarray) -> int:
    """Largest difference between the colour channels of any pixel (0 for a grey frame)."""
    channels = raw[..., :3].astype(np.int32)
    return int((channels.max(axis=-1) - channels.min(axis=-1)).max())


def _note_conversions(raw: np.ndarray, header: VideoHeader, check: DataCheck) -> None:
    """Info lines for frames that are not 8-bit grayscale (converted by ``ctslib.data.video.to_gray8``)."""
    if raw.ndim == 3 and raw.shape[2] >= 3 and _channel_spread(raw) > GRAY_TOLERANCE:
        check.add("info", f"colour frames ({raw.shape[2]} channels) will be converted to 8-bit grayscale "
                  "(ITU-R BT.601 luma, ctslib.data.video.to_gray8)", header.path)
    bits = header.bits_stored or raw.dtype.itemsize * 8
    if raw.dtype != np.uint8 or bits > 8:
        check.add("info", f"{bits}-bit frames will be converted to 8 bits by a fixed linear rescale "
                  f"(v * 255 / {2**bits - 1}, ctslib.data.video.to_gray8)", header.path)
    if header.invert:
        check.add("info", "MONOCHROME1 (low values bright) will be inverted to MONOCHROME2", header.path)
    if header.photometric == "PALETTE COLOR":
        check.add("info", "PALETTE COLOR frames: the file's colour palette is applied (pydicom apply_color_lut), "
                  "then converted to 8-bit grayscale", header.path)
    elif header.photometric.startswith("YBR"):
        check.add("info", f"{header.photometric} frames: converted to RGB (pydicom), then to 8-bit grayscale", header.path)


# -- masks ---------------------------------------------------------------------------------------


def check_masks(layout: DataLayout, headers: dict[str, VideoHeader], video_stems: set[str], check: DataCheck) -> None:
    """Each ``masks/`` entry must belong to a video, match its frame size and lie inside the video."""
    folder = layout.masks_dir
    if not folder.is_dir():
        return
    canonical_videos = {canonical_stem(s) for s in video_stems}
    for entry in sorted(folder.iterdir()):
        if is_os_litter(entry.name) or entry.name.startswith("."):
            continue
        if not (entry.is_dir() or entry.suffix.lower() == ".npz"):
            check.add("error", "not a mask: expected masks/<video stem>.npz or masks/<video stem>/<frame>.png", entry)
            continue
        stem = canonical_stem(entry.name if entry.is_dir() else entry.stem)
        if stem not in canonical_videos:
            check.add("error", f"matches no video: videos/ has no {stem} {EXPECTED_VIDEO}", entry)
            continue
        if find_masks(layout, stem) != entry:
            check.add("warning", f"both masks/{stem}.npz and masks/{stem}/ exist; only the .npz is used", entry)
            continue
        if entry.is_dir():
            _note_mask_folder(entry, check)
        header = headers.get(stem)
        if header is None:
            continue  # the video is unreadable (reported); its size is unknown
        try:
            indices = sorted({index for index, _ in iter_masks(entry, (header.height, header.width))})
        except InputError as err:
            check.add_error(err)
            continue
        _check_mask_frames(entry, indices, header, check)


def _note_mask_folder(folder: Path, check: DataCheck) -> None:
    """NOTE for mask images in TIFF (read like PNG)."""
    tiffs = [p for p in folder.iterdir() if p.suffix.lower() in (".tif", ".tiff") and not is_os_litter(p.name)]
    if tiffs:
        check.add("note", f"{len(tiffs)} TIFF mask image(s) read like PNG (label 1 or 255 = nerve)", folder)


def _check_mask_frames(entry: Path, indices: list[int], header: VideoHeader, check: DataCheck) -> None:
    try:
        check_mask_frames(indices, header.n_frames, entry)
    except InputError as err:
        check.add_error(err)
    used = set(header.schedule(TARGET_FPS)["source_index"].tolist()) & set(indices)
    if indices and not used:
        check.add("warning", f"none of the {len(indices)} masks is on a frame extracted at {TARGET_FPS:g} fps "
                  f"(source frames {sorted(header.schedule(TARGET_FPS)['source_index'])[:4]} ...); "
                  "masks are numbered by source frame, starting at 0", entry)
    check.mask_videos += 1
    check.mask_frames += len(indices)


# -- qc_accept.csv -------------------------------------------------------------------------------


def check_accept_list(layout: DataLayout, headers: dict[str, VideoHeader], unreadable: set[str], check: DataCheck) -> None:
    """Every accept-list row must name a known video and one of its extracted frames (``ctslib.data.accept_list``)."""
    path = layout.qc_accept_csv
    if not path.exists():
        return
    try:
        accept = read_accept_list(path)
    except InputError as err:
        check.add_error(err)
        return
    check.accept_rows = len(accept)
    schedules = {stem: header.schedule(TARGET_FPS) for stem, header in headers.items()}
    for i in range(len(accept)):
        row = accept.iloc[[i]]
        if row["video"].iat[0] in unreadable:
            continue  # the video itself is reported; its frames are unknown
        try:
            match_accept_list(row, schedules, target_fps=TARGET_FPS, file=path)
        except InputError as err:
            check.add_error(err)
