"""The shipped nerve segmenter: its recipe, the training that regenerates it, and its loader.

``ctslib/nerve/weights/nerve_segmenter.keras`` (a residual U-Net, 3.9 MB) is tracked in git so a
data folder without nerve masks can be segmented (stage 03, "pretrained, not fine-tuned"); with
masks stage 03 fine-tunes *from* it. Beside it, ``nerve_segmenter.json`` holds the recipe, the
input size and threshold to use, the validation and test figures, and a hash of the weights.

Regenerate (21 min on a 2-core AMD EPYC Zen 5 with AVX-512; an estimated 70-75 min on a 2-core AVX2 CPU
such as the AMD EPYC Zen 3 measured in docs/segmenter.md; ``make segmenter``)::

    .venv/bin/python -m ctslib.nerve.pretrained train

Training data (never the 40 usgra-seg *test* images):

* the usgra-seg **train** split (real B-mode ultrasound of brachial plexus, elbow, femoral and
  sciatic nerves; CC-BY 4.0), minus a validation part carved from it in blocks of neighbouring
  file numbers (neighbouring images come from one scan) that alone chooses the epoch kept;
* synthetic frames of both planes from ``ctslib.synth``, rendered in a temporary folder from a
  cohort whose seed differs from the default data's, so the default run's participants are unseen;

with device-shift augmentation (``ctslib.nerve.augment``) drawn afresh every epoch from one seeded
stream, Dice + BCE loss, Adam with warm-up and cosine decay. Figures reported after training:
usgra-seg test (mean/median Dice, crop-hit; flip test-time augmentation) and Dice on the frames
showing a nerve of a second, held-out synthetic cohort.

The synthetic-only measurement of the simulator (sim-to-real) trains with ``train`` and records its
figures through ``ctslib.nerve.sim_to_real``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from ctslib.common.errors import InputError
from ctslib.common.io import sha256_json, write_json
from ctslib.common.seed import rng, set_determinism
from ctslib.data.images import read_gray, read_mask
from ctslib.data.usgra import USGRA_ATTRIBUTION, USGRA_NERVE_LABEL, USGRA_VESSEL_LABEL, usgra_pairs
from ctslib.nerve.augment import AugmentConfig, augment_batch
from ctslib.nerve.inference import segment_images
from ctslib.nerve.realcheck import usgra_check, usgra_summary
from ctslib.nerve.scores import dice_score
from ctslib.nerve.sim_to_real import record_sim_to_real, sim_to_real_key, sim_to_real_recipes
from ctslib.nerve.unet import build_unet, compile_segmenter, load_segmenter, save_segmenter
from ctslib.synth.scenes import SCENE_SETS, scene_frames

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
SHIPPED_WEIGHTS = WEIGHTS_DIR / "nerve_segmenter.keras"
SHIPPED_CARD = WEIGHTS_DIR / "nerve_segmenter.json"


@dataclass(frozen=True)
class Recipe:
    """Everything that decides the shipped segmenter (stored in its JSON card)."""

    seed: int = 2026
    input_size: int = 192
    depth: int = 4
    base_filters: int = 16
    max_filters: int = 96
    stem_stride: int = 2               # U-Net on a half-resolution stem + thin full-resolution branch
    epochs: int = 100                  # validation Dice still rose after epoch 60 (benchmarks/README.md)
    batch_size: int = 16
    learning_rate: float = 2e-3
    min_learning_rate: float = 4e-5
    warmup_epochs: int = 2
    real_repeats: int = 2              # augmented views of every real training image per epoch
    synth_per_epoch: int = 64          # synthetic frames drawn per epoch
    source_side: int = 256             # sources are stored at about this side before augmentation
    val_block: int = 8                 # usgra file numbers per validation block
    val_fraction: float = 0.15         # share of usgra train images kept for validation
    threshold: float = 0.5
    flip_tta: bool = True
    synth_train_seed: int = 101        # synthetic cohort for training (default data: 2026)
    synth_train_participants: int = 12
    synth_heldout_seed: int = 202      # synthetic cohort only for the held-out figure
    synth_heldout_participants: int = 6
    synth_duration_s: float = 4.0
    synth_bad_share: float = 0.3       # share of bad frames in the synthetic videos (default data: 0.79)
    presence_weight: float = 0.0       # frame-level "is there a nerve" loss (ctslib.nerve.unet.presence_nll)
    vessel_weight: float = 0.0         # > 0: a second output learns usgra-seg's vessels (ctslib.nerve.unet.nerve_vessel_loss)
    synthetic_only: bool = False       # sim-to-real: train on synthetic frames only (see ``train``)
    synth_scenes: str = "wrist"        # "wrist": the study's wrist videos; "randomised": ctslib.synth.scenes
    scenes_train: int = 4000           # randomised scenes for training, one frame each (a new scene teaches more than a new pose)
    scenes_heldout: int = 240          # randomised scenes for the held-out figure
    keep_epoch: str = "best"           # "best": the validation-chosen epoch; "last": the end of the cosine decay
    augment: AugmentConfig = field(default_factory=AugmentConfig)


# -- data -------------------------------------------------------------------------------------


def usgra_val_split(image_paths: list[Path], fraction: float, block: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) positions of usgra *train* images, validation taken in whole blocks.

    Images are grouped by ``int(file stem) // block`` (neighbouring numbers come from one scan);
    seeded whole groups go to validation until ``fraction`` of the images are there.
    """
    groups = np.array([int(Path(p).stem) // block for p in image_paths])
    order = rng(seed, "usgra-val").permutation(np.unique(groups))
    val_groups: list[int] = []
    for g in order:
        if np.isin(groups, val_groups).sum() >= fraction * len(groups):
            break
        val_groups.append(int(g))
    is_val = np.isin(groups, val_groups)
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def _fit_side(image: np.ndarray, side: int, interpolation: int) -> np.ndarray:
    """Resize so the longer side is at most ``side`` (keeps the aspect ratio)."""
    scale = side / max(image.shape[:2])
    if scale >= 1.0:
        return image
    size = (int(round(image.shape[1] * scale)), int(round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=interpolation)


def load_sources(image_paths, mask_paths, side: int, label: int | None,
                 vessel_label: int | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Images (float32 [0, 1]) and soft masks at about ``side`` pixels, for augmentation.

    With ``vessel_label`` each mask is (H, W, 3): nerve, vessel, and a plane of ones (vessels labelled).
    """
    images, masks = [], []
    for ip, mp in zip(image_paths, mask_paths):
        images.append(_fit_side(read_gray(ip), side, cv2.INTER_AREA).astype(np.float32) / 255.0)
        target = read_mask(mp, label).astype(np.float32)
        if vessel_label is not None:
            vessel = read_mask(mp, vessel_label).astype(np.float32)
            target = np.stack([target, vessel, np.ones_like(target)], axis=-1)
        masks.append(_fit_side(target, side, cv2.INTER_AREA))
    return images, masks


def unlabelled_vessels(mask: np.ndarray) -> np.ndarray:
    """A nerve mask (H, W) as a three-plane target whose vessels are not labelled (zero planes)."""
    target = mask.astype(np.float32)
    return np.stack([target, np.zeros_like(target), np.zeros_like(target)], axis=-1)


def nerve_only(model, recipe: "Recipe"):
    """The one-output (nerve) segmenter carrying a two-output model's weights.

    Every layer is the same except the last 1x1 convolution, whose vessel column is dropped, so
    the shipped file keeps ``build_unet``'s one-channel architecture that stage 03 loads and fine-tunes.
    """
    single = _build(recipe)
    weights = model.get_weights()
    kernel, bias = weights[-2], weights[-1]
    single.set_weights([*weights[:-2], kernel[..., :1], bias[:1]])
    return single


def small_cohort_config(seed: int, n_participants: int, duration_s: float, *, bad_share: float = 0.3,
                        workers: int = 1):
    """A small synthetic cohort at 5 fps: 1.5 wrists a participant, the grades as even as they go."""
    from ctslib.synth.config import SynthConfig

    n_wrists = int(round(1.5 * n_participants))
    counts = tuple(n_wrists // 4 + (1 if k < n_wrists % 4 else 0) for k in range(4))
    return SynthConfig(seed=seed, n_participants=n_participants, grade_counts=counts, duration_s=duration_s,
                       source_fps=5.0, bad_share=bad_share, workers=workers)


def synthetic_frames(seed: int, n_participants: int, duration_s: float, folder: Path,
                     *, bad_share: float = 0.3, good_only: bool = False) -> pd.DataFrame:
    """Render a small synthetic cohort into ``folder``; one row per frame with image and mask.

    Columns: video, plane, wrist_id, bad_reason, image (uint8 HxW), mask (uint8 HxW 0/1).
    ``good_only`` drops the generator's bad frames (blur, dropout, misaligned, frozen).
    """
    from ctslib.synth.dataset import ensure_dataset

    root = ensure_dataset(folder, small_cohort_config(seed, n_participants, duration_s, bad_share=bad_share),
                          progress=False)
    truth = pd.read_csv(root / "truth" / "frames.csv", keep_default_na=False)
    rows = []
    for video, part in truth.groupby("video", sort=True):
        capture = cv2.VideoCapture(str(root / "videos" / f"{video}.avi"))
        masks = np.load(root / "masks" / f"{video}.npz")["mask"]
        for i, row in enumerate(part.sort_values("source_index").itertuples(index=False)):
            ok, frame = capture.read()
            if not ok:
                raise InputError(f"synthetic video ended at frame {i}", file=root / "videos" / f"{video}.avi")
            if good_only and row.bad_reason:
                continue
            rows.append({"video": video, "plane": row.plane, "wrist_id": row.wrist_id,
                         "bad_reason": row.bad_reason, "image": cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY),
                         "mask": (masks[i] > 0).astype(np.uint8)})
        capture.release()
    return pd.DataFrame(rows)


KEEP_EPOCHS = ("best", "last")
FRAMES_PER_SCENE = 1


def synthetic_sets(recipe: "Recipe") -> tuple[pd.DataFrame, pd.DataFrame]:
    """The synthetic training and held-out frames of ``recipe``: wrist videos or randomised scenes."""
    if recipe.synth_scenes not in SCENE_SETS:
        raise ValueError(f"synth_scenes must be one of {SCENE_SETS}, got {recipe.synth_scenes!r}")
    if recipe.synth_scenes == "randomised":
        return (scene_frames(recipe.synth_train_seed, recipe.scenes_train, FRAMES_PER_SCENE),
                scene_frames(recipe.synth_heldout_seed, recipe.scenes_heldout, FRAMES_PER_SCENE))
    with tempfile.TemporaryDirectory(prefix="cts-synth-") as tmp:
        return (synthetic_frames(recipe.synth_train_seed, recipe.synth_train_participants, recipe.synth_duration_s,
                                 Path(tmp) / "train", bad_share=recipe.synth_bad_share),
                synthetic_frames(recipe.synth_heldout_seed, recipe.synth_heldout_participants, recipe.synth_duration_s,
                                 Path(tmp) / "heldout", bad_share=recipe.synth_bad_share, good_only=True))


# -- evaluation -------------------------------------------------------------------------------


def nerve_dice(model, images: list[np.ndarray], masks: list[np.ndarray], input_size: int,
               threshold: float, flip_tta: bool) -> np.ndarray:
    """Per-image Dice (largest component, full resolution) on images whose mask shows a nerve."""
    keep = [k for k, m in enumerate(masks) if m.any()]
    preds = segment_images(model, [images[k] for k in keep], input_size, threshold, flip_tta=flip_tta)
    return np.array([dice_score(p, masks[k]) for p, k in zip(preds, keep)])


def usgra_figures(model, recipe: "Recipe", root: Path, subset: str) -> dict:
    """The card's figures on one usgra-seg split: ``usgra_summary`` per component rule, rounded to 4 places."""
    summary = usgra_summary(usgra_check(model, recipe.input_size, recipe.threshold, root=root, subset=subset,
                                        flip_tta=recipe.flip_tta)).set_index("components")
    return {rule: {k: round(float(v), 4) for k, v in summary.loc[rule].items()} for rule in summary.index}


# -- training ---------------------------------------------------------------------------------


def _build(recipe: Recipe, seed: int | None = None, out_channels: int = 1):
    return build_unet(recipe.input_size, depth=recipe.depth, base_filters=recipe.base_filters,
                      seed=recipe.seed if seed is None else seed, residual=True,
                      max_filters=recipe.max_filters, stem_stride=recipe.stem_stride,
                      out_channels=out_channels)


def weights_hash(model) -> str:
    """SHA-256 of the model's weights (in order: shape, dtype, bytes); equal hashes = identical weights.

    Layer names are left out: Keras numbers them per process (``conv2d_35``), not per model.
    """
    import hashlib

    h = hashlib.sha256()
    for value in model.get_weights():
        value = np.ascontiguousarray(value)
        h.update(f"{value.shape}:{value.dtype}".encode())
        h.update(value.tobytes())
    return h.hexdigest()


def train(recipe: Recipe, out_path: Path = SHIPPED_WEIGHTS, *, usgra_root: Path | None = None,
          log=print) -> dict:
    """Train the shipped segmenter by ``recipe``; save weights + JSON card; return the card.

    With ``recipe.synthetic_only`` (the sim-to-real measurement of docs/segmenter.md) no real image
    is read before the test: every epoch draws as many synthetic frames as the shipped recipe draws
    real and synthetic ones together, and the synthetic held-out cohort stands in for validation
    (the measurement keeps the last epoch instead, ``keep_epoch``: that score saturates). The usgra-seg
    test figures then say how far a model of synthetic nerves gets on real ones. Such a run also scores
    the usgra-seg train images, which it never saw (``usgra_dev``): simulator variants are compared on
    those, so the test images give only the figure reported.
    """
    import keras

    from ctslib.common.paths import USGRA_SEG_DIR

    if recipe.keep_epoch not in KEEP_EPOCHS:
        raise ValueError(f"keep_epoch must be one of {KEEP_EPOCHS}, got {recipe.keep_epoch!r}")
    keep_last = recipe.keep_epoch == "last"
    root = Path(usgra_root or USGRA_SEG_DIR)
    start = time.perf_counter()
    set_determinism(recipe.seed)
    images, masks = usgra_pairs(root, "train")
    train_idx, val_idx = usgra_val_split(images, recipe.val_fraction, recipe.val_block, recipe.seed)
    vessels = recipe.vessel_weight > 0
    if recipe.synthetic_only and vessels:
        raise InputError("a synthetic-only segmenter cannot learn usgra-seg's vessels (vessel_weight must be 0)")
    if recipe.synthetic_only:  # the shipped recipe's images per epoch, all of them synthetic
        real_x, real_y = [], []
        synth_per_epoch = recipe.real_repeats * len(train_idx) + recipe.synth_per_epoch
    else:
        real_x, real_y = load_sources([images[i] for i in train_idx], [masks[i] for i in train_idx],
                                      recipe.source_side, USGRA_NERVE_LABEL,
                                      USGRA_VESSEL_LABEL if vessels else None)
        synth_per_epoch = recipe.synth_per_epoch
        val_images = [read_gray(images[i]) for i in val_idx]
        val_masks = [read_mask(masks[i], USGRA_NERVE_LABEL) for i in val_idx]
    n_real_val = 0 if recipe.synthetic_only else len(val_idx)
    synth, heldout = synthetic_sets(recipe)
    synth_x = [f.astype(np.float32) / 255.0 for f in synth["image"]]
    synth_y = [unlabelled_vessels(m) if vessels else m.astype(np.float32) for m in synth["mask"]]
    if recipe.synthetic_only:  # the epoch is chosen on synthetic held-out frames: no real image before the test
        val_images, val_masks = list(heldout["image"]), list(heldout["mask"])
    log(f"usgra train {len(real_x)} + val {n_real_val} images (test never "
        f"read); synthetic {len(synth)} training frames ({synth_per_epoch} an epoch), {len(heldout)} held-out frames"
        f"{' (they choose the epoch)' if recipe.synthetic_only and not keep_last else ''}; prep {time.perf_counter() - start:.0f} s")

    steps = recipe.epochs * -(-(recipe.real_repeats * len(real_x) + synth_per_epoch) // recipe.batch_size)
    warm = min(recipe.warmup_epochs, recipe.epochs - 1) * steps // recipe.epochs
    schedule = keras.optimizers.schedules.CosineDecay(
        recipe.learning_rate * 0.1, decay_steps=max(1, steps - warm), alpha=recipe.min_learning_rate / recipe.learning_rate,
        warmup_target=recipe.learning_rate, warmup_steps=warm)
    model = compile_segmenter(_build(recipe, out_channels=2 if vessels else 1), schedule,
                              recipe.presence_weight, recipe.vessel_weight)
    gen = rng(recipe.seed, "segmenter-augment")
    history, best = [], (-1.0, 0, None)
    for epoch in range(recipe.epochs):
        t0 = time.perf_counter()
        picks = gen.choice(len(synth_x), size=min(synth_per_epoch, len(synth_x)), replace=False)
        src_x = [*real_x * recipe.real_repeats, *(synth_x[k] for k in picks)]
        src_y = [*real_y * recipe.real_repeats, *(synth_y[k] for k in picks)]
        order = gen.permutation(len(src_x))
        x, y = augment_batch([src_x[k] for k in order], [src_y[k] for k in order], recipe.input_size, gen,
                             recipe.augment)
        fit = model.fit(x, y, batch_size=recipe.batch_size, epochs=epoch + 1, initial_epoch=epoch,
                        shuffle=False, verbose=0)
        val = nerve_dice(model, val_images, val_masks, recipe.input_size, recipe.threshold, recipe.flip_tta)
        row = {"epoch": epoch + 1, "loss": fit.history["loss"][-1], "dice": fit.history["dice"][-1],
               "val_dice": float(val.mean()), "seconds": time.perf_counter() - t0}
        history.append(row)
        if keep_last or row["val_dice"] > best[0]:
            best = (row["val_dice"], epoch + 1, [w.copy() for w in model.get_weights()])
        log(f"epoch {epoch + 1:3d}/{recipe.epochs}: loss {row['loss']:.4f} dice {row['dice']:.3f} "
            f"val Dice {row['val_dice']:.3f} ({row['seconds']:.0f} s)")
    train_seconds = time.perf_counter() - start

    model.set_weights(best[2])
    final = nerve_only(model, recipe)
    save_segmenter(final, out_path)
    synth_dice = nerve_dice(final, list(heldout["image"]), list(heldout["mask"]), recipe.input_size,
                            recipe.threshold, recipe.flip_tta)
    card = {
        "file": Path(out_path).name,
        "architecture": final.name,
        "parameters": int(final.count_params()),
        "input_size": recipe.input_size,
        "threshold": recipe.threshold,
        "flip_tta": recipe.flip_tta,
        "recipe": asdict(recipe),
        "recipe_hash": sha256_json(asdict(recipe)),
        "weights_sha256": weights_hash(final),
        "best_epoch": best[1],
        "train_seconds": round(train_seconds, 1),
        "n_usgra_train": len(real_x), "n_usgra_val": n_real_val, "n_synthetic_train": len(synth),
        ("synthetic_val_dice_mean" if recipe.synthetic_only else "usgra_val_dice_mean"): round(best[0], 4),
        "usgra_test": usgra_figures(final, recipe, root, "test"),
        # usgra-seg's train images, unseen by a synthetic-only model: where simulators are compared
        **({"usgra_dev": usgra_figures(final, recipe, root, "train")} if recipe.synthetic_only else {}),
        "synthetic_heldout_dice_mean": round(float(synth_dice.mean()), 4),
        "synthetic_heldout_dice_median": round(float(np.median(synth_dice)), 4),
        "synthetic_heldout_frames": int(len(synth_dice)),
        "history": [{k: round(float(v), 4) for k, v in h.items()} for h in history],
        "attribution": USGRA_ATTRIBUTION,
    }
    card = read_card(write_json(Path(out_path).with_suffix(".json"), card))  # as stored (JSON lists, not tuples)
    log(f"{'last' if keep_last else 'best'} epoch {best[1]} (val Dice {best[0]:.3f}); usgra test Dice mean "
        f"{card['usgra_test']['largest']['dice_mean']:.3f} (median {card['usgra_test']['largest']['dice_median']:.3f}), "
        f"crop-hit {card['usgra_test']['largest']['crop_hit_rate']:.3f}; synthetic held-out Dice "
        f"{card['synthetic_heldout_dice_mean']:.3f}; {train_seconds / 60:.1f} min")
    return card


# -- use --------------------------------------------------------------------------------------


def read_card(path: Path = SHIPPED_CARD) -> dict:
    """The JSON card of a shipped segmenter (input size, threshold, figures)."""
    if not Path(path).exists():
        raise InputError("shipped segmenter card not found; run `make segmenter`", file=path)
    return json.loads(Path(path).read_text(encoding="utf-8"))


def load_shipped(path: Path = SHIPPED_WEIGHTS):
    """``(model, card)`` of the shipped segmenter (``card`` from the JSON beside the weights)."""
    if not Path(path).exists():
        raise InputError("shipped segmenter weights not found; run `make segmenter`", file=path)
    return load_segmenter(path), read_card(Path(path).with_suffix(".json"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ctslib.nerve.pretrained", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train the shipped segmenter (deterministic, seeded)")
    t.add_argument("--out", type=Path, default=SHIPPED_WEIGHTS, help="weights file (.keras); the card goes beside it")
    t.add_argument("--epochs", type=int, default=Recipe.epochs)
    t.add_argument("--input-size", type=int, default=Recipe.input_size)
    t.add_argument("--base-filters", type=int, default=Recipe.base_filters)
    t.add_argument("--source-side", type=int, default=Recipe.source_side)
    t.add_argument("--presence-weight", type=float, default=Recipe.presence_weight)
    t.add_argument("--vessel-weight", type=float, default=Recipe.vessel_weight,
                   help="> 0: also learn usgra-seg's vessel labels (a second output, dropped when saved)")
    t.add_argument("--synthetic-only", action="store_true",
                   help="sim-to-real: synthetic frames only, epoch chosen on synthetic frames (use with --out)")
    t.add_argument("--keep-epoch", choices=KEEP_EPOCHS, default=None,
                   help="epoch kept: 'best' on validation (default) or 'last'; default with --synthetic-only: "
                        "'last', since a synthetic held-out score saturates and cannot choose for real nerves")
    t.add_argument("--repeats", type=int, default=2,
                   help="with --synthetic-only: runs with the seeds of SIM_SEEDS, recorded as their mean (default 2)")
    t.add_argument("--scenes", choices=SCENE_SETS, default=Recipe.synth_scenes,
                   help="synthetic frames: the study's wrist videos or randomised scenes (ctslib.synth.scenes)")
    t.add_argument("--usgra", type=Path, default=None, help="usgra-seg folder (default: ../shared/data/real/usgra-seg)")
    e = sub.add_parser("evaluate", help="score the shipped weights on the usgra-seg test split")
    e.add_argument("--weights", type=Path, default=SHIPPED_WEIGHTS)
    e.add_argument("--usgra", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.command == "train":
        recipe = Recipe(epochs=args.epochs, input_size=args.input_size, base_filters=args.base_filters,
                        source_side=args.source_side, presence_weight=args.presence_weight,
                        vessel_weight=args.vessel_weight, synthetic_only=args.synthetic_only,
                        synth_scenes=args.scenes,
                        keep_epoch=args.keep_epoch or ("last" if args.synthetic_only else "best"))
        if args.synthetic_only and args.out == SHIPPED_WEIGHTS:
            parser.error("--synthetic-only measures the simulator; give --out so the shipped weights stay")
        if not args.synthetic_only:
            train(recipe, args.out, usgra_root=args.usgra)
            return 0
        from ctslib.common.machine import cpu_info, machine_line

        recipes = sim_to_real_recipes(recipe, args.repeats)
        outs = [args.out] if len(recipes) == 1 else [args.out.with_name(f"{args.out.stem}_seed{r.seed}{args.out.suffix}")
                                                     for r in recipes]
        cards = [train(r, out, usgra_root=args.usgra) for r, out in zip(recipes, outs)]
        entry = record_sim_to_real(cards, SHIPPED_CARD, machine=machine_line(cpu_info()))
        print(f"recorded under {sim_to_real_key(args.scenes)} in {SHIPPED_CARD.name}: usgra-seg test Dice "
              f"{entry['usgra_test_dice_mean']:.3f}, crop-hit {entry['usgra_test_crop_hit_rate']:.3f} "
              f"(mean of {entry['n_runs']} runs)")
        return 0
    from ctslib.common.paths import USGRA_SEG_DIR

    model, card = load_shipped(args.weights)
    table = usgra_check(model, card["input_size"], card["threshold"], root=args.usgra or USGRA_SEG_DIR,
                        flip_tta=card["flip_tta"])
    print(usgra_summary(table).to_string(index=False))
    print(f"Data: {USGRA_ATTRIBUTION}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
