"""The shipped nerve segmenter on real ultrasound (usgra-seg test split) and held-out synthetic participants.

Scores ``ctslib/nerve/weights/nerve_segmenter.keras`` (or ``--weights``) on the 40 usgra-seg test images,
which it never saw in training or model selection, at their original resolution: Dice and IoU with
the pipeline's largest-component rule and with every component, and the crop-hit rate (share of
test images whose crop centre -- the centroid of the largest predicted component -- lies inside the
true nerve mask). Then Dice on the frames that show a nerve of a synthetic cohort rendered with the
card's held-out seed (participants never used in training). Label 1 = nerve; 2 (vessel) is ignored.
Targets (issue 12): usgra-seg mean Dice >= 0.75 and crop-hit >= 0.90; synthetic Dice >= 0.90.

usgra-seg covers brachial plexus, elbow, femoral and sciatic regions, not the carpal tunnel; it
checks that the segmenter finds real nerves, not the study's claim.

Usage::

    .venv/bin/python benchmarks/bench_segment_real.py [--weights PATH] [--per-image]

Under a minute on 2 CPU cores (inference only; retraining is ``make segmenter``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/hardware.py

import hardware  # noqa: E402
from ctslib.common.paths import USGRA_SEG_DIR  # noqa: E402
from ctslib.common.seed import set_determinism  # noqa: E402
from ctslib.data.usgra import USGRA_ATTRIBUTION  # noqa: E402
from ctslib.nerve import pretrained  # noqa: E402
from ctslib.nerve.realcheck import usgra_check, usgra_summary  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=USGRA_SEG_DIR, help="usgra-seg folder")
    parser.add_argument("--weights", type=Path, default=pretrained.SHIPPED_WEIGHTS, help="segmenter (.keras, card beside it)")
    parser.add_argument("--no-tta", action="store_true", help="no flip test-time augmentation")
    parser.add_argument("--per-image", action="store_true", help="print the per-image table")
    args = parser.parse_args(argv)

    set_determinism(0)
    print(hardware.isa_line())
    t0 = time.perf_counter()
    model, card = pretrained.load_shipped(args.weights)
    size, threshold, tta = card["input_size"], card["threshold"], card["flip_tta"] and not args.no_tta
    print(f"segmenter {args.weights.name}: {card['architecture']}, {card['parameters']:,} weights, input {size} px, "
          f"threshold {threshold}, flip TTA {tta}; trained {card['train_seconds'] / 60:.1f} min, best epoch "
          f"{card['best_epoch']} (usgra validation Dice {card['usgra_val_dice_mean']:.3f})")
    if (args.data / "dataset").is_dir():
        print(f"Data: {USGRA_ATTRIBUTION}")
        t1 = time.perf_counter()
        table = usgra_check(model, size, threshold, root=args.data, subset="test", flip_tta=tta)
        t_real = time.perf_counter() - t1
        if args.per_image:
            print(table.round(3).to_string(index=False))
        for row in usgra_summary(table).itertuples(index=False):
            print(f"usgra-seg test ({row.components} components, {row.n_images} images): Dice mean {row.dice_mean:.3f} "
                  f"(median {row.dice_median:.3f}), IoU mean {row.iou_mean:.3f}, crop-hit {row.crop_hit_rate:.3f} "
                  f"({int(round(row.crop_hit_rate * row.n_images))}/{row.n_images})")
        print(f"usgra-seg inference {t_real:.1f} s")
    else:
        print(f"usgra-seg not found at {args.data}; real-data figures skipped")

    recipe = card["recipe"]
    t1 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cts-bench-") as tmp:
        heldout = pretrained.synthetic_frames(recipe["synth_heldout_seed"], recipe["synth_heldout_participants"],
                                              recipe["synth_duration_s"], Path(tmp) / "heldout",
                                              bad_share=recipe["synth_bad_share"], good_only=True)
    dice = pretrained.nerve_dice(model, list(heldout["image"]), list(heldout["mask"]), size, threshold, tta)
    print(f"synthetic held-out participants (seed {recipe['synth_heldout_seed']}, {len(dice)} frames showing a nerve): "
          f"Dice mean {dice.mean():.3f} (median {np.median(dice):.3f}); {time.perf_counter() - t1:.1f} s")
    print(f"total {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
