"""Stage 02 as one sequence of verbs, in the order notebook 02 calls them.

``open_stage`` -> ``videos_to_extract`` -> ``open_videos`` -> ``expert_list`` -> ``extract`` ->
``image_regions`` -> ``funnel_table`` -> ``examples_figure`` -> ``truth_scores`` -> ``truth_by_reason``
-> ``headlines`` (recorded by the notebook).

Each verb prints what the notebook shows and writes the stage's tables, figures and report warnings;
the loops over videos live in ``ctslib.frames.extraction``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from ctslib import PLANES
from ctslib.common.display import SYNTHETIC_NOTE, title_figure
from ctslib.common.io import StageNotes, clear_report_warnings, save_figure, write_table
from ctslib.common.paths import DataLayout, RunPaths, canonical_stem, data_layout
from ctslib.common.seed import set_determinism
from ctslib.data.accept_list import match_accept_list, read_accept_list
from ctslib.data.acquisition import Acquisition, read_acquisition
from ctslib.data.video import VideoHeader
from ctslib.frames import funnel
from ctslib.frames.extraction import ExtractionResult, ExtractionSettings, extract_frames, probe_videos, region_figure_previews
from ctslib.frames.jobs import VideoJob, missing_video_warnings, read_wrists, video_jobs
from ctslib.frames.region import OVERLAY_MIN_SHARE, plot_regions

KEY = "02"
"""Stage key of frame extraction and QC."""


@dataclass(frozen=True)
class FrameStage(StageNotes):
    """Stage 02's folders and data source, which every later verb uses."""

    key: ClassVar[str] = KEY
    paths: RunPaths
    layout: DataLayout
    acquisition: Acquisition


def open_stage(data_dir: str | Path, work_dir: str | Path, report_dir: str | Path, *, seed: int) -> FrameStage:
    """Seed, clear the stage's old warnings, check stage 01 ran, and read ``acquisition.json``.

    Raises:
        FileNotFoundError: stage 01's wrists.csv is missing.
    """
    paths = RunPaths(Path(work_dir), Path(report_dir))
    layout = data_layout(data_dir)
    set_determinism(seed, tensorflow=False)  # no random step here; seeded for uniformity
    clear_report_warnings(KEY, paths.report)
    if not paths.wrists_csv.exists():
        raise FileNotFoundError(f"{paths.wrists_csv} not found: run 01_cohort_ncs_labelling.ipynb first")
    acquisition = read_acquisition(layout)
    print(f"data source: {acquisition.source}; probe: {acquisition.probe or 'not stated'}")
    if acquisition.is_synthetic:
        print(SYNTHETIC_NOTE)
    return FrameStage(paths, layout, acquisition)


def videos_to_extract(stage: FrameStage) -> tuple[pd.DataFrame, list[VideoJob], pd.DataFrame]:
    """Stage 01's graded wrists and one job per wrist and plane with a video; a graded plane without one is a warning.

    Returns:
        The wrists, the jobs, and the wrist-planes left out counted by plane and why (what the notebook shows).
    """
    wrists = read_wrists(stage.paths.wrists_csv)
    jobs, left_out = video_jobs(wrists, PLANES)
    for warning in missing_video_warnings(left_out):  # validate says the same (WARNING)
        stage.warn(warning)
    print(f"{len(wrists)} wrists -> {len(jobs)} videos to extract; {len(left_out)} wrist-planes have none")
    shown = left_out.groupby(["plane", "why"]).size().rename("wrist-planes").reset_index() if len(left_out) else left_out
    return wrists, jobs, shown


def open_videos(stage: FrameStage, jobs: Sequence[VideoJob], *, skip_bad_inputs: bool
                ) -> tuple[dict[VideoJob, VideoHeader], list[dict[str, str]]]:
    """Open every job's video before anything is written (``ctslib.frames.extraction.probe_videos``)."""
    headers, skipped = probe_videos(jobs, stage.layout, stage.acquisition, skip_bad_inputs=skip_bad_inputs)
    timing = pd.Series([h.timing_source for h in headers.values()]).value_counts()
    print(f"{len(headers)} videos opened; frame timing from: {timing.to_dict()}")
    print(f"source frame rates: {sorted({round(h.fps, 3) for h in headers.values()})} fps")
    return headers, skipped


def expert_list(stage: FrameStage, wrists: pd.DataFrame, jobs: Sequence[VideoJob], headers: Mapping[VideoJob, VideoHeader],
                *, use: bool, target_fps: float) -> dict[str, set[int]] | None:
    """The expert's accepted frames per video stem (``DATA/qc_accept.csv``), or None without a list (or with ``use`` off).

    Rows naming a video of the cohort that is not extracted (no grade, skipped) are passed over.
    """
    if not (use and stage.layout.qc_accept_csv.exists()):
        print("no expert accept-list: the automatic QC decides")
        return None
    schedules = {job.stem: header.schedule(target_fps) for job, header in headers.items()}
    accept_list = read_accept_list(stage.layout.qc_accept_csv)
    files = wrists[["video_transverse", "video_longitudinal"]].to_numpy().ravel()
    known = {job.stem for job in jobs} | {canonical_stem(Path(f).stem) for f in files if f}
    accepted = match_accept_list(accept_list, schedules, target_fps=target_fps, file=stage.layout.qc_accept_csv,
                                 ignore=known - set(schedules))
    print(f"expert accept-list: {len(accept_list)} rows -> {sum(len(v) for v in accepted.values())} frames accepted")
    return accepted


