"""Tests of ctslib.nerve.stage: the headline numbers stage 03 records, from crafted tables."""

from __future__ import annotations

import math

import pandas as pd

from ctslib.nerve import crop
from ctslib.nerve.stage import Segmenter, crop_headlines, real_headlines, segmenter_headlines


def _metrics(dice_before: float, dice_after: float, kept: bool) -> pd.DataFrame:
    rows = []
    for model, dice, used in (("shipped", dice_before, not kept), ("fine-tuned", dice_after, kept)):
        for plane in ("transverse", "all"):
            rows.append({"plane": plane, "model": model, "used": used, "dice_mean": dice, "iou_mean": dice - 0.1,
                         "n_nerve": 7, "n_true_empty": 3})
    return pd.DataFrame(rows)


def test_segmenter_headlines_report_the_model_that_cut_the_crops_and_why():
    selection = {"keep_fine_tuned": False, "reason": "no gain", "val_score_shipped": 0.8, "val_participants": 2}
    seg = {"mode_text": "shipped kept", "metrics": _metrics(0.8, 0.6, kept=False), "selection": selection,
           "history": pd.DataFrame({"epoch": [1]}),
           "tuned": {"heldout_rows": pd.DataFrame({"participant_id": ["P1", "P1", "P2"]})}}
    out = segmenter_headlines(Segmenter(None, {"input_size": 32}, "finetune", None), seg)
    assert out["seg_dice_heldout"] == 0.8  # the shipped model cut the crops
    assert out["seg_dice_heldout_before"] == 0.8 and out["seg_dice_heldout_fine_tuned"] == 0.6
    assert out["seg_heldout_participants"] == 2 and out["seg_heldout_nerve_frames"] == 7
    assert out["seg_fine_tuned_kept"] is False and out["seg_selection_reason"] == "no gain"
    assert out["seg_val_score_shipped"] == 0.8 and out["seg_val_participants"] == 2
    assert "seg_val_dice_shipped" not in out  # only the numbers the decision has
    pretrained = segmenter_headlines(Segmenter(None, {}, "pretrained", None),
                                     {"mode_text": "as is", "metrics": None, "selection": None, "history": None})
    assert pretrained == {"seg_mode": "pretrained", "seg_mode_text": "as is"}


def test_crop_headlines_count_crops_and_both_rejection_rules():
    crops = pd.DataFrame({
        "plane": ["transverse", "transverse", "longitudinal", "longitudinal", "longitudinal"],
        "nerve_found": [True, False, True, False, False],
        "reason": ["", crop.NO_NERVE_REASON, "", crop.LOW_PRESENCE_REASON, crop.LOW_PRESENCE_REASON],
        "true_nerve_area_px": [40, 0, 35, 0, 12],
        "centre_in_true_mask": [True, None, False, None, False],
    })
    by_video = pd.DataFrame({"no_nerve_share": [0.5, 2 / 3]})
    out = crop_headlines(crops, None, None, by_video, ["one warning"])
    assert out["n_crops_transverse"] == 1 and out["n_crops_longitudinal"] == 1
    assert out["n_no_nerve"] == 3 and out["n_no_nerve_true_empty"] == 2
    assert out["n_presence_rejected"] == 2 and out["n_presence_rejected_true_empty"] == 1
    assert out["crop_centre_in_mask_rate"] == 1 / 3 and math.isnan(out["presence_threshold"])
    assert out["max_no_nerve_share"] == 2 / 3 and out["n_no_nerve_warnings"] == 1
    assert "real_presence_precision" not in out
    assert real_headlines(None) == {}
