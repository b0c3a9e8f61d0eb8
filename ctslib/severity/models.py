"""The two published severity CNNs (transverse and longitudinal), built exactly as the paper lists them.

The paper's numbers (filters, dense units, kernel size, BatchNormalization, the transverse model's
``he_normal`` initialiser, dropout) come from ``ctslib.severity.recipe``. The paper is silent on the
rest; our choices below are Keras defaults (what code that does not mention them gets), each a parameter:

* ``padding="valid"`` for every convolution (Keras default);
* ``pool_size=2`` for every max-pooling layer (Keras default, stride = pool size);
* input size = the nerve-crop size of stage 03 (``input_size``), one grayscale channel in [0, 1];
* longitudinal ``kernel_initializer="glorot_uniform"`` (Keras default; the paper names ``he_normal``
  only for the transverse model);
* dense layers use the Keras default initialiser in both models (the paper names an initialiser only
  for the transverse convolutions);
* BatchNormalization follows the ReLU of each transverse convolution and precedes its pooling, the
  order the paper lists ("conv + BN + max-pool").

Nothing here is about speed: ``ctslib.severity.speed`` trains a copy of these models on faster kernels
(same layers and maths) and hands back stock Keras layers for saving.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from ctslib import GRADES
from ctslib.severity.recipe import DROPOUT, KERNEL_SIZE, PAPER_RECIPE, PaperRecipe

N_CLASSES = len(GRADES)
KERAS_INITIALIZER = "glorot_uniform"
"""Keras' default convolution initialiser: ours where the paper names none."""


def dropout_rates(dropout: float | Sequence[float], n_layers: int) -> list[float]:
    """One dropout rate per hidden dense layer from a single rate or a per-layer list."""
    rates = [float(dropout)] * n_layers if isinstance(dropout, (int, float)) else [float(r) for r in dropout]
    if len(rates) != n_layers or not all(0.0 <= r < 1.0 for r in rates):
        raise ValueError(f"dropout must be one rate or {n_layers} rates in [0, 1), got {dropout!r}")
    return rates


def _input(input_size: int) -> keras.Input:
    if int(input_size) < 8:
        raise ValueError(f"input_size must be at least 8 pixels, got {input_size}")
    return keras.Input(shape=(int(input_size), int(input_size), 1), name="crop")