def extract(stage: FrameStage, headers: Mapping[VideoJob, VideoHeader], settings: ExtractionSettings, *,
            accepted: Mapping[str, set[int]] | None, skipped: Sequence[dict[str, str]], workers: int) -> ExtractionResult:
    """Extract, QC and write every video's frames (``ctslib.frames.extraction.extract_frames``); table the skipped inputs.

    The generator's bad-frame labels (``truth/frames.csv``, synthetic data only) are read for scoring, never for deciding.
    """
    truth_csv = stage.layout.truth_dir / "frames.csv"
    truth = funnel.read_truth_frames(truth_csv) if truth_csv.exists() else None
    result = extract_frames(headers, stage.layout, stage.acquisition, stage.paths, settings, accepted=accepted,
                            truth=truth, skipped=skipped, workers=workers)
    for warning in result.warnings:
        stage.warn(warning)
    write_table(result.skipped, "skipped_inputs", stage.paths.tables,
                caption="Inputs skipped with SKIP_BAD_INPUTS (empty when every video was read)")
    frames = result.frames
    print(f"{len(frames)} frames extracted from {frames.groupby(['wrist_id', 'plane']).ngroups} videos "
          f"({result.source_frames_per_s:.0f} source frames/s decoded per process); {int(frames['kept'].sum())} kept; "
          f"{int(frames['has_png'].sum())} PNGs; {len(result.skipped)} videos skipped")
    return result


def image_regions(stage: FrameStage, result: ExtractionResult) -> None:
    """The ``image_regions`` table and figure: the region each video was cut to, its text boxes and overlays."""
    regions = result.regions
    write_table(regions, "image_regions", stage.paths.tables,
                caption="Image region per video (pixels of the source frame), burned-in text boxes, coloured overlay share")
    fig = plot_regions(region_figure_previews(result))
    title_figure(fig, "Detected image region per video (yellow box; grey = outside)", stage.acquisition.source)
    save_figure(fig, "image_regions", stage.paths.figures)
    print(f"{int(regions['cut'].sum())} of {len(regions)} videos cut to an image region; "
          f"{int((regions['text_boxes'] > 0).sum())} with burned-in text; "
          f"{int((regions['overlay_share'] >= OVERLAY_MIN_SHARE).sum())} with coloured overlays")


def funnel_table(stage: FrameStage, frames: pd.DataFrame) -> pd.DataFrame:
    """The ``qc_funnel`` table and figure: extracted -> rejected per reason -> kept, beside the paper's."""
    table = funnel.qc_funnel(frames, PLANES)
    write_table(table, "qc_funnel", stage.paths.tables,
                caption="QC funnel: frames extracted at 5 fps, rejected per reason, kept; paper beside", floatfmt=".5g")
    fig = funnel.plot_qc_funnel(table, PLANES)
    title_figure(fig, "Quality control: frames kept and rejected per reason", stage.acquisition.source)
    save_figure(fig, "qc_funnel", stage.paths.figures)
    return table


def examples_figure(stage: FrameStage, result: ExtractionResult) -> None:
    """The ``qc_examples`` figure: example frames per automatic verdict."""
    fig = funnel.plot_qc_examples(result.examples)
    title_figure(fig, "QC examples: frames kept and rejected, one row per automatic verdict", stage.acquisition.source)
    save_figure(fig, "qc_examples", stage.paths.figures)


def truth_scores(stage: FrameStage, result: ExtractionResult) -> pd.DataFrame | None:
    """The ``qc_vs_truth`` table: automatic QC's precision and recall against the generator's labels; None on real data."""
    if result.scoring is None:
        print("no generator labels (real data): QC precision/recall cannot be measured")
        return None
    versus = funnel.qc_vs_truth(result.scoring, PLANES)
    write_table(versus, "qc_vs_truth", stage.paths.tables, caption="Automatic QC vs the generator's bad-frame labels (synthetic data)")
    return versus


def truth_by_reason(stage: FrameStage, result: ExtractionResult) -> pd.DataFrame | None:
    """The ``qc_vs_truth_by_reason`` table: the generator's defect against the QC reason; None on real data."""
    if result.scoring is None:
        return None
    by_reason = funnel.qc_vs_truth_by_reason(result.scoring)
    write_table(by_reason, "qc_vs_truth_by_reason", stage.paths.tables,
                caption="Generator's defect (rows) vs automatic QC reason (columns), frame counts")
    return by_reason


def headlines(result: ExtractionResult, *, accepted: Mapping[str, set[int]] | None,
              versus: pd.DataFrame | None) -> dict[str, Any]:
    """The stage's headline numbers, in the order they are recorded (read by the report index and the tests)."""
    frames, regions = result.frames, result.regions
    out: dict[str, Any] = {
        "n_videos": int(frames.groupby(["wrist_id", "plane"]).ngroups),
        "n_extracted": int(len(frames)),
        "n_kept": int(frames["kept"].sum()),
    }
    for plane in PLANES:
        out[f"n_extracted_{plane}"] = int((frames["plane"] == plane).sum())
        out[f"n_kept_{plane}"] = int((frames["kept"] & (frames["plane"] == plane)).sum())
    out.update({
        "n_with_mask": int(frames["has_mask"].sum()),
        "n_png": int(frames["has_png"].sum()),
        "n_skipped_inputs": int(len(result.skipped)),
        "n_cut_to_region": int(regions["cut"].sum()),
        "n_text_videos": int((regions["text_boxes"] > 0).sum()),
        "n_report_warnings": len(result.warnings),
        "expert_list": accepted is not None,
        "source_frames_per_s": round(result.source_frames_per_s, 1),
    })
    if versus is not None:
        overall = versus.set_index("plane").loc["all"]
        out["qc_precision"] = round(float(overall["precision"]), 4)
        out["qc_recall"] = round(float(overall["recall"]), 4)
    return out
