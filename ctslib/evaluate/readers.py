"""Reading and checking stage 04/05's hand-off files (predictions, splits), and naming the data source.

Every reader names the file, row and column of the first problem (``InputError``); the split checks
refuse a "grouped" split that puts a participant on both sides.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ctslib import GRADES
from ctslib.data.acquisition import Acquisition
from ctslib.common.errors import InputError, StageError
from ctslib.evaluate.metrics import LABELS
from ctslib.common.handoff import PREDICTION_COLUMNS, PROB_COLUMNS
from ctslib.severity.split import PAPER_SPLIT, SPLIT_COLUMNS, is_grouped

__all__ = ["read_predictions", "read_split", "describe_source", "grouped_splits",
    "shared_participants", "assert_grouped", "leakage_exposure", "check_grades_against_wrists", "simulator_csa"]


def _require_columns(df: pd.DataFrame, columns: Sequence[str], file: str | Path) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(f"missing column(s) {missing}; found {list(df.columns)}", file=file, column=missing[0])


def _check_class_ids(df: pd.DataFrame, column: str, file: str | Path) -> None:
    values = pd.to_numeric(df[column], errors="coerce")
    bad = ~values.isin(LABELS)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"class id must be one of {LABELS} ({', '.join(GRADES)}), got {df[column].iloc[row]!r}",
            file=file, row=row + 1, column=column,
        )


def read_predictions(path: str | Path) -> pd.DataFrame:
    """Read a stage 04/05 ``predictions.csv`` and check it: columns, class ids, probabilities.

    Raises:
        InputError: naming the file, row and column of the first problem.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("file not found (run the model notebook 04/05 first)", file=path)
    df = pd.read_csv(path, dtype={"frame_id": str, "wrist_id": str, "participant_id": str, "split": str})
    _require_columns(df, PREDICTION_COLUMNS, path)
    for column in ("y_true", "y_pred"):
        _check_class_ids(df, column, path)
    probs = df[list(PROB_COLUMNS)].apply(pd.to_numeric, errors="coerce")
    bad = ~np.isfinite(probs.to_numpy()).all(axis=1) | (probs.to_numpy() < 0).any(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        column = next(c for c in PROB_COLUMNS if not (np.isfinite(probs[c].iloc[row]) and probs[c].iloc[row] >= 0))
        raise InputError("probability must be a finite number >= 0", file=path, row=row + 1, column=column)
    df[["y_true", "y_pred"]] = df[["y_true", "y_pred"]].astype(int)
    df[list(PROB_COLUMNS)] = probs
    return df


def read_split(path: str | Path) -> pd.DataFrame:
    """Read a stage 04/05 ``split.csv`` and check its columns and subset values."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found (run the model notebook 04/05 first)", file=path)
    df = pd.read_csv(path, dtype={"frame_id": str, "wrist_id": str, "participant_id": str, "split": str})
    _require_columns(df, SPLIT_COLUMNS, path)
    bad = ~df["subset"].isin(["train", "val"])
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(f"subset must be 'train' or 'val', got {df['subset'].iloc[row]!r}", file=path,
                         row=row + 1, column="subset")
    return df


def describe_source(acquisition: Acquisition) -> str:
    """The data source in words, for tables and captions."""
    if acquisition.source == "synthetic":
        return "synthetic (simulated cohort and B-mode videos)"
    return f"real ultrasound ({acquisition.probe})" if acquisition.probe else "real ultrasound"


def grouped_splits(split_df: pd.DataFrame) -> list[str]:
    """The split names that must keep each participant on one side: ``grouped`` and ``cv<k>``."""
    return [s for s in sorted(split_df["split"].unique()) if is_grouped(str(s))]


def shared_participants(split_df: pd.DataFrame, split: str) -> list[str]:
    """Participants with frames in both the training and the validation subset of ``split``."""
    rows = split_df[split_df["split"] == split]
    sides = rows.groupby("participant_id")["subset"].nunique()
    return sorted(sides.index[sides > 1])


def assert_grouped(split_df: pd.DataFrame, splits: Sequence[str] | None = None) -> None:
    """Raise if any participant appears on both sides of a grouped split.

    Args:
        split_df: a ``split.csv`` table.
        splits: split names to check; default every grouped split present (``grouped``, ``cv<k>``).

    Raises:
        StageError: naming the split and the participants found in both training and validation.
    """
    names = grouped_splits(split_df) if splits is None else list(splits)
    missing = sorted(set(names) - set(split_df["split"].unique()))
    if missing:
        raise StageError(f"split(s) {missing} not found; present: {sorted(split_df['split'].unique())}")
    for name in names:
        both = shared_participants(split_df, name)
        if both:
            shown = ", ".join(both[:10]) + (" ..." if len(both) > 10 else "")
            raise StageError(
                f"split '{name}' is not grouped: {len(both)} participant(s) have frames in both training "
                f"and validation ({shown})"
            )


def leakage_exposure(split_df: pd.DataFrame, split: str = PAPER_SPLIT) -> dict[str, float]:
    """How much of ``split``'s validation set comes from participants/wrists also seen in training."""
    rows = split_df[split_df["split"] == split]
    train_wrists = set(rows.loc[rows["subset"] == "train", "wrist_id"])
    train_people = set(rows.loc[rows["subset"] == "train", "participant_id"])
    val = rows[rows["subset"] == "val"]
    val_people = set(val["participant_id"])
    return {
        "val_participants": len(val_people),
        "val_participants_seen_in_training": len(val_people & train_people),
        "val_frames_from_wrists_seen_in_training": (
            float(val["wrist_id"].isin(train_wrists).mean()) if len(val) else np.nan),
    }


def check_grades_against_wrists(predictions: pd.DataFrame, wrists: pd.DataFrame, source: str | Path) -> None:
    """Every prediction's ``y_true`` must equal its wrist's NCS ``grade_index`` in ``wrists.csv``."""
    graded = wrists[["wrist_id", "grade_index"]].drop_duplicates("wrist_id")
    merged = predictions[["wrist_id", "y_true"]].merge(graded, on="wrist_id", how="left")
    unknown = merged["grade_index"].isna()
    if unknown.any():
        row = int(np.flatnonzero(unknown.to_numpy())[0])
        raise InputError(f"wrist {merged['wrist_id'].iloc[row]} is not in wrists.csv or has no NCS grade there",
                         file=source, row=row + 1, column="wrist_id")
    wrong = merged["y_true"] != merged["grade_index"].astype(int)
    if wrong.any():
        row = int(np.flatnonzero(wrong.to_numpy())[0])
        raise InputError(f"y_true {merged['y_true'].iloc[row]} differs from the NCS grade_index "
                         f"{int(merged['grade_index'].iloc[row])} of wrist {merged['wrist_id'].iloc[row]}",
                         file=source, row=row + 1, column="y_true")


def simulator_csa(data_dir: str | Path) -> tuple[list[float], list[float]]:
    """The simulator's nerve CSA mean and SD per grade (mm²) behind a synthetic data folder.

    Read from the folder's ``synth_config.json`` (the configuration that generated it); the defaults of
    ``ctslib.synth.config.SynthConfig`` when the file does not say.
    """
    import json

    from ctslib.synth.config import SynthConfig

    # ctslib.synth.dataset.CONFIG_FILE; not imported, since that module pulls in tqdm's notebook front end
    path = Path(data_dir) / "synth_config.json"
    stored = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    if not isinstance(stored, dict):
        raise InputError("expected a JSON object", file=path)
    default = SynthConfig()
    return ([float(v) for v in stored.get("csa_mean_mm2", default.csa_mean_mm2)],
            [float(v) for v in stored.get("csa_sd_mm2", default.csa_sd_mm2)])
