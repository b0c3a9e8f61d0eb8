"""Tests of ctslib.severity.gradcam: layer discovery, map shape / range / normalisation for both study
architectures (functional and Sequential), correctness on a model whose evidence is known, crops."""

from __future__ import annotations

import cv2
import keras
import numpy as np
import pandas as pd
import pytest

from ctslib.common.errors import InputError
from ctslib.severity.inputs import read_crops
from ctslib.severity.gradcam import gradcam, gradcam_model, last_conv_layer, pick_examples, saliency_examples

SIZE = 16


def transverse_like() -> keras.Model:
    """Functional model with the transverse layout: (Conv2D + BatchNorm + MaxPool) x 2, dense, softmax."""
    inputs = keras.Input((SIZE, SIZE, 1))
    x = inputs
    for i, filters in enumerate((4, 8), start=1):
        x = keras.layers.Conv2D(filters, 3, activation="relu", kernel_initializer="he_normal", name=f"conv{i}")(x)
        x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
        x = keras.layers.MaxPooling2D(name=f"pool{i}")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(8, activation="relu")(x)
    x = keras.layers.Dropout(0.6)(x)
    return keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(x), name="transverse_like")


def longitudinal_like() -> keras.Sequential:
    """Sequential model with the longitudinal layout: (Conv2D + MaxPool) x 2, dense, softmax."""
    return keras.Sequential([
        keras.Input((SIZE, SIZE, 1)),
        keras.layers.Conv2D(4, 3, activation="relu", name="c1"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(8, 3, activation="relu", name="c2"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(8, activation="relu"),
        keras.layers.Dropout(0.6),
        keras.layers.Dense(4, activation="softmax"),
    ], name="longitudinal_like")


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).random((5, SIZE, SIZE, 1)).astype(np.float32)


@pytest.mark.parametrize("build, conv", [(transverse_like, "conv2"), (longitudinal_like, "c2")])
def test_gradcam_shape_range_and_normalisation(build, conv, images, tmp_path):
    keras.utils.set_random_seed(1)
    model = build()
    assert last_conv_layer(model) == conv  # the last Conv2D, not the BatchNorm / pooling after it
    maps, probabilities = gradcam(model, images)
    assert maps.shape == (len(images), SIZE, SIZE)
    assert probabilities.shape == (len(images), 4)
    np.testing.assert_allclose(probabilities, model.predict(images, verbose=0), atol=1e-5)
    assert (maps >= 0).all() and (maps <= 1).all()
    peaks = maps.reshape(len(maps), -1).max(axis=1)
    assert (peaks > 0).any()
    np.testing.assert_allclose(peaks[peaks > 0], 1.0, atol=1e-6)  # each non-zero map peaks at exactly 1
    # a saved and reloaded model (as stage 04/05 hand it over) gives the same maps
    path = tmp_path / "model.keras"
    model.save(path)
    again, _ = gradcam(keras.models.load_model(path), images)
    np.testing.assert_allclose(again, maps, atol=1e-5)


def test_sub_model_outputs_conv_features_and_predictions(images):
    keras.utils.set_random_seed(2)
    model = longitudinal_like()
    sub = gradcam_model(model)
    features, logits, probabilities = sub(images, training=False)
    assert tuple(features.shape) == (len(images), 5, 5, 8)  # 16 -> conv 14 -> pool 7 -> conv 5
    np.testing.assert_allclose(np.asarray(probabilities), model.predict(images, verbose=0), atol=1e-5)
    # the class scores are the pre-softmax logits of the same head
    np.testing.assert_allclose(keras.ops.softmax(logits).numpy(), np.asarray(probabilities), atol=1e-5)


def test_saturated_softmax_still_gives_a_map():
    # a confident head (huge weights): the softmax gradient underflows, the logit gradient does not
    inputs = keras.Input((8, 8, 1))
    features = keras.layers.Conv2D(2, 3, padding="same", activation="relu", kernel_initializer="ones")(inputs)
    dense = keras.layers.Dense(2, activation="softmax")
    model = keras.Model(inputs, dense(keras.layers.Flatten()(features)))
    dense.set_weights([np.full((128, 2), [500.0, -500.0], np.float32), np.zeros(2, np.float32)])
    image = np.zeros((1, 8, 8, 1), np.float32)
    image[0, 3:5, 3:5, 0] = 1.0
    maps, probabilities = gradcam(model, image)
    assert probabilities[0, 0] == 1.0  # saturated in float32
    assert maps.max() == pytest.approx(1.0) and maps[0, 0, 0] < maps[0, 4, 4]


def test_gradcam_highlights_where_the_evidence_is():
    # feature map = the image (1x1 conv with weight 1); class 0 grows with its mean, class 1 shrinks:
    # Grad-CAM of class 0 must be the image itself, rescaled to peak 1; of class 1 all zero.
    inputs = keras.Input((8, 8, 1))
    features = keras.layers.Conv2D(1, 1, use_bias=False, kernel_initializer="ones", name="identity")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    dense = keras.layers.Dense(2, activation="softmax", use_bias=False)
    model = keras.Model(inputs, dense(pooled))
    dense.set_weights([np.array([[1.0, -1.0]], dtype=np.float32)])
    image = np.zeros((1, 8, 8, 1), np.float32)
    image[0, 2:4, 5:7, 0] = 0.8
    image[0, 6, 1, 0] = 0.4
    for_class0, _ = gradcam(model, image, class_index=0)
    np.testing.assert_allclose(for_class0[0], image[0, ..., 0] / 0.8, atol=1e-5)
    for_class1, _ = gradcam(model, image, class_index=1)
    assert np.all(for_class1 == 0)


def test_model_without_convolution_is_refused():
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(4)])
    with pytest.raises(ValueError, match="no Conv2D"):
        last_conv_layer(model)


