"""The segmenter's model: a small Keras U-Net, its losses, compiling, training, saving and loading.

Loss = binary cross-entropy + soft Dice (Dice copes with the nerve being a few percent of the
image; BCE gives smooth early gradients), optionally plus a frame-level presence term
(``presence_nll``) or, for the shipped segmenter's training, a vessel output (``nerve_vessel_loss``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ctslib.common.errors import InputError
from ctslib.common.io import atomic_path
from ctslib.nerve.inputs import make_dataset


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
