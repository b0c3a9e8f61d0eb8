"""Stage 02's loops over videos: open every video, find its image region, extract at 5 fps, QC, write frames.

Notebook 02 tells the story through the verbs of ``ctslib.frames.stage`` (which videos, the expert
list, the funnel, the figures); the loops that open files, stage outputs, skip bad inputs and time
the decoding live here:

* ``probe_videos``: open every video of the jobs (``ctslib.data.video.probe_video``), or skip and list it;
* ``screen_video``: from the first frames of a video, its image region (screen captures), burned-in
  text inside it and coloured overlays (``ctslib.frames.region``);
* ``extract_frames``: per video, masks checked and read, frames extracted, cut to the region,
  QC-scored and decided, PNGs written; ``frames.csv`` and the PNG folders replace the old ones only
  when every video succeeded (``ctslib.frames.jobs.staged_dirs``).

Nothing is dropped silently: every finding a reader must see (text, overlays, a participant or a
grade that QC emptied) is returned in ``ExtractionResult.warnings`` for the notebook to put on the
report index (``ctslib.common.io.warn_report``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ctslib import GRADES, PLANES
from ctslib.common.errors import InputError
from ctslib.common.io import write_csv
from ctslib.common.parallel import ordered_map
from ctslib.common.paths import DataLayout, RunPaths
from ctslib.data.acquisition import Acquisition
from ctslib.data.masks import check_mask_frames, find_masks, mask_indices
from ctslib.data.timing import TARGET_FPS
from ctslib.data.video import VideoHeader, colour_frame, iter_source_frames, probe_video, source_gray
from ctslib.frames import funnel, qc
from ctslib.frames.jobs import VideoJob, frame_table, skip_record, staged_dirs, write_frame_pngs
from ctslib.frames.prepare import FRAME_SIZE, extract_video, read_frame_masks
from ctslib.frames.region import (
    OVERLAY_MIN_SHARE,
    Region,
    distinct_frames,
    find_region,
    find_text_boxes,
    frame_quantiles,
    overlay_share,
    region_preview,
)

SKIPPED_COLUMNS: tuple[str, ...] = ("wrist_id", "plane", "step", "error")
REGION_COLUMNS: tuple[str, ...] = (
    "wrist_id", "plane", "source_width", "source_height", "x0", "y0", "x1", "y1", "cut", "method",
    "text_boxes", "overlay_share", "overlay_masked",
)
"""Columns of the ``image_regions`` table: what was found in each video (pseudonymised)."""

EXAMPLES_PER_REASON: int = 4
"""Example frames kept per QC verdict for the ``qc_examples`` figure."""


@dataclass(frozen=True)
class ExtractionSettings:
    """Stage 02's parameters (notebook 02) that decide how frames are made.

    Attributes:
        target_fps: frames per second extracted (the paper: 5).
        frame_size: side of the square frames (the paper: 256).
        png_policy: which frames get a PNG (``ctslib.frames.jobs.PNG_POLICIES``).
        skip_bad_inputs: skip (and list) an unreadable video or mask instead of stopping.
        text_bands: (top, bottom) fractions of the image region's height blacked out in every
            video, added to the bands ``acquisition.json`` sets for the scanner or the video.
        find_region: cut every video to its image region (screen captures, scanner exports).
        detect_text: black out burned-in text found inside the region.
        mask_overlay: inpaint coloured overlays (contours, calipers) instead of only reporting them.
        region_frames: how many of a video's extracted frames, spread over it, the screening looks at.
        thresholds: automatic QC thresholds.
    """

    target_fps: float = TARGET_FPS
    frame_size: int = FRAME_SIZE
    png_policy: str = "kept+masked"
    skip_bad_inputs: bool = False
    text_bands: tuple[tuple[float, float], ...] = ()
    find_region: bool = True
    detect_text: bool = True
    mask_overlay: bool = False
    region_frames: int = 16
    thresholds: qc.QCThresholds = field(default_factory=qc.QCThresholds)


@dataclass(frozen=True)
class VideoScreen:
    """What ``screen_video`` found in one video (region, text boxes in region pixels, overlay share)."""

    region: Region
    text_boxes: tuple[tuple[int, int, int, int], ...]
    overlay_share: float
    preview: np.ndarray = field(repr=False)
    text_searched: bool = True  # False: too few distinct frames to tell still text from still anatomy

    @property
    def has_overlay(self) -> bool:
        return self.overlay_share >= OVERLAY_MIN_SHARE


@dataclass
class ExtractionResult:
    """Everything ``extract_frames`` made besides the files: tables for the notebook to show."""

    frames: pd.DataFrame
    skipped: pd.DataFrame
    regions: pd.DataFrame
    examples: dict[str, list[tuple[str, np.ndarray]]]
    previews: list[tuple[str, np.ndarray, Region]]
    scoring: pd.DataFrame | None
    warnings: list[str]
    decode_seconds: float
    source_frames: int

    @property
    def source_frames_per_s(self) -> float:
        return self.source_frames / self.decode_seconds if self.decode_seconds > 0 else float("nan")


# -- opening -------------------------------------------------------------------------------------


def probe_videos(
    jobs: Sequence[VideoJob], layout: DataLayout, acquisition: Acquisition, *, skip_bad_inputs: bool = False
) -> tuple[dict[VideoJob, VideoHeader], list[dict[str, str]]]:
    """Open every job's video; an unreadable one raises, or with ``skip_bad_inputs`` is listed and left out."""
    headers: dict[VideoJob, VideoHeader] = {}
    skipped: list[dict[str, str]] = []
    for job in jobs:
        try:
            headers[job] = probe_video(layout.videos_dir / job.file, acquisition.for_video(job.stem))
        except InputError as err:
            if not skip_bad_inputs:
                raise
            skipped.append(skip_record(job, "open", err))
    return headers, skipped


