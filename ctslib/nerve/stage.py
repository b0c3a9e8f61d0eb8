"""Stage 03 as one sequence of verbs: segment the nerve, cut nerve-centred crops, say how well it went.

Notebook 03 calls, in order:

``open_stage`` -> ``input_frames`` -> ``open_segmenter`` -> ``adapt`` -> ``open_presence`` ->
``cut_crops`` -> ``no_nerve_table`` -> ``presence_table`` -> ``csa_table`` -> ``crop_examples`` ->
``real_check`` -> ``real_worst_figure`` -> ``headlines`` (recorded by the notebook).

Each verb prints what the notebook shows and writes the stage's tables, figures, warnings and
hand-off files (``segmenter.keras``, ``crops/``, ``crops.csv``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from ctslib import PLANES
from ctslib.common.display import figure_title
from ctslib.common.io import StageNotes, clear_report_warnings, save_figure, write_csv, write_table
from ctslib.common.paths import USGRA_SEG_DIR, DataLayout, RunPaths, data_layout
from ctslib.common.seed import set_determinism
from ctslib.data.acquisition import read_acquisition
from ctslib.data.usgra import USGRA_ATTRIBUTION
from ctslib.nerve import crop, crop_summary, pretrained
from ctslib.nerve.crop_figures import example_figure
from ctslib.nerve.finetune import FineTuning, adapt_segmenter, choose_mode
from ctslib.nerve.frames import masked_frames, read_frames
from ctslib.nerve.hints import load_hints
from ctslib.nerve.presence import Presence, load_presence, run_presence_check, usgra_presence_check
from ctslib.nerve.realcheck import plot_usgra_worst, usgra_check, usgra_summary
from ctslib.nerve.unet import save_segmenter

KEY = "03"
"""This stage's key (records, report warnings)."""

SELECTION_RECORDS: tuple[str, ...] = (
    "val_score_shipped", "val_score_fine_tuned", "val_dice_shipped", "val_dice_fine_tuned", "val_nerve_frames",
    "val_participants", "val_empty_frames", "val_empty_called_nerve_shipped", "val_empty_called_nerve_fine_tuned",
)
"""Numbers of ``choose_weights``'s decision recorded as ``seg_<key>``."""


@dataclass(frozen=True)
class NerveStage(StageNotes):
    """Stage 03's folders and data source, which every later verb uses."""

    key: ClassVar[str] = KEY
    paths: RunPaths
    layout: DataLayout
    source: str


@dataclass(frozen=True)
class StageFrames:
    """Stage 02's frames as stage 03 uses them.

    Attributes:
        all: every row of frames.csv (validated).
        kept: the frames QC kept: these are segmented and cropped.
        masked: every frame with a nerve mask and a PNG, kept or not: the segmenter's fine-tuning pool.
        hints: marked nerve points per (wrist_id, plane) from ``DATA/nerve_hints.csv`` ({} without one).
    """

    all: pd.DataFrame
    kept: pd.DataFrame
    masked: pd.DataFrame
    hints: dict[tuple[str, str], tuple[float, float]]


@dataclass(frozen=True)
class Segmenter:
    """The segmenter stage 03 starts from: the model, its card and the resolved ``SEG_MODE``."""

    model: Any
    card: dict[str, Any]
    mode: str
    weights: Path

    @property
    def input_size(self) -> int:
        """The model's square input side (pixels)."""
        return int(self.card["input_size"])


@dataclass(frozen=True)
class RealCheck:
    """The shipped segmenter on the usgra-seg test images: per-image scores and their summary."""

    model: Any
    table: pd.DataFrame
    summary: pd.DataFrame


def open_stage(data_dir: str | Path, work_dir: str | Path, report_dir: str | Path, *, seed: int) -> NerveStage:
    """Seed everything, clear this stage's old report warnings, check stage 02 ran, say which data this is.

    Raises:
        FileNotFoundError: stage 02's frames.csv is missing.
    """
    paths = RunPaths(Path(work_dir), Path(report_dir))
    layout = data_layout(data_dir)
    set_determinism(seed)
    clear_report_warnings(KEY, paths.report)
    if not paths.frames_csv.exists():
        raise FileNotFoundError(f"{paths.frames_csv} not found: run 02_frame_extraction_qc.ipynb first")
    source = read_acquisition(layout).source
    print(f"data: {layout.root.name} (source: {source})")
    return NerveStage(paths, layout, source)