def conv_classifier(
    input_size: int,
    *,
    conv_filters: Sequence[int],
    dense_units: Sequence[int],
    batch_norm: bool,
    kernel_initializer: str,
    padding: str = "valid",
    pool_size: int = 2,
    kernel_size: int = KERNEL_SIZE,
    dropout: float | Sequence[float] = DROPOUT,
    name: str = "cnn",
) -> keras.Model:
    """A plain conv -> [BN] -> max-pool stack, Flatten, dense + dropout blocks and a 4-way softmax.

    Both published models are instances of this one pattern; ``transverse_model`` and
    ``longitudinal_model`` fix the paper's numbers. ``dropout`` is one rate for every hidden dense
    layer or one rate per layer (0 = no dropout layer).
    """
    rates = dropout_rates(dropout, len(dense_units))
    inputs = _input(input_size)
    x = inputs
    for i, filters in enumerate(conv_filters, start=1):
        x = layers.Conv2D(
            filters, kernel_size, activation="relu", padding=padding,
            kernel_initializer=kernel_initializer, name=f"conv{i}",
        )(x)
        if batch_norm:
            x = layers.BatchNormalization(name=f"bn{i}")(x)
        x = layers.MaxPooling2D(pool_size, name=f"pool{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    for i, (units, rate) in enumerate(zip(dense_units, rates), start=1):
        x = layers.Dense(units, activation="relu", name=f"dense{i}")(x)
        if rate > 0:
            x = layers.Dropout(rate, name=f"dropout{i}")(x)
    outputs = layers.Dense(N_CLASSES, activation="softmax", name="grade")(x)
    return keras.Model(inputs, outputs, name=name)


def recipe_model(input_size: int, recipe: PaperRecipe, *, padding: str, pool_size: int, kernel_initializer: str,
                 dropout: float | Sequence[float], name: str) -> keras.Model:
    """``conv_classifier`` with a published ``recipe``'s layers."""
    return conv_classifier(
        input_size, conv_filters=recipe.conv_filters, dense_units=recipe.dense_units, batch_norm=recipe.batch_norm,
        kernel_initializer=kernel_initializer, padding=padding, pool_size=pool_size, dropout=dropout, name=name,
    )


def transverse_model(
    input_size: int,
    *,
    padding: str = "valid",
    pool_size: int = 2,
    kernel_initializer: str = PAPER_RECIPE["transverse"].kernel_initializer or KERAS_INITIALIZER,
    dropout: float | Sequence[float] = DROPOUT,
) -> keras.Model:
    """The paper's transverse-plane CNN (``PAPER_RECIPE["transverse"]``).

    Three convolutions (ReLU, ``he_normal``), each followed by BatchNormalization and max-pooling;
    Flatten; three hidden dense layers (ReLU), each followed by dropout; Dense 4 softmax.

    Args:
        input_size: side of the square grayscale crop (pixels); input shape is (size, size, 1).
        padding: convolution padding; the paper is silent, Keras default "valid".
        pool_size: max-pooling window and stride; the paper is silent, Keras default 2.
        kernel_initializer: convolution initialiser; the paper's by default.
        dropout: rate after each hidden dense layer (one number, or one per layer); the paper's by default.
    """
    return recipe_model(input_size, PAPER_RECIPE["transverse"], padding=padding, pool_size=pool_size,
                        kernel_initializer=kernel_initializer, dropout=dropout, name="transverse_cnn")


def longitudinal_model(
    input_size: int,
    *,
    padding: str = "valid",
    pool_size: int = 2,
    kernel_initializer: str = PAPER_RECIPE["longitudinal"].kernel_initializer or KERAS_INITIALIZER,
    dropout: float | Sequence[float] = DROPOUT,
) -> keras.Model:
    """The paper's longitudinal-plane CNN (``PAPER_RECIPE["longitudinal"]``).

    Two convolutions (ReLU), each followed by max-pooling; Flatten; one hidden dense layer (ReLU) +
    dropout; Dense 4 softmax. No BatchNormalization (the paper lists none for this model).

    Args:
        input_size: side of the square grayscale crop (pixels); input shape is (size, size, 1).
        padding: convolution padding; the paper is silent, Keras default "valid".
        pool_size: max-pooling window and stride; the paper is silent, Keras default 2.
        kernel_initializer: convolution initialiser; the paper is silent for this model, so the
            Keras default "glorot_uniform" (set "he_normal" to match the transverse model).
        dropout: rate after the hidden dense layer; the paper's by default.
    """
    return recipe_model(input_size, PAPER_RECIPE["longitudinal"], padding=padding, pool_size=pool_size,
                        kernel_initializer=kernel_initializer, dropout=dropout, name="longitudinal_cnn")


def parameter_count(model: keras.Model) -> int:
    """Number of weights (trainable and BatchNormalization moving statistics)."""
    return int(model.count_params())


MODEL_BUILDERS = {"transverse": transverse_model, "longitudinal": longitudinal_model}
"""Plane -> model builder; the notebooks pick the builder by plane, never duplicate the layers."""


def build_model(plane: str, input_size: int, **options) -> keras.Model:
    """The published model of ``plane`` ("transverse" or "longitudinal") for ``input_size`` crops."""
    if plane not in MODEL_BUILDERS:
        raise ValueError(f"plane must be one of {sorted(MODEL_BUILDERS)}, got {plane!r}")
    return MODEL_BUILDERS[plane](input_size, **options)