def test_examples_and_crops(tmp_path):
    work = tmp_path / "work"
    crops_dir = work / "03_nerve_cropping" / "crops"
    crops_dir.mkdir(parents=True)
    frames = [f"P{i:02d}_L_transverse_0000" for i in range(8)]
    grades = [0, 0, 0, 1, 1, 2, 3, 3]
    for i, frame in enumerate(frames):
        cv2.imwrite(str(crops_dir / f"{frame}.png"), np.full((24, 24), 30 * i, np.uint8))
    pd.DataFrame({
        "frame_id": frames, "wrist_id": [f[:5] for f in frames], "participant_id": [f[:3] for f in frames],
        "plane": "transverse", "grade_index": grades, "nerve_found": True,
        "crop_path": [f"03_nerve_cropping/crops/{f}.png" for f in frames],  # relative to the work folder
    }).to_csv(work / "03_nerve_cropping" / "crops.csv", index=False)
    crops = read_crops(work / "03_nerve_cropping" / "crops.csv", "transverse")
    predictions = pd.DataFrame({"frame_id": frames, "split": "grouped", "subset": ["val"] * 7 + ["train"],
                                "y_true": grades})
    picked = pick_examples(predictions, "grouped", per_grade=2, seed=4)
    assert picked.groupby("y_true").size().to_dict() == {0: 2, 1: 2, 2: 1, 3: 1}  # the train frame is never used
    pd.testing.assert_frame_equal(picked, pick_examples(predictions, "grouped", per_grade=2, seed=4))
    keras.utils.set_random_seed(3)
    examples = saliency_examples(transverse_like(), "transverse", picked, crops)
    assert [e.frame_id for e in examples] == picked["frame_id"].tolist()
    first = examples[0]
    assert first.cam.shape == first.image.shape == (SIZE, SIZE)
    value = frames.index(first.frame_id) * 30 / 255  # constant crop, resized 24 -> 16
    assert first.image.mean() == pytest.approx(value, abs=1e-3)
    assert 0 <= first.y_pred < 4 and 0 < first.probability <= 1
    with pytest.raises(InputError, match="no crop"):
        saliency_examples(transverse_like(), "transverse", picked, crops.iloc[:0])
