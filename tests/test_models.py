"""The two published CNNs: layer sequence, output shape, parameter count from the layer formulas,
and the fused BatchNormalization used for training (same maths, stock layers in saved files)."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from ctslib.models import (  # noqa: E402
    FusedBatchNormalization,
    build_model,
    longitudinal_model,
    transverse_model,
    with_batch_norm,
)


# --------------------------------------------------------------------------- expected counts
def conv_params(c_in: int, c_out: int, k: int = 3) -> int:
    return (k * k * c_in + 1) * c_out


def dense_params(n_in: int, n_out: int) -> int:
    return (n_in + 1) * n_out


def after_block(size: int, padding: str = "valid", pool: int = 2) -> int:
    """Side after one 3x3 conv (valid or same padding) and one max-pool (floor)."""
    conv = size - 2 if padding == "valid" else size
    return conv // pool


def expected_transverse(size: int, padding: str = "valid") -> int:
    filters, total, c_in, side = (16, 32, 64), 0, 1, size
    for f in filters:
        total += conv_params(c_in, f) + 4 * f  # BN: gamma, beta, moving mean, moving variance
        c_in, side = f, after_block(side, padding)
    n = side * side * c_in
    for units in (256, 72, 16, 4):
        total += dense_params(n, units)
        n = units
    return total


def expected_longitudinal(size: int, padding: str = "valid") -> int:
    total, c_in, side = 0, 1, size
    for f in (16, 32):
        total += conv_params(c_in, f)
        c_in, side = f, after_block(side, padding)
    n = side * side * c_in
    return total + dense_params(n, 256) + dense_params(256, 4)


def layer_types(model) -> list[str]:
    return [type(layer).__name__ for layer in model.layers]


# --------------------------------------------------------------------------- architecture
def test_transverse_layer_sequence_and_settings():
    model = transverse_model(64)
    assert layer_types(model) == [
        "InputLayer",
        "Conv2D", "BatchNormalization", "MaxPooling2D",
        "Conv2D", "BatchNormalization", "MaxPooling2D",
        "Conv2D", "BatchNormalization", "MaxPooling2D",
        "Flatten",
        "Dense", "Dropout", "Dense", "Dropout", "Dense", "Dropout",
        "Dense",
    ]
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [16, 32, 64]
    assert all(c.kernel_size == (3, 3) and c.activation.__name__ == "relu" for c in convs)
    assert all(type(c.kernel_initializer).__name__ == "HeNormal" for c in convs)
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [d.units for d in dense] == [256, 72, 16, 4]
    assert [d.activation.__name__ for d in dense] == ["relu", "relu", "relu", "softmax"]
    assert all(d.rate == 0.6 for d in model.layers if isinstance(d, keras.layers.Dropout))


def test_longitudinal_layer_sequence_and_settings():
    model = longitudinal_model(64)
    assert layer_types(model) == [
        "InputLayer", "Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Flatten",
        "Dense", "Dropout", "Dense",
    ]
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [16, 32]
    assert all(type(c.kernel_initializer).__name__ == "GlorotUniform" for c in convs)  # paper silent: Keras default
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [(d.units, d.activation.__name__) for d in dense] == [(256, "relu"), (4, "softmax")]


@pytest.mark.parametrize("plane", ["transverse", "longitudinal"])
@pytest.mark.parametrize("size", [50, 64, 128])
def test_output_shape_and_exact_parameter_count(plane, size):
    model = build_model(plane, size)
    assert model.input_shape == (None, size, size, 1)
    assert model.output_shape == (None, 4)
    expected = expected_transverse(size) if plane == "transverse" else expected_longitudinal(size)
    assert model.count_params() == expected


@pytest.mark.parametrize("plane", ["transverse", "longitudinal"])
def test_same_padding_option_changes_the_count_as_the_formula_says(plane):
    model = build_model(plane, 64, padding="same")
    expected = expected_transverse(64, "same") if plane == "transverse" else expected_longitudinal(64, "same")
    assert model.count_params() == expected


def test_outputs_are_probabilities():
    x = np.random.default_rng(0).random((3, 40, 40, 1), dtype=np.float32)
    for plane in ("transverse", "longitudinal"):
        probs = np.asarray(build_model(plane, 40)(x, training=False))
        assert probs.shape == (3, 4)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_unknown_plane_and_tiny_input_refused():
    with pytest.raises(ValueError, match="plane"):
        build_model("sagittal", 64)
    with pytest.raises(ValueError, match="input_size"):
        build_model("transverse", 4)


# --------------------------------------------------------------------------- fused batch norm
def test_fused_batch_norm_matches_stock_layer_in_training_and_inference():
    x = (np.random.default_rng(1).random((6, 12, 12, 5), dtype=np.float32) * 3 + 1)
    stock, fused = keras.layers.BatchNormalization(), FusedBatchNormalization()
    stock.build(x.shape)
    fused.build(x.shape)
    weights = [w + 0.1 * (i + 1) for i, w in enumerate(stock.get_weights())]
    stock.set_weights(weights)
    fused.set_weights(weights)
    with tf.GradientTape(persistent=True) as tape:
        y_stock, y_fused = stock(x, training=True), fused(x, training=True)
        loss_stock, loss_fused = tf.reduce_sum(y_stock ** 3), tf.reduce_sum(y_fused ** 3)
    np.testing.assert_allclose(np.asarray(y_fused), np.asarray(y_stock), atol=1e-4)
    for g_f, g_s in zip(tape.gradient(loss_fused, fused.trainable_variables),
                        tape.gradient(loss_stock, stock.trainable_variables)):
        np.testing.assert_allclose(np.asarray(g_f), np.asarray(g_s), rtol=1e-4, atol=1e-2)
    # moving statistics moved away from their initial values, identically
    assert not np.allclose(stock.moving_mean.numpy(), weights[2])
    np.testing.assert_allclose(fused.moving_mean.numpy(), stock.moving_mean.numpy(), rtol=1e-5)
    np.testing.assert_allclose(fused.moving_variance.numpy(), stock.moving_variance.numpy(), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(fused(x)), np.asarray(stock(x)), atol=1e-5)


def test_with_batch_norm_round_trip_keeps_weights_and_saves_stock_layers(tmp_path):
    model = transverse_model(40)
    fused = with_batch_norm(model, fused=True)
    assert layer_types(fused).count("FusedBatchNormalization") == 3
    back = with_batch_norm(fused, fused=False)
    assert "FusedBatchNormalization" not in layer_types(back)
    for a, b in zip(model.get_weights(), back.get_weights()):
        np.testing.assert_array_equal(a, b)
    path = tmp_path / "m.keras"
    back.save(path)
    with zipfile.ZipFile(path) as archive:
        config = archive.read("config.json").decode()
    assert '"BatchNormalization"' in config and "ctslib" not in config  # no custom class needed to load
    loaded = keras.models.load_model(path, compile=False)
    x = np.random.default_rng(2).random((2, 40, 40, 1), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), rtol=1e-5, atol=1e-6)


def test_dropout_per_layer_and_zero_means_no_dropout_layer():
    model = transverse_model(32, dropout=[0.6, 0.6, 0.0])
    rates = {layer.name: layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)}
    assert rates == {"dropout1": 0.6, "dropout2": 0.6}
    assert transverse_model(32).count_params() == model.count_params()  # dropout has no weights
    with pytest.raises(ValueError):
        transverse_model(32, dropout=[0.6, 0.6])
    with pytest.raises(ValueError):
        longitudinal_model(32, dropout=1.0)