# -- screening -----------------------------------------------------------------------------------


def spread_indices(schedule: Sequence[int], count: int) -> list[int]:
    """``count`` source indices spread evenly over a video's schedule (all of them when it is shorter)."""
    schedule = list(schedule)
    if len(schedule) <= count:
        return schedule
    return [schedule[int(round(i))] for i in np.linspace(0, len(schedule) - 1, count)]


def seek_frames(header: VideoHeader, indices: Sequence[int]) -> list[np.ndarray]:
    """Decoded frames at ``indices``, spread over the video (OpenCV: by seeking, approximate for some
    codecs, which is fine for screening; DICOM: exact). Frames that cannot be read are left out."""
    if header.kind == "dicom":
        return [raw for _, raw in iter_source_frames(header, indices)]
    import cv2

    capture = cv2.VideoCapture(str(header.path), cv2.CAP_FFMPEG)
    frames = []
    try:
        for index in indices:
            capture.set(cv2.CAP_PROP_POS_FRAMES, int(index))
            ok, frame = capture.read()
            if ok and frame is not None and frame.shape[:2] == (header.height, header.width):
                frames.append(frame)
    finally:
        capture.release()
    return frames


def screen_video(header: VideoHeader, settings: ExtractionSettings) -> VideoScreen:
    """Image region, burned-in text and colour overlays of one video, from frames spread over it.

    Spread frames, not the first ones: a video that starts with the probe in the air or a frozen
    display still shows its moving image in the rest.
    """
    schedule = header.schedule(settings.target_fps)["source_index"].tolist()
    raws = seek_frames(header, spread_indices(schedule, settings.region_frames))
    if not raws:  # nothing decodable by seeking: the first frames, decoded in order
        raws = [raw for _, raw in iter_source_frames(header, schedule[: settings.region_frames])]
    grays = [source_gray(raw, header) for raw in raws]
    shape = (header.height, header.width)
    region = find_region(grays) if settings.find_region else Region.full(shape, "full frame (IMAGE_REGION off)")
    boxes = tuple(find_text_boxes([region.crop(g) for g in grays])) if settings.detect_text else ()
    share = overlay_share([colour_frame(raw, header) for raw in raws], region, header.channel_order)
    median = frame_quantiles(grays, (0.5,))[0]
    searched = not settings.detect_text or len(distinct_frames(np.asarray(grays))) >= 3
    return VideoScreen(region=region, text_boxes=boxes, overlay_share=share, preview=region_preview(median, region, boxes),
                       text_searched=searched)


