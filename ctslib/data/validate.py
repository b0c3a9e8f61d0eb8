"""Check a data folder before a run: every problem at once, each naming its file, row and column.

``python -m ctslib.data.validate DATA_DIR [--deep]`` reads a folder in the layout of docs/pipeline.md
and prints every problem found (the stages stop at the first one), then a short summary. It
writes nothing. Exit code: 0 clean, 1 problems found, 2 usage error (no such folder, bad option).

The checks are the stages' own: cohort cells through ``ctslib.data.cohort``, ``acquisition.json``,
videos and masks through ``ctslib.data.video``, the expert accept-list through ``ctslib.frames.qc``. What
this module adds is what no single stage sees: files whose names match no cohort wrist or video,
wrists without a video, per-video overrides for videos that do not exist, masks outside the
video, and the choice to go on after a problem. By default each video is opened and its first
frame decoded (cheap: finds corrupt files, zero-frame files and unsupported codecs); ``--deep``
decodes every frame (also finds truncated files, at the cost of reading all video data).

Severities: ``error`` (a stage will refuse the data or silently lose part of it), ``warning``
(probably a mistake; the run proceeds), ``note`` (a harmless variant the pipeline accepts because
its meaning is clear: a capitalised plane name, a ``.MOV`` file, a semicolon-separated cohort with
decimal commas, ``right`` for R ...) and ``info`` (a conversion the pipeline makes, e.g. colour or
16-bit frames to 8-bit grayscale). Errors and warnings count as problems. OS litter (``._*``,
``.DS_Store``, ``Thumbs.db``, ``desktop.ini``) is ignored here as in every stage.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ctslib import PLANES, SIDES
from ctslib.data.cohort import (
    HANDS,
    blank_row_error,
    blank_rows,
    NCS_COLUMNS,
    SEXES,
    check_participant_id,
    check_participants_consistent,
    check_wrists_unique,
    code_of,
    cohort_notes,
    parse_codes,
    parse_numbers,
    read_cohort,
    read_raw_cohort,
)
from ctslib.data.acquisition import spacing_notes
from ctslib.common.display import SYNTHETIC_CAVEAT
from ctslib.common.errors import InputError
from ctslib.common.paths import VIDEO_EXTENSIONS, DataLayout, canonical_stem, data_layout, is_os_litter, video_stem
from ctslib.frames.qc import match_accept_list, read_accept_list
from ctslib.data.video import (
    TARGET_FPS,
    Acquisition,
    VideoHeader,
    VideoSettings,
    check_mask_frames,
    find_masks,
    iter_source_frames,
    prepare_frame,
    probe_video,
    read_acquisition,
    read_masks,
)

SEVERITIES: tuple[str, ...] = ("error", "warning", "note", "info")
"""Problem levels, most serious first; ``error`` and ``warning`` make the exit code 1."""

EXPECTED_VIDEO = "with extension " + ", ".join(e.lstrip(".") for e in VIDEO_EXTENSIONS) + " (any letter case)"
"""How the messages name the accepted video files."""

GRAY_TOLERANCE: int = 8
"""Channels differing by at most this many grey levels count as grey (codecs tint grey frames slightly)."""

FALLBACK_SETTINGS = VideoSettings(pixel_spacing_mm=(1.0, 1.0), fps=None)
"""Used to open videos when ``acquisition.json`` is unusable (that problem is reported on its own)."""


@dataclass(frozen=True)
class Problem:
    """One finding: severity, message and where (file relative to the data folder, row, column)."""

    severity: str
    message: str
    file: str | None = None
    row: int | None = None
    column: str | None = None

    @property
    def is_problem(self) -> bool:
        """True for errors and warnings (a ``note`` or ``info`` only describes a variant or conversion)."""
        return self.severity in ("error", "warning")

    @property
    def where(self) -> str:
        """``file, row N, column 'c'`` (the format of ``InputError``)."""
        parts = [self.file] if self.file else []
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.column is not None:
            parts.append(f"column '{self.column}'")
        return ", ".join(parts)

    def __str__(self) -> str:
        where = self.where
        return f"{self.severity.upper():<8}{where}: {self.message}" if where else f"{self.severity.upper():<8}{self.message}"


@dataclass
class DataCheck:
    """Everything ``inspect_data`` found: the problems and the counts of the summary."""

    root: Path
    problems: list[Problem] = field(default_factory=list)
    participants: int | None = None
    wrists: int | None = None
    videos: dict[str, int] = field(default_factory=lambda: {plane: 0 for plane in PLANES})
    readable_videos: int = 0
    mask_videos: int = 0
    mask_frames: int = 0
    accept_rows: int | None = None  # None = no qc_accept.csv
    source: str | None = None

    def rel(self, path: str | Path | None) -> str | None:
        """``path`` relative to the data folder where it lies inside it (shorter messages)."""
        if path is None:
            return None
        try:
            return Path(path).relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def add(self, severity: str, message: str, file: str | Path | None = None, row: int | None = None,
            column: str | None = None) -> None:
        self.problems.append(Problem(severity, message, self.rel(file), row, column))

    def add_error(self, err: InputError, severity: str = "error", *, row: int | None = None) -> None:
        """Record an ``InputError`` raised by a stage function (``row`` overrides the error's row)."""
        self.add(severity, err.reason, err.file, err.row if row is None else row, err.column)


# -- cohort.csv ----------------------------------------------------------------------------------


def _cell_checkers(path: Path) -> dict[str, Callable[[pd.Series], object]]:
    """The per-cell rules of ``read_cohort``, one per column, applied to a one-value Series."""
    return {
        "participant_id": lambda s: check_participant_id(s.iat[0], path, 1),
        "side": lambda s: parse_codes(s, SIDES, path, "side"),
        "sex": lambda s: parse_codes(s, SEXES, path, "sex"),
        "age": lambda s: parse_numbers(s, path, "age", allow_blank=False),
        "dominant_hand": lambda s: parse_codes(s, HANDS, path, "dominant_hand"),
        **{c: (lambda s, c=c: parse_numbers(s, path, c, allow_blank=True)) for c in NCS_COLUMNS},
    }


def check_cohort(layout: DataLayout, check: DataCheck) -> list[tuple[int, str, str]] | None:
    """Check ``cohort.csv`` with ``read_cohort``'s rules, reporting every bad cell, not just the first.

    Returns:
        ``(row, participant_id, side)`` of every row with a valid id (side "" where the side is
        invalid), to match video names against; None when the file cannot be read at all.
    """
    path = layout.cohort_csv
    try:
        for note in cohort_notes(path):
            check.add("note", note, path)
    except InputError:
        pass  # the same error is reported below
    try:
        cohort = read_cohort(path)
    except InputError as first:
        if first.row is None:  # missing file / column, unreadable, no rows: nothing more to check
            check.add_error(first)
            return None
    else:
        check.participants, check.wrists = cohort["participant_id"].nunique(), len(cohort)
        return [(i + 1, str(r.participant_id), str(r.side)) for i, r in enumerate(cohort.itertuples(index=False))]
    # read_cohort stops at the first bad cell: apply its rule to each cell on its own.
    raw = read_raw_cohort(path)
    bad = pd.DataFrame(False, index=raw.index, columns=raw.columns)
    blank = blank_rows(raw)
    for row in blank:  # one error per blank row, not one per empty cell
        check.add_error(blank_row_error(path, row))
        bad.iloc[row - 1, :] = True
    for column, rule in _cell_checkers(path).items():
        for i, value in enumerate(raw[column]):
            if i + 1 in blank:
                continue
            try:
                rule(pd.Series([value]))
            except InputError as err:
                check.add_error(err, row=i + 1)
                bad.iat[i, raw.columns.get_loc(column)] = True
    _check_rows(raw, bad, path, check)
    check.participants, check.wrists = raw["participant_id"].replace("", np.nan).nunique(), len(raw) - len(blank)
    # A row with a bad side keeps its id (side ""): its videos are then not reported as unmatched.
    ok = ~bad["participant_id"]
    return [(i + 1, raw.at[i, "participant_id"], "" if bad.at[i, "side"] else code_of(raw.at[i, "side"], "side"))
            for i in raw.index[ok]]


def _check_rows(raw: pd.DataFrame, bad: pd.DataFrame, path: Path, check: DataCheck) -> None:
    """``read_cohort``'s checks across rows (duplicate wrists, consistent participants) despite bad cells."""
    keys = raw[["participant_id", "side"]].apply(lambda col: col.map(lambda v: code_of(v, "side")) if col.name == "side" else col)
    invalid = pd.Series([f"<invalid row {i + 1}>" for i in raw.index], index=raw.index)
    keys = keys.mask(bad[["participant_id", "side"]], invalid, axis=0)
    try:
        check_wrists_unique(keys, path)
    except InputError as err:
        check.add_error(err)
    columns = ["sex", "age", "dominant_hand"]
    filled = raw[~bad.all(axis=1)]  # a wholly blank row is reported on its own
    if not bad.loc[filled.index, columns].to_numpy().any():  # compare only valid values (else a typo counts twice)
        people = filled[["participant_id"]].assign(
            sex=filled["sex"].map(lambda v: code_of(v, "sex")), age=filled["age"].astype(float),
            dominant_hand=filled["dominant_hand"].map(lambda v: code_of(v, "dominant_hand")),
        )
        try:
            check_participants_consistent(people, path)
        except InputError as err:
            check.add_error(err)


# -- acquisition.json ----------------------------------------------------------------------------


def check_acquisition(layout: DataLayout, check: DataCheck) -> Acquisition | None:
    """Read ``acquisition.json`` with ``ctslib.data.acquisition.read_acquisition``; None when it is unusable."""
    try:
        acquisition = read_acquisition(layout)
    except InputError as err:
        check.add_error(err)
        return None
    check.source = acquisition.source
    for column, note in spacing_notes(acquisition):
        check.add("note", note, layout.acquisition_json, column=column)
    return acquisition


def check_overrides(layout: DataLayout, acquisition: Acquisition | None, check: DataCheck) -> None:
    """Per-video overrides in ``acquisition.json`` must name a video that exists (else a typo)."""
    if acquisition is None:
        return
    for stem in acquisition.overrides:
        if layout.find_video(stem) is None:
            check.add("error", f"names video {stem!r}, but videos/ has no {stem} {EXPECTED_VIDEO} "
                      "(listed but missing; the override is never used)", layout.acquisition_json, column=f"videos.{stem}")


# -- video names ---------------------------------------------------------------------------------


def list_videos(layout: DataLayout, check: DataCheck) -> list[Path]:
    """Video files in ``videos/`` (supported extensions, any letter case); other entries are reported.

    Accepted variants get a NOTE: an extension not in lower case, a container other than
    mp4/avi/dcm (read through OpenCV's FFmpeg, like mp4), a side or plane not in canonical case.
    """
    folder = layout.videos_dir
    if not folder.is_dir():
        check.add("error", f"folder missing: videos go in videos/<participant_id>_<side>_<plane> {EXPECTED_VIDEO}", folder)
        return []
    videos = []
    for entry in sorted(folder.iterdir()):
        if is_os_litter(entry.name) or entry.name.startswith("."):
            continue
        if entry.is_dir() or entry.suffix.lower() not in VIDEO_EXTENSIONS:
            check.add("error", f"not a video: expected <participant_id>_<side>_<plane> {EXPECTED_VIDEO}", entry)
            continue
        videos.append(entry)
        _note_video_name(entry, check)
    return videos


def _note_video_name(path: Path, check: DataCheck) -> None:
    """NOTE lines for a video name the pipeline accepts although it is not in the documented form."""
    ext = path.suffix
    if ext.lower() in (".mov", ".m4v", ".mkv"):
        check.add("note", f"{ext.lower().lstrip('.')} container: read with OpenCV (FFmpeg) like .mp4", path)
    if ext != ext.lower():
        check.add("note", f"extension {ext!r} read as {ext.lower()!r}", path)
    canonical = canonical_stem(path.stem)
    if canonical != path.stem:
        check.add("note", f"name read as video {canonical!r} (side and plane in any letter case)", path)


def check_video_names(videos: Sequence[Path], wrists: list[tuple[int, str, str]] | None, layout: DataLayout,
                      check: DataCheck) -> None:
    """Every video name must be a cohort wrist + known plane; a wrist without a video for a plane is a warning.

    A missing plane is a WARNING, not an ERROR, because the run accepts it: stage 02 leaves that
    wrist out of the plane's model and says so on the report index (``ctslib.data.video.missing_video_warnings``).
    """
    by_stem: dict[str, list[Path]] = {}
    for path in videos:
        by_stem.setdefault(canonical_stem(path.stem), []).append(path)
    for stem, paths in by_stem.items():
        if len(paths) > 1:
            used = layout.find_video(stem)
            check.add("error", f"{len(paths)} videos share the stem {stem!r} ({', '.join(p.name for p in paths)}); "
                      f"the pipeline would use only {used.name if used else paths[0].name}", paths[0])
    if wrists is None:
        return
    known = {(pid, side) for _, pid, side in wrists}
    side_unknown = {pid for _, pid, side in wrists if not side}  # bad side already reported in cohort.csv
    for stem, paths in by_stem.items():  # one verdict per stem
        path = paths[0]
        parts = stem.rsplit("_", 2)
        if len(parts) != 3:
            check.add("error", "name must be <participant_id>_<side>_<plane>, e.g. S001_L_transverse", path)
        elif parts[2].lower() not in PLANES:
            check.add("error", f"unknown plane name {parts[2]!r}; expected {' or '.join(PLANES)} (any letter case)", path)
        elif parts[1].upper() not in SIDES:
            check.add("error", f"unknown side {parts[1]!r}; expected {' or '.join(SIDES)}", path)
        elif (parts[0], parts[1]) not in known and parts[0] not in side_unknown:
            check.add("error", f"matches no cohort wrist: cohort.csv has no row with participant_id {parts[0]!r} "
                      f"and side {parts[1]!r}", path)
        elif (parts[0], parts[1]) in known:
            check.videos[parts[2]] += 1
    for row, pid, side in wrists:
        if not side:
            continue
        for plane in PLANES:
            stem = video_stem(pid, side, plane)
            if layout.find_video(stem) is None:  # the run goes on without it and warns on the index
                check.add("warning", f"wrist {pid} {side} has no {plane} video (expected videos/{stem} {EXPECTED_VIDEO}); "
                          f"the run goes on without it: the wrist is left out of the {plane} model "
                          "(a warning on the report index)", layout.cohort_csv, row=row)


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
            prepare_frame(raw, header)  # stage 02's conversion; checks each frame's size
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
            masks = read_masks(entry, (header.height, header.width), frame_size=8)
        except InputError as err:
            check.add_error(err)
            continue
        _check_mask_frames(entry, sorted(masks), header, check)


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
    """Every accept-list row must name a known video and one of its extracted frames (``ctslib.frames.qc``)."""
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


# -- the whole folder ----------------------------------------------------------------------------


def inspect_data(layout: DataLayout, deep: bool = False) -> DataCheck:
    """Run every check on a data folder; read-only. See ``validate_data``."""
    check = DataCheck(root=layout.root)
    wrists = check_cohort(layout, check)
    acquisition = check_acquisition(layout, check)
    check_overrides(layout, acquisition, check)
    videos = list_videos(layout, check)
    check_video_names(videos, wrists, layout, check)
    headers: dict[str, VideoHeader] = {}
    unreadable: set[str] = set()
    for path in videos:
        stem = canonical_stem(path.stem)
        used = layout.find_video(stem)
        if used is not None and used != path:
            continue  # a second file with the same stem is never read by the pipeline
        settings = acquisition.for_video(stem) if acquisition else FALLBACK_SETTINGS
        header = check_video(path, settings, deep, check)
        if header is None:
            unreadable.add(stem)
        else:
            headers[stem] = header
            note_single_frame(header, check)
    check_duplicate_videos([p for p in videos if layout.find_video(canonical_stem(p.stem)) == p], check)
    check_masks(layout, headers, {canonical_stem(p.stem) for p in videos}, check)
    check_accept_list(layout, headers, unreadable, check)
    return check


def validate_data(layout: DataLayout, deep: bool = False) -> list[Problem]:
    """Every problem of a data folder, in the order checked (cohort, acquisition, videos, masks, QC list).

    Args:
        layout: the data folder (``ctslib.common.paths.data_layout(DATA_DIR)``).
        deep: decode every frame of every video (finds truncated files); else only the first.

    Returns:
        All findings, ``info`` lines included (filter with ``Problem.is_problem``). Nothing is written.
    """
    return inspect_data(layout, deep).problems


def summary_lines(check: DataCheck) -> list[str]:
    """The short summary printed after the problems."""
    people = "?" if check.participants is None else check.participants
    wrists = "?" if check.wrists is None else check.wrists
    planes = ", ".join(f"{check.videos[p]} {p}" for p in PLANES)
    masks = f"{check.mask_frames} frame(s) of {check.mask_videos} video(s)" if check.mask_videos else "none"
    accept = "none" if check.accept_rows is None else f"{check.accept_rows} rows"
    return [
        f"cohort:        {people} participants, {wrists} wrists",
        f"videos:        {planes} matched to cohort wrists; {check.readable_videos} readable",
        f"masks:         {masks}",
        f"expert list:   {accept}",
        f"source:        {check.source or '?'}"
        + (f" ({SYNTHETIC_CAVEAT})" if (check.source or "").lower() == "synthetic" else ""),
    ]


def report(check: DataCheck, deep: bool) -> str:
    """Problems (most serious first), then the summary and the verdict."""
    order = {s: i for i, s in enumerate(SEVERITIES)}
    problems = sorted(check.problems, key=lambda p: order[p.severity])  # stable: keeps the check order
    counts = {s: sum(p.severity == s for p in check.problems) for s in SEVERITIES}
    mode = "every frame decoded" if deep else "first frame of each video decoded; --deep decodes every frame"
    lines = [f"Checking {check.root} ({mode})", *map(str, problems), "", *summary_lines(check), ""]
    accepted = f"{counts['note']} note(s) on accepted variants, {counts['info']} conversion(s)"
    if counts["error"] or counts["warning"]:
        lines.append(f"PROBLEMS: {counts['error']} error(s), {counts['warning']} warning(s), {accepted}.")
    else:
        lines.append(f"OK: no problems found ({accepted}).")
    return "\n".join(lines)


def _quiet_decoders() -> None:
    """Silence OpenCV's and FFmpeg's own log lines: each failure is reported once, as a Problem."""
    import cv2

    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET; read when FFmpeg is first used
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m ctslib.data.validate DATA_DIR [--deep]``; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m ctslib.data.validate", description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", help="data folder (layout: docs/pipeline.md)")
    parser.add_argument("--deep", action="store_true", help="decode every frame of every video (slower)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    _quiet_decoders()
    layout = data_layout(args.data_dir)
    if not layout.root.is_dir():
        print(f"error: {layout.root} is not a folder", file=sys.stderr)
        return 2
    check = inspect_data(layout, deep=args.deep)
    print(report(check, args.deep))
    return 1 if any(p.is_problem for p in check.problems) else 0


if __name__ == "__main__":
    sys.exit(main())
