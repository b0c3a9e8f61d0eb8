"""Check a data folder before a run: every problem at once, each naming its file, row and column.

``python -m ctslib.data.validate DATA_DIR [--deep]`` reads a folder in the layout of docs/pipeline.md
and prints every problem found (the stages stop at the first one), then a short summary. It
writes nothing. Exit code: 0 clean, 1 problems found, 2 usage error (no such folder, bad option).

The checks are the stages' own: cohort cells through ``ctslib.data.cohort``, ``acquisition.json``,
videos through ``ctslib.data.video``, masks through ``ctslib.data.masks``, the expert accept-list
through ``ctslib.data.accept_list``. What the checks add is what no single stage sees: files whose
names match no cohort wrist or video, wrists without a video, per-video overrides for videos that do
not exist, masks outside the video, and the choice to go on after a problem (the checks:
``ctslib.data.checks`` for the tables and names, ``ctslib.data.media_checks`` for the files' contents;
this module runs them over the whole folder and is the command line). By default each video is opened and its first
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
from collections.abc import Sequence

from ctslib import PLANES
from ctslib.common.display import SYNTHETIC_CAVEAT
from ctslib.common.paths import DataLayout, canonical_stem, data_layout
from ctslib.data.acquisition import VideoSettings
from ctslib.data.checks import SEVERITIES, DataCheck, Problem, check_acquisition, check_cohort, check_overrides, \
    check_video_names, list_videos
from ctslib.data.media_checks import check_accept_list, check_duplicate_videos, check_masks, check_video, note_single_frame
from ctslib.data.video import VideoHeader

FALLBACK_SETTINGS = VideoSettings(pixel_spacing_mm=(1.0, 1.0), fps=None)
"""Used to open videos when ``acquisition.json`` is unusable (that problem is reported on its own)."""


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
