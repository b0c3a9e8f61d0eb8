"""Stages 04 and 05 as one sequence of verbs: both model notebooks call them the same way.

Notebook 04 trains the transverse model and 05 the longitudinal one; apart from their parameters
and their plane's name, their code cells are identical (``tests/test_model_notebooks.py`` keeps
it so), and everything they do happens here, once:

``open_stage`` -> ``input_crops`` -> ``show_model`` -> ``draw_splits`` -> ``train_splits`` ->
``training_figures`` -> ``headlines`` (recorded by the notebook).

Each verb prints what the notebook shows and writes the stage's tables, figures and records.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ctslib import GRADES, PLANES
from ctslib.severity.inputs import read_crops
from ctslib.common.display import SYNTHETIC_NOTE, source_subtitle
from ctslib.common.io import StageNotes, save_figure, write_table
from ctslib.common.paths import RunPaths, data_layout
from ctslib.data.acquisition import read_acquisition
from ctslib.common.seed import set_determinism
from ctslib.severity.split import check_every_grade, make_splits, participants_on_both_sides, split_summary

FIGURES: dict[str, str] = {"transverse": "figure2", "longitudinal": "figure3"}
"""The paper's figure of each plane's training curves."""

@dataclass(frozen=True)
class ModelStage(StageNotes):
    """One model stage's plane, folders and facts that every later cell uses."""

    plane: str
    paths: RunPaths
    source: str
    device: str

    @property
    def key(self) -> str:
        """Stage key: "04" (transverse) or "05" (longitudinal)."""
        return self.paths.model_stage(self.plane)

    @property
    def figure(self) -> str:
        """File name of the paper-split training curves: "figure2" or "figure3"."""
        return FIGURES[self.plane]

    @property
    def subtitle(self) -> str | None:
        """Subtitle of every figure: says when the data are synthetic."""
        return source_subtitle(self.source)


def open_stage(plane: str, data_dir: str | Path, work_dir: str | Path, report_dir: str | Path, *, seed: int) -> ModelStage:
    """Seed everything, check stage 03 ran, and say which data and device this stage uses.

    Raises:
        FileNotFoundError: stage 03's crops.csv is missing.
    """
    from ctslib.severity.train import tensorflow_device

    if plane not in PLANES:
        raise ValueError(f"plane must be one of {PLANES}, got {plane!r}")
    # absolute (but through the kernel folder's links): Ray workers start in another folder
    paths = RunPaths(Path(os.path.abspath(work_dir)), Path(os.path.abspath(report_dir)))
    layout = data_layout(data_dir)
    set_determinism(seed)
    if not paths.crops_csv.exists():
        raise FileNotFoundError(f"{paths.crops_csv} not found: run 03_nerve_cropping.ipynb first")
    source = read_acquisition(layout).source
    print(f"data folder: {layout.root.name} (source: {source}); plane: {plane}")
    device = tensorflow_device()
    print("TensorFlow trains on:", device)
    if source == "synthetic":
        print(SYNTHETIC_NOTE)
    return ModelStage(plane, paths, source, device)


def grade_counts(frames: pd.DataFrame) -> pd.DataFrame:
    """Frames, wrists and participants per grade (index: grade names)."""
    counts = frames.groupby("grade_index").agg(frames=("frame_id", "size"), wrists=("wrist_id", "nunique"),
                                               participants=("participant_id", "nunique"))
    counts.index = [GRADES[i] for i in counts.index]
    return counts


def input_crops(stage: ModelStage) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The plane's crops and their counts per grade; stops naming a grade that has no crop."""
    frames = read_crops(stage.paths.crops_csv, stage.plane, stage.paths.work)
    check_every_grade(frames, what=f"{stage.plane} crops in {stage.paths.crops_csv.name}")
    print(f"{len(frames)} {stage.plane} crops from {frames['wrist_id'].nunique()} wrists of "
          f"{frames['participant_id'].nunique()} participants")
    return frames, grade_counts(frames)


def show_model(stage: ModelStage, input_size: int, model_options: dict[str, Any]) -> int:
    """Print the plane's published model (layers and shapes); return its parameter count."""
    from ctslib.severity.models import build_model, parameter_count

    model = build_model(stage.plane, input_size, **model_options)
    model.summary()
    n_params = parameter_count(model)
    print(f"{n_params:,} parameters at {input_size}x{input_size} input")
    return n_params


