"""Nerve segmentation: a small Keras U-Net, its input pipeline, post-processing, metrics, stage-03 verbs.

The segmenter only has to *find* the median nerve well enough to centre a crop on it and to
measure its area (CSA). Frames are downsampled to the model's ``input_size`` for speed on a CPU,
predictions are upsampled back to the frame's full resolution, thresholded, and reduced to one
connected component (the largest, or the one nearest a marked point: one median nerve per
frame). ``segment_images`` is that whole predict -> post-process step. Loss = binary
cross-entropy + soft Dice (Dice copes with the nerve being a few percent of the image; BCE gives
smooth early gradients).

The package ships one trained segmenter (``ctslib.nerve.pretrained``); stage 03 uses it as is or
fine-tunes it (``choose_mode``, ``fine_tune``). Evaluation splits are by participant
(``participant_split``), never by frame: frames of one wrist are near-duplicates. Dice is scored
on frames whose true mask shows a nerve; empty-against-empty frames are counted apart.

Also reads and scores the public usgra-seg data set (real ultrasound, CC-BY 4.0: ``usgra_pairs``,
``usgra_check``, ``USGRA_ATTRIBUTION``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from ctslib.severity.inputs import steady
from ctslib.common.errors import InputError
from ctslib.nerve.geometry import mask_centroid, point_in_mask
from ctslib.common.io import atomic_path

USGRA_ATTRIBUTION = "usgra-seg dataset, T. M. Kandaouroff (github.com/tmkand/usgra-seg), CC-BY 4.0"
"""Attribution to print wherever results on the usgra-seg data are shown (CC-BY 4.0)."""

USGRA_NERVE_LABEL = 1
"""Label of the nerve in usgra-seg's palette masks."""
USGRA_VESSEL_LABEL = 2
"""Label of the blood vessels (learnt only as a second, training-time output of the shipped segmenter)."""


# -- reading images and masks -------------------------------------------------------------


def read_gray(path: str | Path) -> np.ndarray:
    """Read an image as 8-bit grayscale (H, W); RGB/RGBA/palette inputs are converted.

    Raises:
        InputError: the file is missing or not a readable image.
    """
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise InputError("missing or unreadable image", file=path)
    return image


def read_mask(path: str | Path, label: int | None = None) -> np.ndarray:
    """Read a mask as a binary uint8 (H, W) array of 0/1.

    Args:
        path: PNG mask. The pipeline's masks are 0/255 grayscale; usgra-seg's are palette
            ('P') label maps, read through PIL so the *palette indices* (not colours) come back.
        label: keep pixels equal to this label; ``None`` keeps every non-zero pixel.

    Raises:
        InputError: the file is missing or not a readable image.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            labels = np.asarray(img if img.mode in ("P", "L", "1", "I", "I;16") else img.convert("L"))
    except (FileNotFoundError, UnidentifiedImageError, OSError) as exc:
        raise InputError(f"missing or unreadable mask ({exc.__class__.__name__})", file=path) from exc
    if labels.ndim != 2:
        raise InputError(f"mask must be a single-channel image, got shape {labels.shape}", file=path)
    selected = labels > 0 if label is None else labels == label
    return selected.astype(np.uint8)


def to_model_input(image: np.ndarray, input_size: int) -> np.ndarray:
    """Resize an 8-bit grayscale image to (input_size, input_size, 1) float32 in [0, 1].

    Non-square images are resized (not padded) to a square, as every frame of one data set
    is resized alike; ``postprocess`` resizes predictions back to the original shape.
    """
    small = cv2.resize(image, (input_size, input_size), interpolation=cv2.INTER_AREA)
    return (small.astype(np.float32) / 255.0)[..., None]


def mask_to_model_target(mask: np.ndarray, input_size: int) -> np.ndarray:
    """Resize a 0/1 mask to (input_size, input_size, 1) float32 with soft (area-averaged) edges."""
    small = cv2.resize(mask.astype(np.float32), (input_size, input_size), interpolation=cv2.INTER_AREA)
    return np.clip(small, 0.0, 1.0)[..., None]


def load_pairs(
    image_paths: Sequence[str | Path],
    mask_paths: Sequence[str | Path],
    input_size: int,
    *,
    label: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Load image/mask pairs into model-sized arrays ``(N, s, s, 1)`` (images, targets).

    Raises:
        InputError: counts differ, a file is unreadable, or an image and its mask differ in shape.
    """
    if len(image_paths) != len(mask_paths):
        raise InputError(f"{len(image_paths)} images but {len(mask_paths)} masks")
    images = np.zeros((len(image_paths), input_size, input_size, 1), np.float32)
    targets = np.zeros_like(images)
    for i, (ip, mp) in enumerate(zip(image_paths, mask_paths)):
        image, mask = read_gray(ip), read_mask(mp, label)
        if image.shape != mask.shape:
            raise InputError(f"mask shape {mask.shape} differs from its image's {image.shape} ({ip})", file=mp)
        images[i] = to_model_input(image, input_size)
        targets[i] = mask_to_model_target(mask, input_size)
    return images, targets


