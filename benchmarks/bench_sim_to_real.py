"""Screen a simulator change in minutes: realism gaps, domain AUC and a short synthetic-only segmenter.

The sim-to-real measurement of issue 24 (``make segmenter ARGS='--synthetic-only --out FILE'``) takes
about 37 min on 2 CPU cores. A change to ``ctslib.synth`` can be screened first with this script:

1. it renders a small synthetic cohort (the segmenter recipe's size: 12 participants, 4 s videos at
   5 fps), or with ``--scenes randomised`` frames of ``ctslib.synth.scenes``, and compares the frames
   that show a nerve with all usgra-seg images (``ctslib.synth.realism``: the same table and grouped
   domain classifier as notebook 00);
2. with ``--epochs N`` it trains the shipped segmenter's recipe on synthetic frames only for N epochs
   (``ctslib.nerve.pretrained.train`` with ``synthetic_only``) and prints its usgra-seg test Dice and
   crop-hit, the figure a simulator change has to move.

A screening run is not the measurement stored in the model card: that one is the full recipe (100 epochs,
the last kept, the mean of two seeds).
What earlier screenings gave is in ``docs/realism.md``.

Usage::

    .venv/bin/python benchmarks/bench_sim_to_real.py [--scenes randomised] [--epochs 20] [--out /tmp/screen.keras]

Realism only: about 15 s; with ``--epochs 20``: about 7 min more (2-core AMD EPYC Zen 4, AVX-512); realism
with ``--scenes randomised``: 32 s (2-core Intel Xeon, CPU family 6 model 207, AVX-512).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/hardware.py

import hardware  # noqa: E402
from ctslib.common.paths import USGRA_SEG_DIR  # noqa: E402
from ctslib.common.seed import set_determinism  # noqa: E402
from ctslib.data.usgra import USGRA_ATTRIBUTION  # noqa: E402
from ctslib.nerve import pretrained  # noqa: E402
from ctslib.synth import realism  # noqa: E402
from ctslib.synth.config import SynthConfig  # noqa: E402
from ctslib.synth.dataset import ensure_dataset  # noqa: E402
from ctslib.synth.scenes import SCENE_SETS  # noqa: E402

TABLE_COLUMNS = ["statistic", "region", "synthetic", "real", "gap"]


def realism_summary(table: pd.DataFrame, result: realism.DomainResult) -> list[str]:
    """The realism table's numbers and the domain AUC as printable lines."""
    shown = table[TABLE_COLUMNS].round(3).to_string(index=False)
    return [*shown.splitlines(), f"domain classifier AUC {result.auc_mean:.3f} (SD {result.auc_sd:.3f}, "
                                 f"{len(result.fold_auc)} grouped folds)"]


def scene_set(seed: int, n_frames: int, size: int) -> realism.FrameSet:
    """Up to ``n_frames`` randomised-scene frames that show a nerve, prepared as the realism table wants them."""
    from ctslib.synth.scenes import scene_frames

    frames = scene_frames(seed, n_frames, 1)
    frames = frames[[bool(m.any()) for m in frames["mask"]]]
    prepared = [realism.prepare(image, mask, size) for image, mask in zip(frames["image"], frames["mask"])]
    return realism.FrameSet(realism.SYNTHETIC, [p[0] for p in prepared], [p[1] for p in prepared],
                            list(frames["video"]), list(frames["video"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=USGRA_SEG_DIR, help="usgra-seg folder")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--participants", type=int, default=12)
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per synthetic video")
    parser.add_argument("--frames", type=int, default=150, help="synthetic frames in the realism table")
    parser.add_argument("--scenes", choices=SCENE_SETS, default="wrist",
                        help="synthetic frames: the study's wrist videos or randomised scenes (ctslib.synth.scenes)")
    parser.add_argument("--epochs", type=int, default=0, help="synthetic-only training epochs (0 = realism only)")
    parser.add_argument("--out", type=Path, default=None, help="where the screening segmenter goes (default: a temp folder)")
    args = parser.parse_args(argv)
    if not (args.data / "dataset").is_dir():
        print(f"no usgra-seg images at {args.data}: nothing to compare with")
        return 1

    set_determinism(args.seed)
    print(hardware.isa_line())
    print(f"Data: {USGRA_ATTRIBUTION}")
    size = SynthConfig().frame_size
    with tempfile.TemporaryDirectory(prefix="cts-screen-") as tmp:
        t0 = time.perf_counter()
        if args.scenes == "randomised":
            synthetic = scene_set(args.seed, args.frames, size)
        else:
            config = pretrained.small_cohort_config(args.seed, args.participants, args.duration, workers=2)
            root = ensure_dataset(Path(tmp) / "synthetic", config, progress=False)
            synthetic = realism.read_synthetic(root, size, args.frames, args.seed)
        real = realism.read_usgra(args.data, size)
        table, result = realism.compare(synthetic, real, size, seed=args.seed)
        print(f"realism: {len(synthetic.images)} synthetic frames vs {len(real.images)} usgra-seg images "
              f"({time.perf_counter() - t0:.1f} s)")
        print("\n".join(realism_summary(table, result)))
        if args.epochs > 0:
            out = args.out or Path(tmp) / "screen.keras"
            # the last epoch, as the card's measurement keeps it: the synthetic held-out score saturates
            card = pretrained.train(pretrained.Recipe(synthetic_only=True, epochs=args.epochs,
                                                      synth_scenes=args.scenes, keep_epoch="last"), out,
                                    usgra_root=args.data, log=lambda line: None)
            test = card["usgra_test"]["largest"]
            print(f"synthetic-only segmenter ({args.scenes} frames), {args.epochs} epochs (last kept): usgra-seg test Dice "
                  f"{test['dice_mean']:.3f} (median {test['dice_median']:.3f}), crop-hit {test['crop_hit_rate']:.3f}; "
                  f"synthetic held-out Dice {card['synthetic_heldout_dice_mean']:.3f}; "
                  f"{card['train_seconds'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