def screen_warnings(label: str, screen: VideoScreen, settings: ExtractionSettings, text_bands: Sequence) -> list[str]:
    """Report-index warnings for one video's screening (burned-in text, colour overlays)."""
    out = []
    if not screen.text_searched and not text_bands:
        out.append(f"{label}: fewer than 3 distinct frames, so burned-in text inside the image cannot be told from "
                   "anatomy and none was blacked out. If the scanner writes text there (exam id, date), set "
                   "\"text_bands\" in acquisition.json or run_all.py --set TEXT_BANDS=...")
    if screen.text_boxes:
        advice = "" if text_bands else (" TEXT_BANDS is empty: if the scanner always writes text there, set "
                                        "\"text_bands\" in acquisition.json or run_all.py --set TEXT_BANDS=...")
        out.append(f"{label}: burned-in text found inside the image region ({len(screen.text_boxes)} box(es)); "
                   f"blacked out in every frame before saving.{advice}")
    if screen.has_overlay:
        if settings.mask_overlay:
            out.append(f"{label}: coloured overlays (contours, calipers) on {100 * screen.overlay_share:.2f} % of the "
                       "image; inpainted (OVERLAY_MASK).")
        else:
            out.append(f"{label}: coloured overlays (contours, calipers) on {100 * screen.overlay_share:.2f} % of the "
                       "image; they stay in the frames the models see. Set OVERLAY_MASK = True (run_all.py --set "
                       "OVERLAY_MASK=true) to inpaint them.")
    return out


def region_row(job: VideoJob, header: VideoHeader, screen: VideoScreen, settings: ExtractionSettings) -> dict:
    """One row of the ``image_regions`` table."""
    r = screen.region
    return {"wrist_id": job.wrist_id, "plane": job.plane, "source_width": header.width, "source_height": header.height,
            "x0": r.x0, "y0": r.y0, "x1": r.x1, "y1": r.y1, "cut": r.is_cropped, "method": r.method, "text_boxes": len(screen.text_boxes),
            "overlay_share": round(screen.overlay_share, 6), "overlay_masked": bool(settings.mask_overlay and screen.has_overlay)}


# -- extraction ----------------------------------------------------------------------------------


def read_video_masks(layout: DataLayout, job: VideoJob, header: VideoHeader, frames: pd.DataFrame,
                     region: Region, frame_size: int) -> dict[int, np.ndarray]:
    """The masks of the extracted frames of one video, checked to lie on the video's frames (0-based)."""
    mask_file = find_masks(layout, job.stem)
    if mask_file is None:
        return {}
    check_mask_frames(mask_indices(mask_file), header.n_frames, mask_file)
    return read_frame_masks(mask_file, (header.height, header.width), frames["source_index"], frame_size=frame_size,
                            region=region)


def unused_mask_warning(label: str, layout: DataLayout, job: VideoJob, masks: Mapping[int, np.ndarray],
                        target_fps: float) -> list[str]:
    """A warning when a video has masks but none lies on a frame extracted at ``target_fps`` (they go unused)."""
    mask_file = find_masks(layout, job.stem)
    if mask_file is None or masks:
        return []
    count = len(mask_indices(mask_file))
    return [f"{label}: none of its {count} nerve mask(s) is on a frame extracted at {target_fps:g} fps, so they are "
            "not used (masks are numbered by source frame, first frame = 0; see ctslib.data.validate)."] if count else []


