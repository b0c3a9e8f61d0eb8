"""Every path of the study in one place (inputs, stage hand-offs, report outputs).

Three roots:

* ``DataLayout``  the read-only input folder (real data or the synthetic default), layout in README;
* ``RunPaths.work`` a run's work folder: large intermediate files (frames, crops, models);
* ``RunPaths.report`` a run's report folder: executed notebooks, HTML, tables, figures, manifest.

A stage reads only files named here and written by earlier stages (plus the data folder).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
PROFILES_DIR = PROJECT_ROOT / "profiles"
REPORTS_ROOT = PROJECT_ROOT / "reports"
WORK_ROOT = PROJECT_ROOT / "work"
SYNTHETIC_ROOT = PROJECT_ROOT / "data" / "synthetic"
SHARED_DIR = PROJECT_ROOT.parent / "shared"
USGRA_SEG_DIR = SHARED_DIR / "data" / "real" / "usgra-seg"

VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".avi", ".dcm", ".mov", ".m4v", ".mkv")
"""Video file extensions read (any letter case); with two files for one video, the earlier wins."""

OS_LITTER_NAMES: frozenset[str] = frozenset({".ds_store", "thumbs.db", "desktop.ini"})
"""Files that operating systems leave in folders (never data); AppleDouble ``._*`` files too."""


def is_os_litter(name: str) -> bool:
    """True for macOS/Windows litter (``._*``, ``.DS_Store``, ``Thumbs.db``, ``desktop.ini``): ignored everywhere."""
    return name.startswith("._") or name.lower() in OS_LITTER_NAMES


def canonical_stem(stem: str) -> str:
    """``<participant_id>_<SIDE>_<plane>`` with side upper-case and plane lower-case (ids keep their case).

    ``S1_l_Transverse`` and ``S1_L_transverse`` name the same video; a stem that is not of this form
    is returned unchanged.
    """
    from ctslib import PLANES, SIDES

    parts = stem.rsplit("_", 2)
    if len(parts) == 3 and parts[1].upper() in SIDES and parts[2].lower() in PLANES:
        return f"{parts[0]}_{parts[1].upper()}_{parts[2].lower()}"
    return stem

# Stage key -> notebook file (run order = numeric order).
STAGES: dict[str, str] = {
    "00": "00_synthetic_data.ipynb",
    "01": "01_cohort_ncs_labelling.ipynb",
    "02": "02_frame_extraction_qc.ipynb",
    "03": "03_nerve_cropping.ipynb",
    "04": "04_transverse_model.ipynb",
    "05": "05_longitudinal_model.ipynb",
    "06": "06_evaluation.ipynb",
}

MODEL_STAGES: dict[str, str] = {"transverse": "04", "longitudinal": "05"}
"""Plane -> the stage that trains its model."""


def video_stem(participant_id: str, side: str, plane: str) -> str:
    """File stem of one wrist's video: ``<participant_id>_<side>_<plane>``."""
    return f"{participant_id}_{side}_{plane}"


@dataclass(frozen=True)
class DataLayout:
    """The input data folder, identical for real and synthetic data."""

    root: Path

    @property
    def cohort_csv(self) -> Path:
        return self.root / "cohort.csv"

    @property
    def acquisition_json(self) -> Path:
        return self.root / "acquisition.json"

    @property
    def videos_dir(self) -> Path:
        return self.root / "videos"

    @property
    def masks_dir(self) -> Path:
        """Optional nerve masks: ``masks/<video stem>.npz`` or ``masks/<video stem>/<frame>.png``."""
        return self.root / "masks"

    @property
    def qc_accept_csv(self) -> Path:
        """Optional expert accept-list; wins over automatic QC when present."""
        return self.root / "qc_accept.csv"

    @property
    def nerve_hints_csv(self) -> Path:
        """Optional marked nerve points (video, x, y as fractions of the frame); see docs/pipeline.md."""
        return self.root / "nerve_hints.csv"

    @property
    def truth_dir(self) -> Path:
        """Generator ground truth (synthetic data only). Used for scoring, never as an input."""
        return self.root / "truth"

    def find_video(self, stem: str) -> Path | None:
        """The video file for ``stem``, or None.

        Side and plane in any letter case, extensions of ``VIDEO_EXTENSIONS`` in any letter case
        (``S1_L_Transverse.MP4`` is the video ``S1_L_transverse``); OS litter is never a video. With
        several files for one stem, the earlier extension in ``VIDEO_EXTENSIONS`` wins.
        """
        matches = [p for p in self.video_files() if canonical_stem(p.stem) == canonical_stem(stem)]
        matches.sort(key=lambda p: VIDEO_EXTENSIONS.index(p.suffix.lower()))
        return matches[0] if matches else None

    def video_files(self) -> list[Path]:
        """Existing files in ``videos/`` with a video extension (any case), OS litter left out, sorted by name."""
        if not self.videos_dir.is_dir():
            return []
        return sorted(
            p for p in self.videos_dir.iterdir()
            if p.suffix.lower() in VIDEO_EXTENSIONS and not is_os_litter(p.name) and p.is_file()
        )