def usgra_pairs(root: str | Path, subset: str = "train") -> tuple[list[Path], list[Path]]:
    """Image and mask paths of the usgra-seg data set (``subset`` "train": 204 pairs, "test": 40).

    Layout: ``dataset/images`` + ``dataset/masks`` (train), ``dataset/test/images`` +
    ``dataset/test/masks`` (test); a mask has its image's file name.

    Raises:
        InputError: unknown subset, missing folder, or an image without a mask.
    """
    base = {"train": Path(root) / "dataset", "test": Path(root) / "dataset" / "test"}.get(subset)
    if base is None:
        raise InputError(f"subset must be 'train' or 'test', got {subset!r}")
    images = sorted((base / "images").glob("*.png"))
    if not images:
        raise InputError("no PNG images found", file=base / "images")
    masks = [base / "masks" / p.name for p in images]
    missing = [m for m in masks if not m.exists()]
    if missing:
        raise InputError(f"{len(missing)} images have no mask, e.g. {missing[0].name}", file=base / "masks")
    return images, masks


def usgra_check(
    model,
    input_size: int,
    threshold: float = 0.5,
    *,
    root: str | Path,
    subset: str = "test",
    flip_tta: bool = False,
) -> pd.DataFrame:
    """Score a segmenter on usgra-seg images at their original resolution, one row per image.

    Columns: ``id``, ``true_area_px``, ``dice_largest`` / ``iou_largest`` (largest predicted
    component: the pipeline's rule), ``dice_all`` / ``iou_all`` (every component above the
    threshold; several nerves can be in one usgra-seg image) and ``crop_hit`` (the centroid of
    the largest component lies inside the true nerve; False when nothing was predicted).
    """

    image_paths, mask_paths = usgra_pairs(root, subset)
    images = [read_gray(p) for p in image_paths]
    trues = [read_mask(p, USGRA_NERVE_LABEL) for p in mask_paths]
    every = segment_images(model, images, input_size, threshold, keep_largest=False, flip_tta=flip_tta)
    rows = []
    for path, true, pred_all in zip(image_paths, trues, every):
        pred = largest_component(pred_all)
        centre = mask_centroid(pred)
        rows.append({
            "id": path.name, "true_area_px": int(true.sum()),
            "dice_largest": dice_score(pred, true), "iou_largest": iou_score(pred, true),
            "dice_all": dice_score(pred_all, true), "iou_all": iou_score(pred_all, true),
            "crop_hit": centre is not None and point_in_mask(true, *centre),
        })
    return pd.DataFrame(rows)


