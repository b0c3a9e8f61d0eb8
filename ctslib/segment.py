"""Nerve segmentation: a small Keras U-Net, its input pipeline, post-processing and metrics.

The segmenter only has to *find* the median nerve well enough to centre a crop on it and to
measure its area (CSA), so it is deliberately small: frames are downsampled to ``input_size``
(e.g. 96 or 128 of a 256 frame) for speed on a CPU, predictions are upsampled back to the
frame's full resolution, thresholded, and reduced to their largest connected component (one
median nerve per frame). Loss = binary cross-entropy + soft Dice (Dice copes with the nerve
being a few percent of the image; BCE gives smooth early gradients).

Evaluation splits are by participant (``participant_split``), never by frame: frames of one
wrist are near-duplicates and would leak across a frame split.

Also reads the public usgra-seg data set (real ultrasound, CC-BY 4.0) used as a real-data
check of the same code (``usgra_pairs``, ``USGRA_ATTRIBUTION``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from ctslib.data import steady
from ctslib.errors import InputError
from ctslib.io import atomic_path

USGRA_ATTRIBUTION = "usgra-seg dataset, T. M. Kandaouroff (github.com/tmkand/usgra-seg), CC-BY 4.0"
"""Attribution to print wherever results on the usgra-seg data are shown (CC-BY 4.0)."""

USGRA_NERVE_LABEL = 1
"""Label of the nerve in usgra-seg's palette masks (2 = blood vessel, ignored here)."""


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


def build_unet(input_size: int, *, depth: int = 3, base_filters: int = 16, seed: int = 0):
    """A small U-Net: ``depth`` down/up levels of two 3x3 Conv-BN-ReLU, filters doubling per level.

    Args:
        input_size: side of the square single-channel input; must be divisible by ``2**depth``.
        depth: number of pooling levels.
        base_filters: filters of the first level.
        seed: seeds the he_normal kernel initialisers.

    Returns:
        An uncompiled ``keras.Model`` mapping (s, s, 1) images to (s, s, 1) nerve probabilities.
    """
    import keras
    from keras import layers

    if input_size % (2**depth):
        raise ValueError(f"input_size {input_size} must be divisible by 2**depth = {2**depth}")
    counter = iter(range(10_000))

    def conv_block(x, filters):
        for _ in range(2):
            init = keras.initializers.HeNormal(seed=seed + next(counter))
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer=init)(x)
            x = layers.BatchNormalization(momentum=0.9)(x)  # short runs: moving stats settle fast
            x = layers.Activation("relu")(x)
        return x

    inputs = keras.Input((input_size, input_size, 1))
    x, skips = inputs, []
    for level in range(depth):
        x = conv_block(x, base_filters * 2**level)
        skips.append(x)
        x = layers.MaxPooling2D(2)(x)
    x = conv_block(x, base_filters * 2**depth)
    for level in reversed(range(depth)):
        init = keras.initializers.HeNormal(seed=seed + next(counter))
        x = layers.Conv2DTranspose(base_filters * 2**level, 2, strides=2, kernel_initializer=init)(x)
        x = layers.Concatenate()([x, skips[level]])
        x = conv_block(x, base_filters * 2**level)
    init = keras.initializers.GlorotUniform(seed=seed + next(counter))
    outputs = layers.Conv2D(1, 1, activation="sigmoid", kernel_initializer=init)(x)
    return keras.Model(inputs, outputs, name=f"unet_d{depth}_f{base_filters}")


def dice_bce_loss(y_true, y_pred, smooth: float = 1.0):
    """Binary cross-entropy + (1 - soft Dice), Dice computed per image then averaged."""
    import keras
    from keras import ops

    bce = ops.mean(keras.losses.binary_crossentropy(y_true, y_pred), axis=(1, 2))
    inter = ops.sum(y_true * y_pred, axis=(1, 2, 3))
    total = ops.sum(y_true, axis=(1, 2, 3)) + ops.sum(y_pred, axis=(1, 2, 3))
    soft_dice = (2.0 * inter + smooth) / (total + smooth)
    return bce + (1.0 - soft_dice)


def soft_dice_metric(y_true, y_pred):
    """Batch-mean Dice of the 0.5-thresholded prediction (a training-time monitor)."""
    from keras import ops

    y_hard = ops.cast(y_pred > 0.5, "float32")
    t_hard = ops.cast(y_true > 0.5, "float32")
    inter = ops.sum(t_hard * y_hard, axis=(1, 2, 3))
    total = ops.sum(t_hard, axis=(1, 2, 3)) + ops.sum(y_hard, axis=(1, 2, 3))
    return ops.mean((2.0 * inter + 1.0) / (total + 1.0))


soft_dice_metric.__name__ = "dice"