def emptied_warnings(frames: pd.DataFrame) -> list[str]:
    """Warnings for participants and grades that had frames but have none left after QC."""
    out = []
    kept = frames["kept"].astype(bool)
    for pid, group in frames.groupby("participant_id", sort=True):
        if not kept[group.index].any():
            out.append(f"participant {pid}: QC kept none of its {len(group)} frames; it is left out of every later stage. "
                       "See tables/qc_funnel and figures/qc_examples; QC_DISABLE / the QC_* thresholds relax QC.")
    for plane in PLANES:
        part = frames[frames["plane"] == plane]
        for grade in GRADES:
            group = part[part["grade"] == grade]
            if len(group) and not kept[group.index].any():
                out.append(f"{plane}: QC kept no frame of grade '{grade}' ({len(group)} extracted); the {plane} model "
                           "cannot learn that grade.")
    return out


@dataclass(frozen=True)
class VideoTask:
    """One video's share of stage 02, as plain data a worker process can take (``extract_one``)."""

    job: VideoJob
    header: VideoHeader
    layout: DataLayout
    settings: ExtractionSettings
    bands: tuple[tuple[float, float], ...]
    accepted: frozenset[int] | None
    truth: pd.DataFrame | None
    frames_out: Path
    masks_out: Path


@dataclass
class VideoOutcome:
    """What ``extract_one`` made of one video besides its PNGs (or the error that skipped it)."""

    job: VideoJob
    table: pd.DataFrame | None = None
    region: dict | None = None
    preview: tuple[str, np.ndarray, Region] | None = None
    warnings: list[str] = field(default_factory=list)
    examples: dict[str, tuple[str, np.ndarray]] = field(default_factory=dict)
    scoring: pd.DataFrame | None = None
    decode_seconds: float = 0.0
    source_frames: int = 0
    error: InputError | None = None


def extract_one(task: VideoTask) -> VideoOutcome:
    """Screen, extract, read masks, QC and write the PNGs of one video (runs in a worker process).

    An ``InputError`` is returned in the outcome, not raised, when ``skip_bad_inputs`` is on;
    otherwise it is raised (and the caller's staging folders are discarded).
    """
    job, header, settings = task.job, task.header, task.settings
    try:
        started = time.perf_counter()
        screen = screen_video(header, settings)
        video = extract_video(header, target_fps=settings.target_fps, frame_size=settings.frame_size,
                              text_bands=task.bands, region=screen.region, text_boxes=screen.text_boxes,
                              mask_overlay=settings.mask_overlay and screen.has_overlay)
        decode_seconds = time.perf_counter() - started
        masks = read_video_masks(task.layout, job, header, video.frames, screen.region, settings.frame_size)
    except InputError as err:
        if not settings.skip_bad_inputs:
            raise
        return VideoOutcome(job, error=err)
    decision = qc.final_decision(qc.qc_video(video.images, settings.thresholds), video.frames["sample_index"],
                                 None if task.accepted is None else set(task.accepted))
    table = frame_table(job, video, masks, decision)
    table["has_png"] = write_frame_pngs(table, video.images, masks, task.frames_out, task.masks_out, settings.png_policy)
    examples = {}
    for i, reason in enumerate(table["auto_reason"]):  # this video's first frame of each verdict
        examples.setdefault(reason, (f"{job.label} t={table['time_s'].iloc[i]:.1f}s", video.images[i]))
    scoring = None
    if task.truth is not None:
        scoring = table[["plane", "auto_kept", "auto_reason"]].assign(
            true_reason=funnel.true_reasons(task.truth, job.stem, table["source_index"]))
    return VideoOutcome(
        job, table=table, region=region_row(job, header, screen, settings),
        preview=(job.label, screen.preview, screen.region),
        warnings=screen_warnings(job.label, screen, settings, task.bands)
        + unused_mask_warning(job.label, task.layout, job, masks, settings.target_fps),
        examples=examples, scoring=scoring, decode_seconds=decode_seconds,
        source_frames=int(video.frames["source_index"].max()) + 1,
    )


