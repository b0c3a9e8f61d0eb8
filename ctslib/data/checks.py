"""The validator's findings (``Problem``, ``DataCheck``) and its checks of the folder's tables and names.

``cohort.csv`` is checked cell by cell with ``ctslib.data.cohort``'s own rules (reporting every bad
cell, where the stage stops at the first), ``acquisition.json`` through its one reader, and the names
in ``videos/`` against the cohort's wrists. The checks of the files' contents (videos, masks, the
expert's list) are ``ctslib.data.media_checks``; the whole folder and the command line are
``ctslib.data.validate``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ctslib import PLANES, SIDES
from ctslib.common.errors import InputError
from ctslib.common.paths import VIDEO_EXTENSIONS, DataLayout, canonical_stem, is_os_litter, video_stem
from ctslib.data.acquisition import Acquisition, read_acquisition, spacing_notes
from ctslib.data.cohort import (
    HANDS,
    NCS_COLUMNS,
    SEXES,
    blank_row_error,
    blank_rows,
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

SEVERITIES: tuple[str, ...] = ("error", "warning", "note", "info")
"""Problem levels, most serious first; ``error`` and ``warning`` make the exit code 1."""

EXPECTED_VIDEO = "with extension " + ", ".join(e.lstrip(".") for e in VIDEO_EXTENSIONS) + " (any letter case)"
"""How the messages name the accepted video files."""


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
    wrist out of the plane's model and says so on the report index (``ctslib.frames.jobs.missing_video_warnings``).
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