def input_frames(stage: NerveStage) -> tuple[StageFrames, pd.DataFrame]:
    """Stage 02's frames, the kept and the masked ones and the nerve hints; the kept frames per plane."""
    frames = read_frames(stage.paths.frames_csv)
    kept = frames[frames["kept"]].reset_index(drop=True)
    masked = masked_frames(frames)
    hints = load_hints(stage.layout.nerve_hints_csv, stage.paths.id_map_csv)
    print(f"{len(frames)} frames, {len(kept)} kept; {len(masked)} with a nerve mask "
          f"({int(masked['kept'].sum())} of them kept) from {masked['participant_id'].nunique()} participants; "
          f"nerve hints for {len(hints)} videos")
    return StageFrames(frames, kept, masked, hints), kept.groupby("plane").size().rename("kept frames").to_frame()


def shipped_weights(weights: str) -> Path:
    """The segmenter file to start from: ``weights``, or the shipped one when it is empty."""
    return Path(weights) if weights else pretrained.SHIPPED_WEIGHTS


def open_segmenter(frames: StageFrames, weights: str, requested_mode: str) -> Segmenter:
    """Load the segmenter to start from and resolve ``SEG_MODE`` for the masks at hand (``choose_mode``)."""
    path = shipped_weights(weights)
    model, card = pretrained.load_shipped(path)
    mode = choose_mode(requested_mode, len(frames.masked), frames.masked["participant_id"].nunique())
    print(f"segmenter: {card['file']} ({card['architecture']}, {card['parameters']:,} weights, input "
          f"{card['input_size']} px); SEG_MODE={requested_mode!r} -> {mode}")
    return Segmenter(model, card, mode, path)


def adapt(stage: NerveStage, segmenter: Segmenter, frames: StageFrames, tuning: FineTuning, *, threshold: float,
          flip_tta: bool) -> tuple[dict[str, Any], pd.DataFrame]:
    """The segmenter for this data (``adapt_segmenter``), saved as the stage's ``segmenter.keras``; table how.

    Writes ``tables/segmenter`` (which weights and why) and, with masks, ``tables/segmentation_metrics``
    and ``tables/segmenter_history``; warns on the index when fine-tuned weights were rejected.
    Returns ``adapt_segmenter``'s dict and ``tables/segmenter``.
    """
    seg = adapt_segmenter(segmenter.model, segmenter.mode, frames.masked, stage.paths.frames_dir,
                          stage.paths.frame_masks_dir, tuning, input_size=segmenter.input_size, threshold=threshold,
                          flip_tta=flip_tta)
    save_segmenter(seg["model"], stage.paths.segmenter)
    print(f"segmenter: {seg['mode_text']}")
    if seg["warning"]:
        stage.warn(seg["warning"])
    if seg["history"] is not None:
        write_table(seg["history"].round(4), "segmenter_history", stage.paths.tables,
                    caption="Fine-tuning from the shipped weights")
    if seg["metrics"] is not None:
        write_table(seg["metrics"], "segmentation_metrics", stage.paths.tables,
                    caption="Nerve segmentation on held-out participants: Dice on frames showing a nerve; empty truths counted apart")
    selection, card = seg["selection"], segmenter.card
    kept = "pretrained" if selection is None else "fine-tuned" if selection["keep_fine_tuned"] else "shipped"
    table = pd.DataFrame([{"mode": segmenter.mode, "segmenter": seg["mode_text"], "weights": card["file"],
                           "weights_sha256": card["weights_sha256"][:16], "kept": kept,
                           "input_size": segmenter.input_size, "threshold": threshold, "flip_tta": flip_tta}])
    write_table(table, "segmenter", stage.paths.tables, caption=f"Segmenter used by stage 03: {seg['mode_text']}")
    return seg, table