def draw_splits(stage: ModelStage, frames: pd.DataFrame, *, seed: int, val_fraction: float, cv_folds: int,
                policies: list[str]) -> tuple[pd.DataFrame, dict[str, int]]:
    """Draw every split; table its sizes. Returns the split table and participants on both sides per split.

    Grouped splits are drawn on both planes' crops, so both models validate on the same participants.
    """
    cohort_frames = pd.concat([read_crops(stage.paths.crops_csv, plane, stage.paths.work) for plane in PLANES])
    split_table = make_splits(frames, seed=seed, val_fraction=val_fraction, cv_folds=cv_folds, policies=policies,
                              cohort_frames=cohort_frames)
    leaked = {split: participants_on_both_sides(split_table, split) for split in dict.fromkeys(split_table["split"])}
    print("participants with frames on both sides:", leaked)
    write_table(split_summary(split_table), f"split_{stage.plane}", stage.paths.tables,
                caption=f"{stage.plane.capitalize()} model: frames, wrists, participants and grades per split and subset")
    return split_table, leaked


def train_splits(stage: ModelStage, frames: pd.DataFrame, split_table: pd.DataFrame, settings: Any, *, seed: int,
                 seeds: int, workers: int, gpus_per_task: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train on every split (``ctslib.severity.tasks.train_plane``); table the results. Returns (summary, history)."""
    from ctslib.severity.tasks import train_plane
    from ctslib.severity.train import training_sentence

    summary = train_plane(frames, split_table, settings, seed=seed, paths=stage.paths, seeds=seeds,
                          workers=workers, gpus_per_task=gpus_per_task)
    history = pd.read_csv(stage.paths.history_csv(stage.plane))
    write_table(summary, f"training_{stage.plane}", stage.paths.tables, floatfmt=".3f",
                caption=f"{stage.plane.capitalize()} model: training per split (sizes, validation and training "
                        "accuracy, speed)")
    print("What this shows:", training_sentence(summary))
    return summary, history


def training_figures(stage: ModelStage, history: pd.DataFrame, *, cv_folds: int) -> list[Path]:
    """The paper's Figure 2 / 3 (paper split), and the same for the grouped split and the CV folds."""
    from ctslib.severity.train import curves_sentence, training_curves_figure

    name, plane = stage.figure, stage.plane.capitalize()
    panels = [
        (["paper"], name, f"{plane} model, paper's random frame split"),
        (["grouped"], f"{name}_grouped", f"{plane} model, participant-grouped split"),
        ([s for s in history["split"].unique() if s.startswith("cv")], f"{name}_cv",
         f"{plane} model, grouped {cv_folds}-fold cross-validation"),
    ]
    saved = []
    for splits, file_name, title in panels:
        part = history[history["split"].isin(splits)]
        if part.empty:
            continue
        saved.append(save_figure(training_curves_figure(part, title=title, subtitle=stage.subtitle), file_name,
                                 stage.paths.figures))
        print(f"figures/{saved[-1].name}")  # report-relative: a machine path never reaches a report
    print("What this shows:", curves_sentence(history))
    return saved


SPLIT_RECORDS: tuple[str, ...] = ("n_train", "n_val", "best_epoch", "best_val_accuracy", "final_val_accuracy",
                                  "seconds_per_epoch", "train_images_per_second", "train_eval_accuracy")
"""Per-split summary columns recorded as ``<split>_<column>``."""


def headlines(stage: ModelStage, *, frames: pd.DataFrame, counts: pd.DataFrame, n_params: int, settings: Any,
              seeds: int, summary: pd.DataFrame, leaked: dict[str, int]) -> dict[str, Any]:
    """The stage's headline numbers, in the order they are recorded (read by the report index and the tests)."""
    out = {
        "data_source": stage.source, "plane": stage.plane, "n_crops": len(frames),
        "n_crops_by_grade": {g: int(counts.loc[g, "frames"]) for g in counts.index},
        "parameter_count": n_params, "input_size": settings.input_size, "epochs": settings.epochs,
        "batch_size": settings.batch_size, "dropout": settings.model_options.get("dropout"), "seeds": seeds,
        "tensorflow_device": stage.device, "splits": list(summary["split"]), "participants_on_both_sides": leaked,
    }
    for row in summary.to_dict("records"):
        out.update({f"{row['split']}_{key}": row[key] for key in SPLIT_RECORDS})
    return out
