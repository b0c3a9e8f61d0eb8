"""The segmenter's input: frames and masks at model size, and the seeded tf.data training pipeline.

Frames are downsampled to the model's square ``input_size`` for speed on a CPU; predictions are
upsampled back to the frame's resolution by ``ctslib.nerve.inference.postprocess``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from ctslib.common.errors import InputError
from ctslib.common.parallel import steady
from ctslib.data.images import read_gray, read_mask


def to_model_input(image: np.ndarray, input_size: int) -> np.ndarray:
    """Resize an 8-bit grayscale image to (input_size, input_size, 1) float32 in [0, 1].

    Non-square images are resized (not padded) to a square, as every frame of one data set
    is resized alike; ``ctslib.nerve.inference.postprocess`` resizes predictions back to the original shape.
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
