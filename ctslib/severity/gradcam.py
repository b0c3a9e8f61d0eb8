"""Grad-CAM saliency maps (Selvaraju et al. 2017) for the two severity CNNs.

Grad-CAM weights each channel of the last convolutional layer by the mean gradient of the class
score with respect to it, sums the weighted channels, keeps the positive part and upsamples the map
to the input size. It shows *where* in a crop the evidence for a grade lies, a sanity check that the
model looks at the nerve rather than at borders or speckle.

Works for Keras 3 functional and Sequential models: the last convolution is found automatically and
a sub-model from the inputs to [that layer's output, the predictions] is built once per model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from ctslib import GRADES
from ctslib.severity.inputs import read_crop_array
from ctslib.common.errors import InputError
from ctslib.common.seed import rng

CONV_TYPES = (keras.layers.Conv2D, keras.layers.SeparableConv2D, keras.layers.DepthwiseConv2D)


@dataclass(frozen=True)
class SaliencyExample:
    """One crop with its Grad-CAM map, for the figure."""

    model: str
    frame_id: str
    image: np.ndarray  # (H, W) in [0, 1]
    cam: np.ndarray  # (H, W) in [0, 1]
    y_true: int
    y_pred: int
    probability: float  # of the predicted grade


def last_conv_layer(model: keras.Model) -> str:
    """Name of the model's last 2-D convolution layer (Conv2D, SeparableConv2D or DepthwiseConv2D).

    Raises:
        ValueError: if the model has no convolution layer at its top level.
    """
    for layer in reversed(model.layers):
        if isinstance(layer, CONV_TYPES) and not isinstance(layer, keras.layers.Conv2DTranspose):
            return layer.name
    raise ValueError(f"model {model.name!r} has no Conv2D layer at its top level; pass layer_name explicitly")


def _logits_of(head: keras.layers.Layer, head_input):
    """Pre-softmax class scores of a Dense-softmax head (a linear copy of it), or None for other heads.

    Grad-CAM differentiates the class score before the softmax (Selvaraju et al.): the softmax
    probability of a confident model saturates at 1 and its gradient vanishes, blanking the map.
    """
    if not (isinstance(head, keras.layers.Dense) and head.activation is keras.activations.softmax):
        return None
    linear = keras.layers.Dense(head.units, activation=None, use_bias=head.use_bias, name=f"{head.name}_logits")
    logits = linear(head_input)
    linear.set_weights(head.get_weights())
    return logits


def gradcam_model(model: keras.Model, layer_name: str | None = None) -> keras.Model:
    """A model from the inputs to [``layer_name`` output, class scores, probabilities].

    ``layer_name`` defaults to the last convolution. Class scores are the pre-softmax logits when
    the model ends in a Dense softmax layer (both study models do), else the model's output.
    Sequential models are re-traced layer by layer on a fresh ``keras.Input`` (they may have no
    symbolic graph after loading); functional models reuse their graph.
    """
    name = layer_name or last_conv_layer(model)
    head = model.layers[-1]
    if isinstance(model, keras.Sequential):
        inputs = keras.Input(shape=model.input_shape[1:])
        x, target, head_input = inputs, None, None
        for layer in model.layers:
            head_input = x
            x = layer(x)
            if layer.name == name:
                target = x
        if target is None:
            raise ValueError(f"layer {name!r} not found in model {model.name!r}")
        outputs = x
    else:
        inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
        target, outputs = model.get_layer(name).output, model.outputs[0]
        head_input = head.input
    logits = _logits_of(head, head_input)
    scores = outputs if logits is None else logits
    return keras.Model(inputs, [target, scores, outputs], name=f"{model.name}_gradcam")


def gradcam(
    model: keras.Model,
    images: np.ndarray,
    class_index: int | Sequence[int] | None = None,
    *,
    layer_name: str | None = None,
    sub_model: keras.Model | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM maps of a batch of images.

    Args:
        model: a classifier with a softmax output.
        images: (N, H, W, C) float array, as the model takes it.
        class_index: grade to explain, one for all or one per image; default the predicted grade.
        layer_name: convolution layer to use; default the last one.
        sub_model: a ``gradcam_model`` built earlier (saves rebuilding it per call).

    Returns:
        (maps, probabilities): maps (N, H, W) in [0, 1], each divided by its maximum (an all-zero
        map stays zero: no positive evidence for the class), and the model's softmax outputs (N, K).
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4:
        raise ValueError(f"images must be (N, H, W, C), got shape {images.shape}")
    sub = sub_model or gradcam_model(model, layer_name)
    inputs = tf.convert_to_tensor(images)
    with tf.GradientTape() as tape:
        features, scores, probabilities = sub(inputs, training=False)
        if class_index is None:
            chosen = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        else:
            chosen = tf.broadcast_to(tf.constant(class_index, dtype=tf.int32), [images.shape[0]])
        score = tf.gather(scores, chosen, axis=1, batch_dims=1)
    gradients = tape.gradient(score, features)
    weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)  # channel importance
    cam = tf.nn.relu(tf.reduce_sum(weights * features, axis=-1))
    cam = tf.image.resize(cam[..., None], images.shape[1:3], method="bilinear")[..., 0].numpy()
    cam = np.maximum(cam, 0.0)  # bilinear resizing of a non-negative map stays non-negative; guard rounding
    peak = cam.reshape(len(cam), -1).max(axis=1)
    cam = np.divide(cam, peak[:, None, None], out=np.zeros_like(cam), where=peak[:, None, None] > 0)
    return cam.astype(np.float32), np.asarray(probabilities)


def pick_examples(predictions: pd.DataFrame, split: str, per_grade: int, seed: int, stream: str = "") -> pd.DataFrame:
    """Up to ``per_grade`` validation frames of each true grade of ``split``, chosen at random (seeded)."""
    rows = predictions[(predictions["split"] == split) & (predictions["subset"] == "val")]
    picked = []
    for grade in range(len(GRADES)):
        pool = rows[rows["y_true"] == grade].sort_values("frame_id")
        if len(pool) == 0:
            continue
        chosen = rng(seed, "gradcam", stream, grade).choice(len(pool), size=min(per_grade, len(pool)), replace=False)
        picked.append(pool.iloc[np.sort(chosen)])
    return pd.concat(picked, ignore_index=True) if picked else rows.iloc[:0]


def saliency_examples(
    model: keras.Model, name: str, examples: pd.DataFrame, crops: pd.DataFrame
) -> list[SaliencyExample]:
    """Grad-CAM of ``model`` (for its predicted grade) on the crops of the frames in ``examples``.

    Args:
        model: a trained severity CNN.
        name: the model's name in the figure (its plane).
        examples: rows of ``predictions.csv`` (``pick_examples``).
        crops: ``ctslib.severity.inputs.read_crops`` output of the same plane (absolute ``crop_file`` paths);
            images are read with ``ctslib.severity.inputs.read_crop_array``, the training pipeline's decoder.

    Raises:
        InputError: if an example frame has no crop in ``crops``.
    """
    if examples.empty:
        return []
    rows = examples[["frame_id", "y_true"]].merge(crops[["frame_id", "crop_file"]], on="frame_id", how="left")
    if rows["crop_file"].isna().any():
        missing = rows.loc[rows["crop_file"].isna(), "frame_id"].iloc[0]
        raise InputError(f"frame {missing} of the predictions has no crop in crops.csv", column="frame_id")
    images = read_crop_array(list(rows["crop_file"]), int(model.input_shape[1]))
    maps, probabilities = gradcam(model, images)
    predicted = probabilities.argmax(axis=1)
    return [
        SaliencyExample(name, fid, images[i, ..., 0], maps[i], int(t), int(predicted[i]),
                        float(probabilities[i, predicted[i]]))
        for i, (fid, t) in enumerate(zip(rows["frame_id"], rows["y_true"]))
    ]