def extract_frames(
    headers: Mapping[VideoJob, VideoHeader],
    layout: DataLayout,
    acquisition: Acquisition,
    paths: RunPaths,
    settings: ExtractionSettings = ExtractionSettings(),
    *,
    accepted: Mapping[str, set[int]] | None = None,
    truth: pd.DataFrame | None = None,
    skipped: Sequence[dict[str, str]] = (),
    progress: bool = True,
    workers: int = 1,
) -> ExtractionResult:
    """Stage 02's work on every opened video; writes frames.csv and the frame/mask PNGs of the run.

    Args:
        headers: opened videos (``probe_videos``).
        layout: the data folder (masks).
        acquisition: ``acquisition.json`` (per-video text bands).
        paths: the run's folders (``frames_csv``, ``frames_dir``, ``frame_masks_dir``).
        settings: stage parameters.
        accepted: expert accept-list per video stem (``ctslib.data.accept_list.match_accept_list``) or None.
        truth: the generator's bad-frame labels (synthetic data; scoring only).
        skipped: videos already skipped while opening (listed in ``skipped``).
        progress: show a progress bar.
        workers: videos extracted side by side in that many processes (``ctslib.common.parallel``); the
            outputs are the same for any number.

    Raises:
        InputError: a video or mask cannot be read (unless ``settings.skip_bad_inputs``), or no
            video could be extracted. Old outputs then stay as they were.
    """
    from tqdm.auto import tqdm

    skipped_rows = list(skipped)
    tables, scoring, regions, previews, warnings = [], [], [], [], []
    examples: dict[str, list[tuple[str, np.ndarray]]] = {}
    decode_seconds, source_frames = 0.0, 0
    with staged_dirs(paths.frames_dir, paths.frame_masks_dir) as (frames_out, masks_out):
        tasks = [
            VideoTask(job, header, layout, settings,
                      bands=tuple(acquisition.for_video(job.stem).text_bands) + tuple(tuple(b) for b in settings.text_bands),
                      accepted=None if accepted is None else frozenset(accepted.get(job.stem, set())),
                      truth=None if truth is None else truth[truth["video"] == job.stem],
                      frames_out=frames_out, masks_out=masks_out)
            for job, header in headers.items()
        ]
        outcomes = ordered_map(extract_one, tasks, workers)
        for outcome in tqdm(outcomes, total=len(tasks), desc="extracting frames", disable=not progress):
            if outcome.error is not None:
                skipped_rows.append(skip_record(outcome.job, "extract", outcome.error))
                continue
            decode_seconds += outcome.decode_seconds
            source_frames += outcome.source_frames
            warnings += outcome.warnings
            regions.append(outcome.region)
            previews.append(outcome.preview)
            tables.append(outcome.table)
            for reason, example in outcome.examples.items():  # at most one example per video and verdict
                chosen = examples.setdefault(reason, [])
                if len(chosen) < EXAMPLES_PER_REASON:
                    chosen.append(example)
            if outcome.scoring is not None:
                scoring.append(outcome.scoring)
        if not tables:
            raise InputError("no video could be extracted", file=layout.videos_dir)
        frames = pd.concat(tables, ignore_index=True)
        write_csv(frames, paths.frames_csv)
    warnings += emptied_warnings(frames)
    if skipped_rows:
        warnings.append(f"{len(skipped_rows)} video(s) skipped as unreadable (SKIP_BAD_INPUTS); their wrists and planes "
                        "are listed in tables/skipped_inputs and left out of every later stage.")
    return ExtractionResult(
        frames=frames,
        skipped=pd.DataFrame(skipped_rows, columns=list(SKIPPED_COLUMNS)),
        regions=pd.DataFrame(regions, columns=list(REGION_COLUMNS)),
        examples=examples,
        previews=previews,
        scoring=pd.concat(scoring, ignore_index=True) if scoring else None,
        warnings=warnings,
        decode_seconds=decode_seconds,
        source_frames=source_frames,
    )


def region_figure_previews(result: ExtractionResult, limit: int = 8) -> list[tuple[str, np.ndarray, Region]]:
    """The previews to show: cut videos first (what the detection did), then others, at most ``limit``."""
    cut = [p for p in result.previews if p[2].is_cropped]
    rest = [p for p in result.previews if not p[2].is_cropped]
    return (cut + rest)[:limit]