def usgra_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean/median Dice, mean IoU and crop-hit rate of a ``usgra_check`` table, per component rule."""
    rows = []
    for rule in ("largest", "all"):
        rows.append({
            "components": rule, "n_images": len(table),
            "dice_mean": table[f"dice_{rule}"].mean(), "dice_median": table[f"dice_{rule}"].median(),
            "iou_mean": table[f"iou_{rule}"].mean(), "crop_hit_rate": float(table["crop_hit"].mean()),
        })
    return pd.DataFrame(rows)


# -- tf.data input pipeline ---------------------------------------------------------------


def make_dataset(
    images: np.ndarray,
    targets: np.ndarray,
    *,
    batch_size: int,
    augment: bool,
    seed: int,
    shuffle: bool = True,
    max_shift: float = 0.06,
    gain_range: tuple[float, float] = (0.85, 1.15),
):
    """A batched ``tf.data.Dataset`` of (image, mask) pairs with light, seeded augmentation.

    Augmentation (train only) is applied identically to image and mask where geometric:
    horizontal flip (a left and a right wrist mirror each other), a small random shift (up to
    ``max_shift`` of the side, edges mirrored), and an intensity gain (image only; probe gain
    varies between examinations). No vertical flips or rotations: depth runs downward in
    B-mode. Randomness is stateless and derived from ``seed``, so a run is repeatable: the
    n-th example of every epoch gets the n-th seed of one seeded stream, and as the order is
    reshuffled each epoch, an image meets a different augmentation each epoch.
    """
    import tensorflow as tf

    size = images.shape[1]
    pad = int(round(max_shift * size))
    ds = tf.data.Dataset.from_tensor_slices((images, targets))
    if shuffle:
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    if augment:
        seeds = tf.data.Dataset.random(seed=seed).batch(2)  # one (2,) int64 seed per example
        ds = tf.data.Dataset.zip((ds, seeds))

        def _augment(pair, pair_seed):
            image, mask = pair
            s = tf.cast(pair_seed, tf.int32)
            both = tf.concat([image, mask], axis=-1)
            both = tf.image.stateless_random_flip_left_right(both, seed=s)
            if pad > 0:
                padded = tf.pad(both[None], [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="SYMMETRIC")[0]
                both = tf.image.stateless_random_crop(padded, size=tf.shape(both), seed=s + 1)
            gain = tf.random.stateless_uniform([], seed=s + 2, minval=gain_range[0], maxval=gain_range[1])
            image = tf.clip_by_value(both[..., :1] * gain, 0.0, 1.0)
            return image, both[..., 1:]

        ds = ds.map(_augment, num_parallel_calls=1, deterministic=True)
    return steady(ds.batch(batch_size).prefetch(2))


# -- model ----------------------------------------------------------------------------------


def build_unet(
    input_size: int,
    *,
    depth: int = 3,
    base_filters: int = 16,
    seed: int = 0,
    residual: bool = False,
    max_filters: int | None = None,
    stem_stride: int = 1,
    out_channels: int = 1,
):
    """A small U-Net: ``depth`` down/up levels of two 3x3 Conv-BN-ReLU, filters doubling per level.

    Args:
        input_size: side of the square single-channel input; must be divisible by ``2**depth``.
        depth: number of pooling levels.
        base_filters: filters of the first level.
        seed: seeds the kernel initialisers.
        residual: give each block a (1x1-projected) identity shortcut (a residual U-Net; trains
            deeper nets faster and more stably).
        max_filters: cap on the filters of a level (keeps the deep levels, and the file, small).
        stem_stride: 2 runs the U-Net on a half-resolution stem (a strided convolution) and
            joins it to a thin full-resolution branch at the end: the capacity of ``base_filters``
            at a quarter of the cost of the top level. ``input_size`` must then be divisible by
            ``2**(depth + 1)``.
        out_channels: sigmoid output maps; channel 0 is the nerve (a second one, the vessel, is
            used only while training the shipped segmenter; see ``nerve_vessel_loss``).

    Returns:
        An uncompiled ``keras.Model`` mapping (s, s, 1) images to (s, s, out_channels) probabilities.
    """
    import keras
    from keras import layers

    if stem_stride not in (1, 2):
        raise ValueError(f"stem_stride must be 1 or 2, got {stem_stride}")
    levels = depth + (stem_stride == 2)
    if input_size % (2**levels):
        raise ValueError(f"input_size {input_size} must be divisible by {2**levels} (depth {depth}, stem {stem_stride})")
    counter = iter(range(10_000))

    def width(level: int) -> int:
        return min(base_filters * 2**level, max_filters or 1 << 30)

    def conv_bn(x, filters, kernel=3):
        init = keras.initializers.HeNormal(seed=seed + next(counter))
        x = layers.Conv2D(filters, kernel, padding="same", use_bias=False, kernel_initializer=init)(x)
        return layers.BatchNormalization(momentum=0.9)(x)  # short runs: moving stats settle fast

    def conv_block(x, filters):
        if not residual:
            for _ in range(2):
                x = layers.Activation("relu")(conv_bn(x, filters))
            return x
        shortcut = x if x.shape[-1] == filters else conv_bn(x, filters, kernel=1)
        y = layers.Activation("relu")(conv_bn(x, filters))
        y = conv_bn(y, filters)
        return layers.Activation("relu")(layers.Add()([shortcut, y]))

    inputs = keras.Input((input_size, input_size, 1))
    x, skips = inputs, []
    if stem_stride == 2:
        full = layers.Activation("relu")(conv_bn(inputs, max(base_filters // 2, 4)))
        init = keras.initializers.HeNormal(seed=seed + next(counter))
        x = layers.Conv2D(base_filters, 3, strides=2, padding="same", use_bias=False, kernel_initializer=init)(full)
        x = layers.Activation("relu")(layers.BatchNormalization(momentum=0.9)(x))
    for level in range(depth):
        x = conv_block(x, width(level))
        skips.append(x)
        x = layers.MaxPooling2D(2)(x)
    x = conv_block(x, width(depth))
    for level in reversed(range(depth)):
        init = keras.initializers.HeNormal(seed=seed + next(counter))
        x = layers.Conv2DTranspose(width(level), 2, strides=2, kernel_initializer=init)(x)
        x = layers.Concatenate()([x, skips[level]])
        x = conv_block(x, width(level))
    if stem_stride == 2:
        init = keras.initializers.HeNormal(seed=seed + next(counter))
        x = layers.Conv2DTranspose(max(base_filters // 2, 4), 2, strides=2, kernel_initializer=init)(x)
        x = layers.Activation("relu")(conv_bn(layers.Concatenate()([x, full]), max(base_filters // 2, 4)))
    init = keras.initializers.GlorotUniform(seed=seed + next(counter))
    outputs = layers.Conv2D(out_channels, 1, activation="sigmoid", kernel_initializer=init)(x)
    kind = ("resunet" if residual else "unet") + ("_stem2" if stem_stride == 2 else "")
    return keras.Model(inputs, outputs, name=f"{kind}_d{depth}_f{base_filters}")


def dice_bce_loss(y_true, y_pred, smooth: float = 1.0):
    """Binary cross-entropy + (1 - soft Dice), Dice computed per image then averaged."""
    import keras
    from keras import ops

    bce = ops.mean(keras.losses.binary_crossentropy(y_true, y_pred), axis=(1, 2))
    inter = ops.sum(y_true * y_pred, axis=(1, 2, 3))
    total = ops.sum(y_true, axis=(1, 2, 3)) + ops.sum(y_pred, axis=(1, 2, 3))
    soft_dice = (2.0 * inter + smooth) / (total + smooth)
    return bce + (1.0 - soft_dice)


def presence_nll(y_true, y_pred, unit_share: float = 0.01):
    """Image-level loss of "is there a nerve in this frame?", per image.

    The predicted nerve area ``A`` (sum of probabilities) gives ``P(nerve) = 1 - exp(-A / u)``
    with ``u = unit_share`` of the image's pixels. Its negative log-likelihood is ``A / u`` on a
    frame whose mask is empty (a penalty that grows linearly with the false-positive area and
    never saturates) and about ``exp(-A / u)`` (near zero) on a frame showing a nerve. Soft Dice
    alone hardly moves on an empty frame: its gradient there falls as ``1 / A^2``, so a confident
    false positive (a tendon in a longitudinal frame that left the nerve) stays.
    """
    from keras import ops

    unit = unit_share * float(y_pred.shape[1] * y_pred.shape[2])
    present = ops.cast(ops.max(y_true, axis=(1, 2, 3)) > 0.5, "float32")
    area = ops.sum(y_pred, axis=(1, 2, 3)) / unit
    absent_nll = area
    present_nll = -ops.log(ops.clip(-ops.expm1(-area), 1e-7, 1.0))
    return present * present_nll + (1.0 - present) * absent_nll


def nerve_vessel_loss(vessel_weight: float):
    """Dice+BCE of the nerve plus ``vessel_weight`` x Dice+BCE of the vessel, for two-channel models.

    Targets have three channels: nerve, vessel and a "vessel labelled" plane (1 where the image's
    vessels were drawn, 0 for images without vessel labels, whose vessel term is then left out).
    Learning where the vessels are teaches the net what is *not* a nerve: anechoic round vessels
    are the structures the nerve-only model most often took for a small nerve.
    """
    from keras import ops

    def loss(y_true, y_pred):
        nerve = dice_bce_loss(y_true[..., 0:1], y_pred[..., 0:1])
        labelled = ops.cast(ops.max(y_true[..., 2:3], axis=(1, 2, 3)) > 0.5, "float32")
        vessel = dice_bce_loss(y_true[..., 1:2], y_pred[..., 1:2])
        return nerve + vessel_weight * labelled * vessel

    loss.__name__ = "nerve_vessel_loss"
    return loss


def segmentation_loss(presence_weight: float = 0.0):
    """``dice_bce_loss``, plus ``presence_weight`` x ``presence_nll`` when it is above 0."""
    if presence_weight <= 0:
        return dice_bce_loss

    def loss(y_true, y_pred):
        return dice_bce_loss(y_true, y_pred) + presence_weight * presence_nll(y_true, y_pred)

    loss.__name__ = "dice_bce_presence_loss"
    return loss


def soft_dice_metric(y_true, y_pred):
    """Batch-mean Dice of the 0.5-thresholded prediction (a training-time monitor)."""
    from keras import ops

    y_hard = ops.cast(y_pred[..., 0:1] > 0.5, "float32")  # channel 0 = nerve
    t_hard = ops.cast(y_true[..., 0:1] > 0.5, "float32")
    inter = ops.sum(t_hard * y_hard, axis=(1, 2, 3))
    total = ops.sum(t_hard, axis=(1, 2, 3)) + ops.sum(y_hard, axis=(1, 2, 3))
    return ops.mean((2.0 * inter + 1.0) / (total + 1.0))


soft_dice_metric.__name__ = "dice"


def compile_segmenter(model, learning_rate=1e-3, presence_weight: float = 0.0, vessel_weight: float = 0.0):
    """Compile ``model`` with Adam (a float or a Keras schedule), Dice+BCE(+presence) loss and a Dice monitor.

    ``vessel_weight`` > 0 (a two-channel model) trains on ``nerve_vessel_loss`` instead.
    """
    import keras

    if vessel_weight > 0 and presence_weight > 0:
        raise ValueError("the vessel and presence losses are not combined")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=nerve_vessel_loss(vessel_weight) if vessel_weight > 0 else segmentation_loss(presence_weight),
        metrics=[soft_dice_metric],
    )
    return model


def train_segmenter(
    images: np.ndarray,
    targets: np.ndarray,
    *,
    epochs: int,
    batch_size: int = 16,
    learning_rate: float = 1e-3,
    depth: int = 3,
    base_filters: int = 16,
    augment: bool = True,
    seed: int = 0,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    model=None,
    verbose: int = 0,
    presence_weight: float = 0.0,
):
    """Train (or fine-tune, when ``model`` is given) a U-Net on model-sized arrays.

    Call ``ctslib.common.seed.set_determinism(seed)`` first for a repeatable run. ``presence_weight`` adds
    ``presence_nll`` to the loss (teaches "no nerve in this frame" on empty masks).

    Returns:
        ``(model, history)``; history is a DataFrame with one row per epoch (loss, dice, and
        val_loss/val_dice when ``validation`` is given).
    """
    if len(images) == 0:
        raise InputError("no training images with masks")
    if model is None:
        model = build_unet(images.shape[1], depth=depth, base_filters=base_filters, seed=seed)
    compile_segmenter(model, learning_rate, presence_weight)
    train_ds = make_dataset(images, targets, batch_size=batch_size, augment=augment, seed=seed)
    val_ds = None
    if validation is not None and len(validation[0]):
        val_ds = make_dataset(*validation, batch_size=batch_size, augment=False, seed=seed, shuffle=False)
    fit = model.fit(train_ds, validation_data=val_ds, epochs=epochs, verbose=verbose, shuffle=False)
    history = pd.DataFrame(fit.history)
    history.insert(0, "epoch", np.arange(1, len(history) + 1))
    return model, history


def predict_probabilities(model, images: np.ndarray, batch_size: int = 32, *, flip_tta: bool = False) -> np.ndarray:
    """Nerve probabilities (N, s, s) for model-sized images (N, s, s, 1).

    With ``flip_tta`` the prediction is averaged with that of the mirrored image (mirrored back):
    test-time augmentation by the one symmetry B-mode has (left and right wrists mirror).
    """
    if len(images) == 0:
        return np.zeros((0, *images.shape[1:3]), np.float32)
    probs = forward_batches(model, images, batch_size)[..., 0]
    if flip_tta:
        mirrored = forward_batches(model, np.ascontiguousarray(images[:, :, ::-1]), batch_size)[..., 0]
        probs = 0.5 * (probs + mirrored[:, :, ::-1])
    return probs


def forward_batches(model, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """The model's output for ``images``, ``batch_size`` at a time: ``model.predict`` without its
    per-call set-up (a new data pipeline each call; about 40 % of the time when stage 03 segments
    frames in chunks of 64; same batches, same numbers)."""
    return np.concatenate([np.asarray(model.predict_on_batch(images[i:i + batch_size]))
                           for i in range(0, len(images), batch_size)])


def segment_images(
    model,
    images: Sequence[np.ndarray],
    input_size: int,
    threshold: float = 0.5,
    *,
    keep_largest: bool = True,
    flip_tta: bool = False,
    hints: Sequence[tuple[float, float] | None] | None = None,
    batch_size: int = 32,
) -> list[np.ndarray]:
    """Predict -> post-process: one full-resolution 0/1 nerve mask per 8-bit grayscale image.

    Args:
        model: a segmenter (``build_unet`` architecture, sigmoid output).
        images: grayscale images (H, W) of any size; each mask has its image's shape.
        input_size: the model's square input side.
        threshold: probability threshold.
        keep_largest: keep one component per image (the largest, or the one nearest the hint).
        flip_tta: average with the mirrored prediction (see ``predict_probabilities``).
        hints: optional (x, y) point per image (pixels of that image, or None): the component
            nearest the point is kept instead of the largest (``nearest_component``).
    """
    if len(images) == 0:
        return []
    x = np.stack([to_model_input(im, input_size) for im in images])
    probs = predict_probabilities(model, x, batch_size, flip_tta=flip_tta)
    masks = []
    for k, (prob, image) in enumerate(zip(probs, images)):
        hint = hints[k] if hints is not None else None
        binary = postprocess(prob, image.shape[:2], threshold=threshold, keep_largest=keep_largest and hint is None)
        masks.append(nearest_component(binary, *hint) if keep_largest and hint is not None else binary)
    return masks


def save_segmenter(model, path: str | Path) -> Path:
    """Save the model atomically as a ``.keras`` file."""
    with atomic_path(path) as tmp:
        model.save(tmp)
    return Path(path)


def load_segmenter(path: str | Path):
    """Load a segmenter saved by ``save_segmenter`` (uncompiled: for prediction)."""
    import keras

    if not Path(path).exists():
        raise InputError("segmenter model not found", file=path)
    return keras.models.load_model(path, compile=False)


# -- post-processing ------------------------------------------------------------------------


def largest_component(mask: np.ndarray) -> np.ndarray:
    """Keep only the largest 8-connected component of a binary mask (0/1 uint8)."""
    binary = (mask > 0).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if n <= 2:  # background only, or one component
        return binary
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return (labels == biggest).astype(np.uint8)


def nearest_component(mask: np.ndarray, x: float, y: float) -> np.ndarray:
    """Keep the 8-connected component of ``mask`` nearest the point (x = column, y = row).

    A component containing the point wins; otherwise the one with the smallest pixel distance to
    it (ties: the larger component). An empty mask stays empty.
    """
    binary = (mask > 0).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if n <= 2:
        return binary
    rows, cols = np.nonzero(labels)
    dist = (cols - float(x)) ** 2 + (rows - float(y)) ** 2
    best = np.full(n, np.inf)
    np.minimum.at(best, labels[rows, cols], dist)
    areas = stats[:, cv2.CC_STAT_AREA].astype(float)
    order = np.lexsort((-areas[1:], best[1:]))  # nearest first, then larger
    return (labels == 1 + int(order[0])).astype(np.uint8)


def postprocess(
    probability: np.ndarray,
    out_shape: tuple[int, int],
    *,
    threshold: float = 0.5,
    keep_largest: bool = True,
) -> np.ndarray:
    """Model-sized probabilities -> full-resolution binary mask (H, W) of 0/1.

    The probability map is resized (bilinear) to ``out_shape`` = (H, W) *before* thresholding,
    which gives smoother full-resolution edges than upsampling a binary mask. With
    ``keep_largest`` only the largest connected component survives (one nerve per frame).
    """
    height, width = out_shape
    full = cv2.resize(probability.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    binary = (full >= threshold).astype(np.uint8)
    return largest_component(binary) if keep_largest else binary


# -- metrics --------------------------------------------------------------------------------


def dice_score(pred: np.ndarray, true: np.ndarray) -> float:
    """Dice = 2|P∩T| / (|P|+|T|) of two binary masks; NaN when both are empty.

    Empty against empty (no nerve in view, none predicted) is a correct rejection, not a perfect
    segmentation: it is undefined here and counted apart (``summarise_scores``), so frames without
    a nerve can never lift a mean Dice to 1.0.
    """
    p, t = pred > 0, true > 0
    total = int(p.sum() + t.sum())
    return float("nan") if total == 0 else 2.0 * int((p & t).sum()) / total


def iou_score(pred: np.ndarray, true: np.ndarray) -> float:
    """IoU (Jaccard) = |P∩T| / |P∪T| of two binary masks; NaN when both are empty."""
    p, t = pred > 0, true > 0
    union = int((p | t).sum())
    return float("nan") if union == 0 else int((p & t).sum()) / union


SCORE_COLUMNS: tuple[str, ...] = ("id", "true_area_px", "pred_area_px", "dice", "iou")


def segmentation_scores(
    preds: Sequence[np.ndarray], trues: Sequence[np.ndarray], ids: Sequence[str] | None = None
) -> pd.DataFrame:
    """Per-image Dice and IoU with both areas (columns ``SCORE_COLUMNS``); see ``summarise_scores``."""
    if len(preds) != len(trues):
        raise ValueError(f"{len(preds)} predictions but {len(trues)} true masks")
    rows = []
    for i, (p, t) in enumerate(zip(preds, trues)):
        if p.shape != t.shape:
            raise ValueError(f"image {i}: predicted shape {p.shape} != true shape {t.shape}")
        rows.append({"id": ids[i] if ids is not None else i, "true_area_px": int((t > 0).sum()),
                     "pred_area_px": int((p > 0).sum()), "dice": dice_score(p, t), "iou": iou_score(p, t)})
    return pd.DataFrame(rows, columns=list(SCORE_COLUMNS))


def summarise_scores(scores: pd.DataFrame, by: str | None = None) -> pd.DataFrame:
    """Dice/IoU on images whose true mask shows a nerve, and the empty-mask images counted apart.

    Per group of ``by`` and over all images (last row, ``by`` = "all"): ``n_images``;
    ``n_nerve`` images whose truth shows a nerve, with their Dice mean / SD / median and IoU;
    ``n_true_empty`` images with an empty true mask, split into ``n_true_empty_pred_empty``
    (correct rejections) and ``n_true_empty_pred_nerve`` (a nerve predicted where none is).
    Participants are counted too when ``scores`` has a ``participant_id`` column.
    """
    groups = [*(scores.groupby(by) if by else []), ("all", scores)]
    rows = []
    for key, part in groups:
        nerve = part[part["true_area_px"] > 0]
        empty = part[part["true_area_px"] == 0]
        rows.append(
            {
                (by or "set"): key,
                "n_images": len(part),
                **({"n_participants": part["participant_id"].nunique()} if "participant_id" in part else {}),
                "n_nerve": len(nerve),
                "dice_mean": nerve["dice"].mean(),
                "dice_sd": nerve["dice"].std(ddof=1) if len(nerve) > 1 else float("nan"),
                "dice_median": nerve["dice"].median(),
                "iou_mean": nerve["iou"].mean(),
                "iou_median": nerve["iou"].median(),
                "n_true_empty": len(empty),
                "n_true_empty_pred_empty": int((empty["pred_area_px"] == 0).sum()),
                "n_true_empty_pred_nerve": int((empty["pred_area_px"] > 0).sum()),
            }
        )
    return pd.DataFrame(rows)


# -- splits ---------------------------------------------------------------------------------


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


# -- stage 03 verbs: which segmenter, fine-tuning from the shipped weights, scoring frames ------------

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
        presence_weight: weight of ``presence_nll`` in the loss (0: Dice + BCE only).
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


def score_frames(
    model,
    rows: pd.DataFrame,
    frames_dir: str | Path,
    masks_dir: str | Path,
    *,
    input_size: int,
    threshold: float = 0.5,
    flip_tta: bool = False,
    chunk: int = 256,
) -> pd.DataFrame:
    """Per-frame scores (``segmentation_scores`` + plane, participant_id) of frames with masks.

    Frames are ``frames_dir/<frame_id>.png``, masks ``masks_dir/<frame_id>.png``; the pipeline's
    rule (largest component) applies.
    """
    frames_dir, masks_dir = Path(frames_dir), Path(masks_dir)
    ids = list(rows["frame_id"])
    parts = []
    for start in range(0, len(ids), chunk):  # bounded memory on large folders
        part = ids[start : start + chunk]
        images = [read_gray(frames_dir / f"{f}.png") for f in part]
        trues = [read_mask(masks_dir / f"{f}.png") for f in part]
        preds = segment_images(model, images, input_size, threshold, flip_tta=flip_tta)
        parts.append(segmentation_scores(preds, trues, ids=part))
    scores = pd.concat(parts, ignore_index=True) if parts else segmentation_scores([], [])
    scores["plane"] = rows["plane"].to_numpy()
    scores["participant_id"] = rows["participant_id"].to_numpy()
    return scores


def frame_score(summary: pd.Series) -> float:
    """Mean per-frame score of a ``summarise_scores`` row: Dice on a frame showing a nerve, 1 for an
    empty-truth frame left empty and 0 for one where a nerve was predicted (a crop of no nerve)."""
    n = int(summary.n_nerve) + int(summary.n_true_empty)
    dice_sum = float(summary.dice_mean) * int(summary.n_nerve) if summary.n_nerve else 0.0
    return (dice_sum + int(summary.n_true_empty_pred_empty)) / n if n else float("nan")


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


def plot_usgra_worst(model, table: pd.DataFrame, input_size: int, threshold: float, *, root: str | Path,
                     subset: str = "test", n: int = 4, flip_tta: bool = False):
    """The ``n`` usgra-seg images of lowest Dice: true nerve (cyan), prediction (yellow), crop centre (red)."""
    import matplotlib.pyplot as plt


    worst = table.sort_values(["dice_largest", "id"]).head(n)
    image_paths, mask_paths = usgra_pairs(root, subset)
    by_name = {p.name: (p, m) for p, m in zip(image_paths, mask_paths)}
    fig, axes = plt.subplots(1, max(n, 1), figsize=(3.4 * max(n, 1), 3.6), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, row in zip(axes.ravel(), worst.itertuples(index=False)):
        image_path, mask_path = by_name[row.id]
        image, true = read_gray(image_path), read_mask(mask_path, USGRA_NERVE_LABEL)
        pred = segment_images(model, [image], input_size, threshold, flip_tta=flip_tta)[0]
        ax.imshow(image, cmap="gray", vmin=0, vmax=255)
        ax.contour(true > 0, levels=[0.5], colors="cyan", linewidths=0.8)
        if pred.any():
            ax.contour(pred > 0, levels=[0.5], colors="yellow", linewidths=0.8)
            ax.plot(*mask_centroid(pred), "r+", markersize=9)
        ax.set_title(f"{row.id}: Dice {row.dice_largest:.2f}", fontsize=9)
    fig.suptitle(f"Lowest Dice on usgra-seg {subset} images (cyan truth, yellow prediction). {USGRA_ATTRIBUTION}",
                 fontsize=7)
    fig.tight_layout()
    return fig


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
