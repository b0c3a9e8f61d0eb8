"""Real-data check of the nerve segmenter and crop centring on usgra-seg (real B-mode ultrasound).

Trains ``ctslib.segment``'s U-Net on the 204 usgra-seg training images and reports, on its 40
test images (at their original resolution): Dice, IoU, and the crop-hit rate (share of test
images whose crop centre -- the centroid of the largest predicted component -- lies inside the
true nerve mask), with timings. Label 1 = nerve; label 2 (vessel) is ignored.

usgra-seg covers several anatomical regions (brachial plexus, elbow, femoral, sciatic), not the
carpal tunnel; it checks that the same code segments real nerves, not the study's claim.

Usage::

    .venv/bin/python benchmarks/bench_segment_real.py [--size 128] [--epochs 80] [--depth 3] [--filters 16]

About 11 minutes on 2 CPU cores with the defaults.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ctslib import segment  # noqa: E402
from ctslib.crop import mask_centroid, point_in_mask  # noqa: E402
from ctslib.paths import USGRA_SEG_DIR  # noqa: E402
from ctslib.seed import set_determinism  # noqa: E402


def evaluate(model, image_paths, mask_paths, size: int, threshold: float, keep_largest: bool):
    """Per-image Dice/IoU at original resolution and the crop-hit flags."""
    images, _ = segment.load_pairs(image_paths, mask_paths, size, label=segment.USGRA_NERVE_LABEL)
    probs = segment.predict_probabilities(model, images)
    preds, trues, hits = [], [], []
    for prob, mask_path in zip(probs, mask_paths):
        true = segment.read_mask(mask_path, segment.USGRA_NERVE_LABEL)
        pred = segment.postprocess(prob, true.shape, threshold=threshold, keep_largest=keep_largest)
        centre = mask_centroid(segment.largest_component(pred))
        hits.append(centre is not None and point_in_mask(true, *centre))
        preds.append(pred)
        trues.append(true)
    scores = segment.segmentation_scores(preds, trues, ids=[Path(p).name for p in image_paths])
    return scores, np.asarray(hits)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=USGRA_SEG_DIR, help="usgra-seg folder")
    parser.add_argument("--size", type=int, default=128, help="model input side (pixels)")
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--filters", type=int, default=16, help="filters of the first U-Net level")
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)

    if not (args.data / "dataset").is_dir():
        print(f"usgra-seg not found at {args.data}; nothing to benchmark")
        return 0
    print(f"Data: {segment.USGRA_ATTRIBUTION}")
    set_determinism(args.seed)
    train_images, train_masks = segment.usgra_pairs(args.data, "train")
    test_images, test_masks = segment.usgra_pairs(args.data, "test")

    t0 = time.perf_counter()
    x, y = segment.load_pairs(train_images, train_masks, args.size, label=segment.USGRA_NERVE_LABEL)
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    model, history = segment.train_segmenter(
        x, y, epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
        depth=args.depth, base_filters=args.filters, seed=args.seed,
    )
    t_train = time.perf_counter() - t0
    t0 = time.perf_counter()
    results = {}
    for keep_largest in (True, False):
        results[keep_largest] = evaluate(model, test_images, test_masks, args.size, args.threshold, keep_largest)
    t_eval = time.perf_counter() - t0

    print(f"train {len(train_images)} images, test {len(test_images)} images; input {args.size}px, "
          f"depth {args.depth}, filters {args.filters}, {args.epochs} epochs, seed {args.seed}")
    print(f"timings: load {t_load:.1f} s, train {t_train:.1f} s ({t_train / args.epochs:.2f} s/epoch), "
          f"evaluate {t_eval:.1f} s")
    print(f"final training loss {history['loss'].iloc[-1]:.3f}, training Dice {history['dice'].iloc[-1]:.3f}")
    for keep_largest, (scores, hits) in results.items():
        summary = segment.summarise_scores(scores).iloc[0]
        print(f"test ({'largest component' if keep_largest else 'all components'}): "
              f"Dice mean {summary.dice_mean:.3f} (median {summary.dice_median:.3f}), "
              f"IoU mean {summary.iou_mean:.3f}, crop-hit rate {hits.mean():.3f} ({hits.sum()}/{len(hits)})")
    print(f"Attribution: {segment.USGRA_ATTRIBUTION}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