@dataclass(frozen=True)
class RunPaths:
    """Work and report folders of one run; every stage hand-off file is a property here."""

    work: Path
    report: Path

    @classmethod
    def for_run(cls, run: str) -> "RunPaths":
        """Default folders of a named run: ``work/<run>`` and ``reports/<run>``."""
        return cls(work=WORK_ROOT / run, report=REPORTS_ROOT / run)

    # -- report ------------------------------------------------------------------
    @property
    def tables(self) -> Path:
        return self.report / "tables"

    @property
    def figures(self) -> Path:
        return self.report / "figures"

    @property
    def manifest(self) -> Path:
        return self.report / "manifest.json"

    # -- stage folders -----------------------------------------------------------
    def stage_dir(self, key: str) -> Path:
        """Work folder of stage ``key`` ("01" ... "06"), e.g. ``work/<run>/01_cohort_ncs_labelling``."""
        return self.work / Path(STAGES[key]).stem

    def records(self, key: str) -> Path:
        """Headline numbers a stage recorded (JSON), read by tests and the report index."""
        return self.stage_dir(key) / "record.json"

    # 01 cohort + NCS
    @property
    def wrists_csv(self) -> Path:
        return self.stage_dir("01") / "wrists.csv"

    @property
    def id_map_csv(self) -> Path:
        """Pseudonym -> original participant id. Private: stays in the work folder, never in reports."""
        return self.stage_dir("01") / "id_map.csv"

    # 02 frames + QC
    @property
    def frames_dir(self) -> Path:
        return self.stage_dir("02") / "frames"

    @property
    def frame_masks_dir(self) -> Path:
        return self.stage_dir("02") / "masks"

    @property
    def frames_csv(self) -> Path:
        return self.stage_dir("02") / "frames.csv"

    # 03 segmentation + crops
    @property
    def segmenter(self) -> Path:
        """The segmenter stage 03 used: fine-tuned from the shipped weights, or a copy of them."""
        return self.stage_dir("03") / "segmenter.keras"

    @property
    def crops_dir(self) -> Path:
        return self.stage_dir("03") / "crops"

    @property
    def crops_csv(self) -> Path:
        return self.stage_dir("03") / "crops.csv"

    # 04 / 05 models
    def model_stage(self, plane: str) -> str:
        return MODEL_STAGES[plane]

    def model_dir(self, plane: str) -> Path:
        return self.stage_dir(self.model_stage(plane))

    def split_csv(self, plane: str) -> Path:
        """Which frame is in which set, for every split policy (and CV fold)."""
        return self.model_dir(plane) / "split.csv"

    def history_csv(self, plane: str) -> Path:
        return self.model_dir(plane) / "history.csv"

    def predictions_csv(self, plane: str) -> Path:
        return self.model_dir(plane) / "predictions.csv"

    def model_file(self, plane: str, split: str, which: str = "best") -> Path:
        """Saved Keras model of ``plane`` trained on ``split``; ``which`` is "best" or "last"."""
        return self.model_dir(plane) / f"{split}_{which}.keras"

    # 06 evaluation
    @property
    def evaluation_dir(self) -> Path:
        return self.stage_dir("06")


def data_layout(data_dir: str | Path) -> DataLayout:
    """The ``DataLayout`` of a data folder (relative paths resolved against the current folder)."""
    # abspath, not resolve: a data folder reached through a link (run_all links it into the work
    # folder) keeps the link's path, so the real location never reaches a notebook or report.
    return DataLayout(Path(os.path.abspath(Path(data_dir).expanduser())))