def open_presence(threshold: float | None) -> Presence | None:
    """The nerve presence rule (``ctslib.nerve.presence``): None when ``threshold`` is 0 (off), else the
    calibrated rule, at ``threshold`` when one is given.

    Presence always scores with the shipped weights: its classifier was fitted on their features.
    """
    return None if threshold == 0 else load_presence(threshold=threshold)


def cut_crops(stage: NerveStage, frames: StageFrames, seg: dict[str, Any], presence: Presence | None, *,
              input_size: int, crop_size: int, min_area_mm2: float, threshold: float, flip_tta: bool) -> pd.DataFrame:
    """Segment every kept frame and cut its crop (``ctslib.nerve.crop.crop_frames``): the hand-off to stages 04-06.

    Writes ``crops/`` and ``crops.csv``, prints the crop-centre hit rate, tables the crop funnel and
    warns where many crops come from frames whose true mask shows no nerve. Returns crops.csv's rows.
    """
    # the shipped weights cutting the crops (clinic data without masks) also give presence: one pass, not two
    shared = presence is not None and input_size == presence.input_size and presence.uses_weights_of(seg["model"])
    crops = crop.crop_frames(
        frames.kept, stage.paths.frames_dir, stage.paths.crops_dir, seg["model"], input_size=input_size,
        crop_size=crop_size, min_area_mm2=min_area_mm2, threshold=threshold, flip_tta=flip_tta, hints=frames.hints,
        masks_dir=stage.paths.frame_masks_dir, work_root=stage.paths.work,
        presence_scorer=presence.scores if presence and not shared else None,
        presence_threshold=presence.threshold if presence else None,
        shared_pass=presence.scores_and_probabilities if shared else None,
    )
    write_csv(crops, stage.paths.crops_csv)
    print(f"crop centre inside the true nerve: {crop_summary.centre_hit_rate(crops):.3f} of kept frames whose true "
          "mask shows a nerve")
    funnel = crop_summary.crop_funnel(frames.all, crops)
    write_table(funnel, "crop_funnel", stage.paths.tables,
                caption="Frames -> kept -> no nerve found (area rule) -> presence rejected -> crops, per plane")
    for message in crop_summary.empty_truth_crop_warnings(funnel):
        stage.warn(message)
    return crops


def no_nerve_table(stage: NerveStage, crops: pd.DataFrame, warn_share: float) -> tuple[pd.DataFrame, list[str]]:
    """Per video, kept frames without a crop (``tables/crop_funnel_by_video``) and the warnings they raise.

    Raises:
        StageError: no nerve was found in any kept frame (``ctslib.nerve.crop_summary.no_nerve_warnings``).
    """
    by_video = crop_summary.no_nerve_by_video(crops)
    write_table(by_video.round(3), "crop_funnel_by_video", stage.paths.tables,
                caption="Per video: kept frames segmented, frames without a crop (no nerve found, of which presence "
                        "rejected), and their share")
    messages = crop_summary.no_nerve_warnings(by_video, warn_share)
    for message in messages:
        stage.warn(message)
    print(f"{len(messages)} videos warned of {len(by_video)}")
    return by_video, messages


def usgra_present(enabled: bool) -> bool:
    """Whether the usgra-seg checks run: asked for (``REAL_DATA_CHECK``) and the data set is there."""
    return enabled and (USGRA_SEG_DIR / "dataset").is_dir()