def compile_segmenter(model, learning_rate: float = 1e-3):
    """Compile ``model`` with Adam, Dice+BCE loss and a thresholded-Dice monitor."""
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=dice_bce_loss,
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
):
    """Train (or fine-tune, when ``model`` is given) a U-Net on model-sized arrays.

    Call ``ctslib.seed.set_determinism(seed)`` first for a repeatable run.

    Returns:
        ``(model, history)``; history is a DataFrame with one row per epoch (loss, dice, and
        val_loss/val_dice when ``validation`` is given).
    """
    if len(images) == 0:
        raise InputError("no training images with masks")
    if model is None:
        model = build_unet(images.shape[1], depth=depth, base_filters=base_filters, seed=seed)
    compile_segmenter(model, learning_rate)
    train_ds = make_dataset(images, targets, batch_size=batch_size, augment=augment, seed=seed)
    val_ds = None
    if validation is not None and len(validation[0]):
        val_ds = make_dataset(*validation, batch_size=batch_size, augment=False, seed=seed, shuffle=False)
    fit = model.fit(train_ds, validation_data=val_ds, epochs=epochs, verbose=verbose, shuffle=False)
    history = pd.DataFrame(fit.history)
    history.insert(0, "epoch", np.arange(1, len(history) + 1))
    return model, history


def predict_probabilities(model, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Nerve probabilities (N, s, s) for model-sized images (N, s, s, 1)."""
    if len(images) == 0:
        return np.zeros((0, *images.shape[1:3]), np.float32)
    return model.predict(images, batch_size=batch_size, verbose=0)[..., 0]


def save_segmenter(model, path: str | Path) -> Path:
    """Save the model atomically as a ``.keras`` file."""
    with atomic_path(path) as tmp:
        model.save(tmp)
    return Path(path)


def load_segmenter(path: str | Path):
    """Load a segmenter saved by ``save_segmenter`` (uncompiled: for prediction)."""
    import keras

    if not Path(path).exists():
        raise InputError("segmenter model not found; run notebook 03 first", file=path)
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
    """Dice = 2|P∩T| / (|P|+|T|) of two binary masks; 1.0 when both are empty."""
    p, t = pred > 0, true > 0
    total = int(p.sum() + t.sum())
    return 1.0 if total == 0 else 2.0 * int((p & t).sum()) / total


def iou_score(pred: np.ndarray, true: np.ndarray) -> float:
    """IoU (Jaccard) = |P∩T| / |P∪T| of two binary masks; 1.0 when both are empty."""
    p, t = pred > 0, true > 0
    union = int((p | t).sum())
    return 1.0 if union == 0 else int((p & t).sum()) / union


def segmentation_scores(
    preds: Sequence[np.ndarray], trues: Sequence[np.ndarray], ids: Sequence[str] | None = None
) -> pd.DataFrame:
    """Per-image Dice and IoU (columns id, dice, iou); ``summarise_scores`` gives the means."""
    if len(preds) != len(trues):
        raise ValueError(f"{len(preds)} predictions but {len(trues)} true masks")
    rows = []
    for i, (p, t) in enumerate(zip(preds, trues)):
        if p.shape != t.shape:
            raise ValueError(f"image {i}: predicted shape {p.shape} != true shape {t.shape}")
        rows.append({"id": ids[i] if ids is not None else i, "dice": dice_score(p, t), "iou": iou_score(p, t)})
    return pd.DataFrame(rows, columns=["id", "dice", "iou"])


def summarise_scores(scores: pd.DataFrame, by: str | None = None) -> pd.DataFrame:
    """Mean, SD and median of per-image Dice/IoU, per group of ``by`` and over all images.

    Counts images, and participants too when ``scores`` has a ``participant_id`` column. The
    last row (``by`` = "all") summarises every image.
    """
    groups = [*(scores.groupby(by) if by else []), ("all", scores)]
    rows = []
    for key, part in groups:
        rows.append(
            {
                (by or "set"): key,
                "n_images": len(part),
                **({"n_participants": part["participant_id"].nunique()} if "participant_id" in part else {}),
                "dice_mean": part["dice"].mean(),
                "dice_sd": part["dice"].std(ddof=1) if len(part) > 1 else float("nan"),
                "dice_median": part["dice"].median(),
                "iou_mean": part["iou"].mean(),
                "iou_median": part["iou"].median(),
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
    grouped = pd.Series(order).groupby(np.asarray(groups)[order])
    share = max_total / n
    keep: list[int] = []
    for _, positions in grouped:
        k = max(1, int(round(len(positions) * share)))
        picks = np.linspace(0, len(positions) - 1, k).round().astype(int)
        keep.extend(positions.to_numpy()[np.unique(picks)])
    keep_arr = np.asarray(keep, dtype=int)
    if len(keep_arr) > max_total:  # per-group rounding overshot: thin evenly across groups
        keep_arr = keep_arr[np.linspace(0, len(keep_arr) - 1, max_total).round().astype(int)]
    return np.sort(keep_arr)
