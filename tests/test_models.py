"""The two published CNNs: layer sequence, output shape, parameter count from the layer formulas
(the fused training kernels are tested in test_speed.py)."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from ctslib.severity.models import build_model, longitudinal_model, transverse_model  # noqa: E402


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


def test_dropout_per_layer_and_zero_means_no_dropout_layer():
    model = transverse_model(32, dropout=[0.6, 0.6, 0.0])
    rates = {layer.name: layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)}
    assert rates == {"dropout1": 0.6, "dropout2": 0.6}
    assert transverse_model(32).count_params() == model.count_params()  # dropout has no weights
    with pytest.raises(ValueError):
        transverse_model(32, dropout=[0.6, 0.6])
    with pytest.raises(ValueError):
        longitudinal_model(32, dropout=1.0)