def presence_table(stage: NerveStage, presence: Presence | None, crops: pd.DataFrame, seg: dict[str, Any], *,
                   real_data_check: bool) -> pd.DataFrame | None:
    """Precision and recall of "nerve present" on usgra-seg and on this run's masked kept frames
    (``tables/nerve_presence``); None when neither could be measured."""
    rows = []
    if presence is not None and usgra_present(real_data_check):
        rows.append(usgra_presence_check(presence, USGRA_SEG_DIR).assign(plane="", decision="presence score"))
    if presence is not None and crops["true_nerve_area_px"].notna().any():
        tuned = seg.get("tuned")  # fine-tuned: score only the participants it was not tuned on
        heldout_ids = tuned["heldout_rows"]["participant_id"].unique() if tuned else None
        run_check = run_presence_check(crops, presence.threshold, heldout_ids)
        rows.append(run_check.assign(data="this run, held-out masked kept frames" if tuned
                                     else "this run, masked kept frames"))
    if not rows:
        print("nerve presence not measured (presence off, or no usgra-seg and no true masks)")
        return None
    table = pd.concat(rows, ignore_index=True)[["data", "plane", "decision", "n_positive", "n_negative",
                                                "precision", "recall"]]
    write_table(table, "nerve_presence", stage.paths.tables,
                caption=f"Nerve presence (threshold {presence.threshold:.3f}): precision and recall of 'nerve present'. "
                        f"{USGRA_ATTRIBUTION}")
    return table


def csa_table(stage: NerveStage, crops: pd.DataFrame) -> pd.DataFrame:
    """Predicted nerve area per grade and plane (``tables/csa_by_grade``)."""
    table = pd.concat([crop_summary.csa_by_grade(crops, plane).assign(plane=plane) for plane in PLANES],
                      ignore_index=True)
    table = table[["plane", *[c for c in table.columns if c != "plane"]]]
    write_table(table, "csa_by_grade", stage.paths.tables,
                caption="Predicted nerve area (mm²) per grade; transverse = CSA, longitudinal = in-plane area")
    return table


def crop_examples(stage: NerveStage, crops: pd.DataFrame, frames: StageFrames, seg: dict[str, Any], *,
                  input_size: int, threshold: float, seed: int, flip_tta: bool) -> Path:
    """One seeded cropped frame per grade and plane with its outlines and crop box (``figures/crop_examples``)."""
    fig = example_figure(crops, stage.paths.frames_dir, stage.paths.frame_masks_dir, seg["model"],
                         input_size=input_size, threshold=threshold, seed=seed, flip_tta=flip_tta, hints=frames.hints,
                         title=figure_title("Nerve found and crop cut, one frame per plane and grade", stage.source))
    return save_figure(fig, "crop_examples", stage.paths.figures)


def real_check(stage: NerveStage, segmenter: Segmenter, *, threshold: float, flip_tta: bool,
               enabled: bool) -> RealCheck | None:
    """The **shipped** segmenter (not a fine-tuned one) on the usgra-seg test images, at their resolution.

    Writes ``tables/usgra_seg_per_image`` and ``tables/usgra_seg_check``; None (and nothing written)
    when ``enabled`` is off or usgra-seg is absent.
    """
    if not usgra_present(enabled):
        print("usgra-seg check skipped (REAL_DATA_CHECK is off or usgra-seg is absent)")
        return None
    shipped, _ = pretrained.load_shipped(segmenter.weights)  # fine-tuning changed the model opened first
    table = usgra_check(shipped, segmenter.input_size, threshold, root=USGRA_SEG_DIR, subset="test", flip_tta=flip_tta)
    summary = usgra_summary(table)
    write_table(table.round(4), "usgra_seg_per_image", stage.paths.tables,
                caption=f"Shipped segmenter, per usgra-seg test image. {USGRA_ATTRIBUTION}")
    write_table(summary, "usgra_seg_check", stage.paths.tables,
                caption=f"Shipped segmenter on the usgra-seg test images (never trained on). {USGRA_ATTRIBUTION}")
    return RealCheck(shipped, table, summary)


def real_worst_figure(stage: NerveStage, check: RealCheck | None, *, input_size: int, threshold: float,
                      flip_tta: bool) -> Path | None:
    """The usgra-seg test images of lowest Dice (``figures/usgra_seg_worst``); None without the check."""
    if check is None:
        return None
    fig = plot_usgra_worst(check.model, check.table, input_size, threshold, root=USGRA_SEG_DIR, flip_tta=flip_tta)
    saved = save_figure(fig, "usgra_seg_worst", stage.paths.figures)
    print(f"Attribution: {USGRA_ATTRIBUTION}")
    return saved


