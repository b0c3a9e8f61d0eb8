"""Wrist-level predictions: mean softmax over a wrist's validation frames, and two-plane fusion."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ctslib.common.errors import InputError, StageError
from ctslib.common.handoff import PROB_COLUMNS

__all__ = ["wrist_probabilities", "fuse_planes"]


def wrist_probabilities(predictions: pd.DataFrame, source: str | Path = "predictions") -> pd.DataFrame:
    """One row per (split, wrist): mean softmax probability over its validation frames, argmax grade.

    Raises:
        InputError: if the frames of one wrist disagree on the true grade or the participant.
    """
    rows = predictions[predictions["subset"] == "val"] if "subset" in predictions.columns else predictions
    keys = ["split", "wrist_id"]
    for column in ("y_true", "participant_id"):
        varying = rows.groupby(keys)[column].nunique()
        if (varying > 1).any():
            split, wrist = varying.index[varying > 1][0]
            raise InputError(f"frames of wrist {wrist} (split {split}) disagree on {column}", file=source,
                             column=column)
    grouped = rows.groupby(keys, sort=True)
    wrists = grouped[list(PROB_COLUMNS)].mean()
    wrists["participant_id"] = grouped["participant_id"].first()
    wrists["y_true"] = grouped["y_true"].first().astype(int)
    wrists["n_frames"] = grouped.size()
    wrists["y_pred"] = wrists[list(PROB_COLUMNS)].to_numpy().argmax(axis=1)
    return wrists.reset_index()[["split", "wrist_id", "participant_id", "y_true", "y_pred", "n_frames", *PROB_COLUMNS]]


def fuse_planes(first: pd.DataFrame, second: pd.DataFrame) -> pd.DataFrame:
    """Average two planes' wrist probabilities; wrists missing from either plane are left out.

    Raises:
        StageError: if a wrist's true grade differs between the planes.
    """
    both = first.merge(second, on=["split", "wrist_id"], suffixes=("_a", "_b"), validate="one_to_one")
    clash = both["y_true_a"] != both["y_true_b"]
    if clash.any():
        raise StageError(f"wrist {both.loc[clash, 'wrist_id'].iloc[0]} has different grades in the two planes")
    fused = pd.DataFrame({
        "split": both["split"], "wrist_id": both["wrist_id"], "participant_id": both["participant_id_a"],
        "y_true": both["y_true_a"], "n_frames": both["n_frames_a"] + both["n_frames_b"],
    })
    for column in PROB_COLUMNS:
        fused[column] = (both[f"{column}_a"] + both[f"{column}_b"]) / 2
    fused["y_pred"] = fused[list(PROB_COLUMNS)].to_numpy().argmax(axis=1)
    return fused[["split", "wrist_id", "participant_id", "y_true", "y_pred", "n_frames", *PROB_COLUMNS]]
