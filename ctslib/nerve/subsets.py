"""Which participants and frames fine-tune, validate and score the segmenter.

Splits are by participant (``participant_split``), never by frame: frames of one wrist are
near-duplicates. Within a budget, frames are spread evenly over each video.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ctslib.common.errors import InputError
from ctslib.data.images import read_mask


def participant_split(
    participants: Sequence[str], *, test_size: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split rows into train/test **by participant** (no participant on both sides).

    Args:
        participants: participant id of each row (e.g. ``frames["participant_id"]``).
        test_size: fraction of *participants* held out (scikit-learn ``GroupShuffleSplit``).
        seed: random state of the split.

    Returns:
        ``(train_index, test_index)`` integer positions into ``participants``.
    """
    from sklearn.model_selection import GroupShuffleSplit

    groups = np.asarray(participants)
    if len(np.unique(groups)) < 2:
        raise InputError("a participant-grouped split needs at least two participants")
    splitter = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
    train_idx, test_idx = next(splitter.split(np.zeros(len(groups)), groups=groups))
    return np.sort(train_idx), np.sort(test_idx)


def evenly_spaced_subset(frame_ids: Sequence[str], groups: Sequence[str], max_total: int | None) -> np.ndarray:
    """Positions of at most ``max_total`` rows, spread evenly in time within each group (wrist/plane).

    Consecutive frames of one video are near-duplicates, so a training budget is better spent
    on frames spread through every video than on the first N. Order within a group follows
    ``frame_ids`` (frame ids end in the frame number, so sorting them sorts by time).
    """
    n = len(frame_ids)
    if max_total is None or max_total >= n:
        return np.arange(n)
    order = np.argsort(np.asarray(frame_ids), kind="stable")
    grouped = list(pd.Series(order).groupby(np.asarray(groups)[order]))
    sizes = np.array([len(positions) for _, positions in grouped])
    quota = sizes * (max_total / n)
    counts = np.maximum(1, np.floor(quota).astype(int))  # every video keeps at least one frame
    spare = max_total - counts.sum()
    if spare > 0:  # largest remainders first: the budget is spent exactly
        room = np.flatnonzero(counts < sizes)
        extra = room[np.argsort(-(quota - np.floor(quota))[room], kind="stable")][:spare]
        counts[extra] += 1
    keep: list[int] = []
    for (_, positions), k in zip(grouped, counts):
        picks = np.linspace(0, len(positions) - 1, k).round().astype(int)
        keep.extend(positions.to_numpy()[np.unique(picks)])
    keep_arr = np.asarray(keep, dtype=int)
    if len(keep_arr) > max_total:  # more videos than budget: thin evenly across videos
        keep_arr = keep_arr[np.linspace(0, len(keep_arr) - 1, max_total).round().astype(int)]
    return np.sort(keep_arr)


def empty_mask_flags(masks_dir: str | Path, frame_ids: Sequence[str]) -> np.ndarray:
    """True where ``masks_dir/<frame_id>.png`` shows no nerve (the frame left the nerve, or a dropout)."""
    return np.array([not read_mask(Path(masks_dir) / f"{f}.png").any() for f in frame_ids], dtype=bool)


def presence_balanced_subset(frame_ids: Sequence[str], groups: Sequence[str], empty: Sequence[bool],
                             max_total: int | None, empty_share: float = 0.5) -> np.ndarray:
    """``evenly_spaced_subset`` that spends ``empty_share`` of the budget on frames with an empty mask.

    Frames without a nerve are what the shipped model (trained mostly on images that all show a
    nerve) gets wrong, so fine-tuning sees them as often as frames with one, where there are enough.
    The other frames take whatever budget the empty ones leave.
    """
    empty = np.asarray(empty, dtype=bool)
    ids, groups = np.asarray(frame_ids), np.asarray(groups)
    if max_total is None or max_total >= len(ids):
        return np.arange(len(ids))
    pos_empty, pos_nerve = np.flatnonzero(empty), np.flatnonzero(~empty)
    n_empty = min(len(pos_empty), int(round(empty_share * max_total)))
    n_nerve = min(len(pos_nerve), max_total - n_empty)
    n_empty = min(len(pos_empty), max_total - n_nerve)
    picks = [pos[evenly_spaced_subset(ids[pos], groups[pos], n)]
             for pos, n in ((pos_empty, n_empty), (pos_nerve, n_nerve)) if n]
    return np.sort(np.concatenate(picks)) if picks else np.zeros(0, dtype=int)