def segmenter_headlines(segmenter: Segmenter, seg: dict[str, Any]) -> dict[str, Any]:
    """Which segmenter cut the crops, how well it segments held-out participants, and why it was kept."""
    out: dict[str, Any] = {"seg_mode": segmenter.mode, "seg_mode_text": seg["mode_text"]}
    metrics, selection = seg["metrics"], seg["selection"]
    if metrics is not None:
        every = metrics[metrics["plane"] == "all"]
        used = metrics[(metrics["plane"] == "all") & metrics["used"]].iloc[-1]  # the model that cut the crops
        out.update(seg_dice_heldout=used.dice_mean, seg_iou_heldout=used.iou_mean,
                   seg_heldout_nerve_frames=int(used.n_nerve), seg_heldout_true_empty=int(used.n_true_empty))
        if segmenter.mode == "finetune":
            out["seg_dice_heldout_before"] = every.iloc[0].dice_mean
            out["seg_heldout_participants"] = seg["tuned"]["heldout_rows"]["participant_id"].nunique()
            if seg["history"] is not None:  # fine-tuning ran (it needs two training participants)
                out["seg_dice_heldout_fine_tuned"] = every.iloc[-1].dice_mean
    if selection is not None:
        out["seg_fine_tuned_kept"] = bool(selection["keep_fine_tuned"])
        out["seg_selection_reason"] = selection["reason"]
        out.update({f"seg_{key}": selection[key] for key in SELECTION_RECORDS if key in selection})
    return out


def crop_headlines(crops: pd.DataFrame, presence: Presence | None, presence_rows: pd.DataFrame | None,
                   by_video: pd.DataFrame, no_nerve_messages: list[str]) -> dict[str, Any]:
    """How many crops were cut per plane, how many frames either rule rejected, and how well presence did."""
    found = crops["nerve_found"].astype(bool)
    low = crops["reason"].eq(crop.LOW_PRESENCE_REASON)
    true_empty = crops["true_nerve_area_px"].eq(0)
    out: dict[str, Any] = {"crop_centre_in_mask_rate": crop_summary.centre_hit_rate(crops)}
    out.update({f"n_crops_{plane}": int((found & (crops["plane"] == plane)).sum()) for plane in PLANES})
    out.update(n_no_nerve=int((~found).sum()), n_no_nerve_true_empty=int((~found & true_empty).sum()),
               n_presence_rejected=int(low.sum()), n_presence_rejected_true_empty=int((low & true_empty).sum()),
               presence_threshold=presence.threshold if presence is not None else float("nan"))
    real = presence_rows["data"].str.startswith("usgra-seg test frames") if presence_rows is not None else None
    if real is not None and real.any():
        out.update(real_presence_precision=presence_rows[real].iloc[0].precision,
                   real_presence_recall=presence_rows[real].iloc[0].recall)
    out.update(max_no_nerve_share=float(by_video["no_nerve_share"].max()), n_no_nerve_warnings=len(no_nerve_messages))
    return out


def real_headlines(check: RealCheck | None) -> dict[str, Any]:
    """The shipped segmenter on usgra-seg: Dice, IoU and crop-hit rate ({} without the check)."""
    if check is None:
        return {}
    by_rule = check.summary.set_index("components")
    largest = by_rule.loc["largest"]
    return {"real_dice": largest.dice_mean, "real_dice_median": largest.dice_median, "real_iou": largest.iou_mean,
            "real_crop_hit_rate": largest.crop_hit_rate, "real_dice_all_components": by_rule.loc["all"].dice_mean}


def headlines(segmenter: Segmenter, seg: dict[str, Any], crops: pd.DataFrame, presence: Presence | None,
              presence_rows: pd.DataFrame | None, by_video: pd.DataFrame, no_nerve_messages: list[str],
              check: RealCheck | None) -> dict[str, Any]:
    """The stage's headline numbers, in the order they are recorded (read by the report index and the tests)."""
    return {**segmenter_headlines(segmenter, seg),
            **crop_headlines(crops, presence, presence_rows, by_video, no_nerve_messages),
            **real_headlines(check)}
