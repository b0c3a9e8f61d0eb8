"""Stage 03's segmenter for the data at hand: the shipped weights as they are, or fine-tuned from them.

``choose_mode`` resolves ``SEG_MODE``; ``adapt_segmenter`` runs it. Fine-tuning (``fine_tune``)
holds out participants that only report Dice, sets aside validation participants that choose
between the shipped and the fine-tuned weights (``choose_weights``), and never replaces the
shipped weights silently (``selection_warning``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ctslib.common.errors import InputError
from ctslib.nerve.inputs import load_pairs
from ctslib.nerve.scores import frame_score, score_frames, summarise_scores
from ctslib.nerve.subsets import empty_mask_flags, evenly_spaced_subset, participant_split, presence_balanced_subset
from ctslib.nerve.unet import train_segmenter


MAX_DICE_DROP = 0.10
"""How much validation Dice on nerve frames a fine-tuned segmenter may lose and still be kept.

The frame score already decides; this veto only stops a model that wins by no longer outlining
nerves. Stage 03 needs the crop centre on the nerve, not a perfect outline: on the synthetic default
the fine-tuned model left 91 of 91 empty validation frames empty (the shipped one called 85 of them
nerve) at 0.058 less Dice, and a tighter veto (0.03) kept the model that crops tendon as nerve.
"""


@dataclass(frozen=True)
class FineTuning:
    """How stage 03 fine-tunes the shipped segmenter (notebook 03's ``SEG_*`` parameters).

    Attributes:
        epochs: fine-tuning epochs.
        batch_size: images per step.
        learning_rate: Adam learning rate (small: training starts from good weights).
        max_train_frames: at most this many training frames, spread over each video (None: all).
        heldout_fraction: share of participants held out to score the segmenter before and after.
        presence_weight: weight of ``ctslib.nerve.unet.presence_nll`` in the loss (0: Dice + BCE only).
        empty_share: share of the training frames whose mask shows no nerve (``presence_balanced_subset``).
        val_fraction: share of the *training* participants whose masked frames only choose between
            the shipped and the fine-tuned weights (``choose_weights``); never the held-out ones.
        max_val_frames: at most this many validation frames, spread over each video (None: all).
        min_score_gain: the fine-tuned model must beat the shipped validation ``frame_score`` by more than this.
        max_dice_drop: ... and may lose at most this much validation Dice on nerve frames (``choose_weights``).
        seed: seeds the held-out and validation splits, the shuffle order and the augmentation.
    """

    epochs: int
    batch_size: int
    learning_rate: float
    max_train_frames: int | None
    heldout_fraction: float
    presence_weight: float = 0.0
    empty_share: float = 0.5
    val_fraction: float = 0.25
    max_val_frames: int | None = 200
    min_score_gain: float = 0.0
    max_dice_drop: float = MAX_DICE_DROP
    seed: int = 0


SEG_MODES: tuple[str, ...] = ("auto", "pretrained", "finetune")
"""``auto``: fine-tune when frames with nerve masks exist, else the shipped model as is."""


def choose_mode(requested: str, n_masked_frames: int, n_masked_participants: int) -> str:
    """Resolve ``SEG_MODE`` to "pretrained" or "finetune" for the data at hand.

    Fine-tuning needs masks of at least two participants (some are held out to measure it).

    Raises:
        InputError: an unknown mode, or "finetune" forced without enough masked frames.
    """
    if requested not in SEG_MODES:
        raise InputError(f"SEG_MODE must be one of {SEG_MODES}, got {requested!r}")
    can_finetune = n_masked_frames > 0 and n_masked_participants >= 2
    if requested == "finetune" and not can_finetune:
        raise InputError(
            f"SEG_MODE='finetune' needs nerve masks of at least 2 participants; found {n_masked_frames} masked "
            f"frames of {n_masked_participants} participant(s) (DATA/masks/, see docs/pipeline.md)"
        )
    if requested == "auto":
        return "finetune" if can_finetune else "pretrained"
    return requested


def choose_weights(shipped: pd.DataFrame, tuned: pd.DataFrame, min_score_gain: float = 0.0,
                   max_dice_drop: float = MAX_DICE_DROP) -> dict:
    """Keep the fine-tuned weights or the shipped ones, from both models' scores on validation frames.

    Rule: the fine-tuned model is kept only if (1) its ``frame_score`` on the validation frames is
    higher than the shipped model's by more than ``min_score_gain`` (strictly) **and** (2) its mean
    Dice on validation frames showing a nerve is at most ``max_dice_drop`` below the shipped model's.
    (1) weighs both jobs of the segmenter, outlining a nerve and leaving an empty frame empty, per
    frame; (2) stops a model that gains only by calling every frame empty. Without a validation frame
    showing a nerve nothing can be compared, and the shipped weights are kept.

    Returns:
        dict with ``keep_fine_tuned`` (bool), ``reason`` (one sentence), and the numbers compared:
        ``val_score_shipped``, ``val_score_fine_tuned``, ``val_dice_shipped``, ``val_dice_fine_tuned``,
        ``val_nerve_frames``, ``val_empty_frames``, ``val_empty_called_nerve_shipped``,
        ``val_empty_called_nerve_fine_tuned``.
    """
    s, t = summarise_scores(shipped).iloc[-1], summarise_scores(tuned).iloc[-1]
    numbers = {"val_score_shipped": frame_score(s), "val_score_fine_tuned": frame_score(t),
               "val_dice_shipped": float(s.dice_mean), "val_dice_fine_tuned": float(t.dice_mean),
               "val_nerve_frames": int(s.n_nerve), "val_empty_frames": int(s.n_true_empty),
               "val_empty_called_nerve_shipped": int(s.n_true_empty_pred_nerve),
               "val_empty_called_nerve_fine_tuned": int(t.n_true_empty_pred_nerve)}
    if s.n_nerve == 0:
        return {"keep_fine_tuned": False, **numbers,
                "reason": "no validation frame shows a nerve, so fine-tuning could not be shown to help"}
    detail = (f"validation Dice {t.dice_mean:.3f} (fine-tuned) vs {s.dice_mean:.3f} (shipped) on {int(s.n_nerve)} nerve "
              f"frames, nerve called on {int(t.n_true_empty_pred_nerve)} vs {int(s.n_true_empty_pred_nerve)} of "
              f"{int(s.n_true_empty)} empty frames")
    score = f"frame score {numbers['val_score_fine_tuned']:.3f} vs {numbers['val_score_shipped']:.3f}"
    if not numbers["val_score_fine_tuned"] > numbers["val_score_shipped"] + min_score_gain:
        return {"keep_fine_tuned": False, **numbers, "reason": f"fine-tuning did not raise the validation {score} ({detail})"}
    if t.dice_mean < s.dice_mean - max_dice_drop:
        return {"keep_fine_tuned": False, **numbers,
                "reason": f"fine-tuning lowered the validation Dice by more than {max_dice_drop:g} ({detail})"}
    return {"keep_fine_tuned": True, **numbers, "reason": f"fine-tuning raised the validation {score} ({detail})"}


def _validation_rows(rows: pd.DataFrame, max_frames: int | None) -> pd.DataFrame:
    """Validation participants' frames that QC kept (all of them without a ``kept`` column), spread evenly."""
    if "kept" in rows.columns:
        rows = rows[rows["kept"].astype(bool)]
    rows = rows.reset_index(drop=True)
    subset = evenly_spaced_subset(rows["frame_id"], rows["wrist_id"] + "_" + rows["plane"], max_frames)
    return rows.iloc[subset].reset_index(drop=True)


def fine_tune(
    model,
    masked: pd.DataFrame,
    frames_dir: str | Path,
    masks_dir: str | Path,
    tuning: FineTuning,
    *,
    input_size: int,
    threshold: float = 0.5,
    flip_tta: bool = False,
) -> dict:
    """Fine-tune ``model`` on frames with masks, keep it only if it beats the given weights on validation.

    ``masked`` lists every frame with a nerve mask, whatever QC decided (a mask is worth training
    on even where QC rejected the frame for cropping). ``tuning`` (``FineTuning``) says how: a
    ``heldout_fraction`` of participants is held out (grouped split) and only *reports* Dice;
    a ``val_fraction`` of the other participants is set aside (grouped, seeded) to *choose*
    between the given (shipped) and the fine-tuned weights (``choose_weights``); training uses at most
    ``max_train_frames`` frames of the remaining participants, spread evenly over each video,
    ``empty_share`` of them frames whose mask is empty (``presence_balanced_subset``);
    ``presence_weight`` adds ``presence_nll`` to the loss. Held-out and validation participants
    are scored on their frames that QC kept (a ``kept`` column; all of them without one).
    When the shipped weights win, ``model`` gets them back: it is the given model either way.

    Returns:
        dict with ``model``, ``history`` (per epoch, or None when nothing could be validated and no
        training ran), ``train_rows``, ``val_rows``, ``heldout_rows``, per-frame ``scores_before`` /
        ``scores_after`` of the held-out participants (shipped / fine-tuned candidate),
        ``val_before`` / ``val_after`` on the validation frames, and ``selection`` (``choose_weights``).
    """
    frames_dir, masks_dir = Path(frames_dir), Path(masks_dir)
    train_idx, heldout_idx = participant_split(masked["participant_id"], test_size=tuning.heldout_fraction,
                                               seed=tuning.seed)
    train_rows = masked.iloc[train_idx].reset_index(drop=True)
    heldout_rows = masked.iloc[heldout_idx].reset_index(drop=True)
    if "kept" in heldout_rows.columns:
        heldout_rows = heldout_rows[heldout_rows["kept"].astype(bool)].reset_index(drop=True)
    score = dict(input_size=input_size, threshold=threshold, flip_tta=flip_tta)
    before = score_frames(model, heldout_rows, frames_dir, masks_dir, **score)
    if train_rows["participant_id"].nunique() < 2:
        selection = {"keep_fine_tuned": False, "reason": (
            f"only {train_rows['participant_id'].nunique()} training participant(s): none can be set aside to "
            "check that fine-tuning helps, so it was not run")}
        return {"model": model, "history": None, "train_rows": train_rows.iloc[:0], "val_rows": train_rows.iloc[:0],
                "heldout_rows": heldout_rows, "scores_before": before, "scores_after": before,
                "val_before": None, "val_after": None, "selection": selection}
    fit_idx, val_idx = participant_split(train_rows["participant_id"], test_size=tuning.val_fraction,
                                         seed=tuning.seed + 1)
    val_rows = _validation_rows(train_rows.iloc[val_idx], tuning.max_val_frames)
    train_rows = train_rows.iloc[fit_idx].reset_index(drop=True)
    empty = empty_mask_flags(masks_dir, train_rows["frame_id"])
    subset = presence_balanced_subset(train_rows["frame_id"], train_rows["wrist_id"] + "_" + train_rows["plane"],
                                      empty, tuning.max_train_frames, tuning.empty_share)
    train_rows = train_rows.iloc[subset].reset_index(drop=True)
    shipped_weights = [w.copy() for w in model.get_weights()]
    val_before = score_frames(model, val_rows, frames_dir, masks_dir, **score)
    x, y = load_pairs([frames_dir / f"{f}.png" for f in train_rows["frame_id"]],
                      [masks_dir / f"{f}.png" for f in train_rows["frame_id"]], input_size)
    model, history = train_segmenter(x, y, epochs=tuning.epochs, batch_size=tuning.batch_size,
                                     learning_rate=tuning.learning_rate, seed=tuning.seed, model=model,
                                     presence_weight=tuning.presence_weight)
    val_after = score_frames(model, val_rows, frames_dir, masks_dir, **score)
    after = score_frames(model, heldout_rows, frames_dir, masks_dir, **score)
    selection = choose_weights(val_before, val_after, tuning.min_score_gain, tuning.max_dice_drop)
    selection["val_participants"] = int(val_rows["participant_id"].nunique())
    if not selection["keep_fine_tuned"]:
        model.set_weights(shipped_weights)
    return {"model": model, "history": history, "train_rows": train_rows, "val_rows": val_rows,
            "heldout_rows": heldout_rows, "scores_before": before, "scores_after": after,
            "val_before": val_before, "val_after": val_after, "selection": selection}


def before_after_table(before: pd.DataFrame, after: pd.DataFrame, fine_tuned_kept: bool = True) -> pd.DataFrame:
    """``summarise_scores`` by plane of the shipped (before) and fine-tuned (after) model, stacked.

    ``used`` is True on the rows of the model stage 03 crops with (``choose_weights``).
    """
    return pd.concat([summarise_scores(before, by="plane").assign(model="shipped (before fine-tuning)",
                                                                  used=not fine_tuned_kept),
                      summarise_scores(after, by="plane").assign(model="fine-tuned", used=fine_tuned_kept)],
                     ignore_index=True)


def selection_warning(selection: dict) -> str | None:
    """The report-index warning when fine-tuning was tried but the shipped weights were kept, else None."""
    if selection["keep_fine_tuned"]:
        return None
    return (f"segmenter: the shipped weights were kept, not the fine-tuned ones: {selection['reason']} "
            "(validation frames of training participants; the held-out participants' Dice never chose). "
            "See tables/segmenter and tables/segmentation_metrics.")


def adapt_segmenter(
    model,
    mode: str,
    masked: pd.DataFrame,
    frames_dir: str | Path,
    masks_dir: str | Path,
    tuning: FineTuning,
    *,
    input_size: int,
    threshold: float = 0.5,
    flip_tta: bool = False,
) -> dict:
    """Stage 03's segmenter for the data at hand, per ``mode`` (from ``choose_mode``).

    "finetune": ``fine_tune`` from the given (shipped) weights by ``tuning``, kept only where it beats
    them on validation participants (``choose_weights``), scored before and after
    on held-out participants (``tuning`` is not used in "pretrained" mode). "pretrained": the model as is; frames with masks, if any (all unseen), are scored.

    Returns:
        dict with ``model``, ``mode_text`` (what the report says), ``metrics`` (``summarise_scores``
        by plane with a ``model`` column, or None without masks) and ``history`` (fine-tuning
        epochs, or None), plus ``tuned`` (``fine_tune``'s result, or None), ``selection``
        (``choose_weights``'s decision, or None) and ``warning`` (``selection_warning``: a sentence
        for the report index when the shipped weights were kept over the fine-tuned ones, else None).
    """
    score = dict(input_size=input_size, threshold=threshold, flip_tta=flip_tta)
    if mode == "finetune":
        tuned = fine_tune(model, masked, frames_dir, masks_dir, tuning, **score)
        selection = tuned["selection"]
        trained = (f"on {len(tuned['train_rows'])} masked frames of {tuned['train_rows']['participant_id'].nunique()} "
                   f"participants")
        if selection["keep_fine_tuned"]:
            text = f"fine-tuned from the shipped weights {trained}; kept because {selection['reason']}"
        elif tuned["history"] is None:
            text = f"shipped weights kept, not fine-tuned: {selection['reason']}"
        else:
            text = f"shipped weights kept: fine-tuning {trained} was rejected because {selection['reason']}"
        metrics = (before_after_table(tuned["scores_before"], tuned["scores_after"], selection["keep_fine_tuned"])
                   if tuned["history"] is not None
                   else summarise_scores(tuned["scores_before"], by="plane").assign(model="shipped (pretrained)", used=True))
        return {"model": tuned["model"], "mode_text": text, "history": tuned["history"], "tuned": tuned,
                "metrics": metrics, "selection": selection, "warning": selection_warning(selection)}
    if mode != "pretrained":
        raise InputError(f"mode must be 'pretrained' or 'finetune' (see choose_mode), got {mode!r}")
    if len(masked):
        scores = score_frames(model, masked, frames_dir, masks_dir, **score)
        return {"model": model, "history": None, "tuned": None, "selection": None, "warning": None,
                "mode_text": "pretrained, not fine-tuned (SEG_MODE forces it; every masked frame is unseen)",
                "metrics": summarise_scores(scores, by="plane").assign(model="shipped (pretrained)", used=True)}
    return {"model": model, "history": None, "tuned": None, "metrics": None, "selection": None, "warning": None,
            "mode_text": "pretrained, not fine-tuned (no nerve masks in the data)"}
