"""The speed switch (ctslib.severity.speed): fused kernels compute the paper's maths, one switch turns them on or off,
and what is saved is stock Keras either way."""

from __future__ import annotations

import zipfile

import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from ctslib.severity.inputs import read_crops, write_toy_crops  # noqa: E402
from ctslib.severity.models import transverse_model  # noqa: E402
from ctslib.common.seed import set_determinism  # noqa: E402
from ctslib.severity.speed import (  # noqa: E402
    FastPath,
    FusedAdam,
    FusedBatchNormalization,
    accelerate,
    fast_path,
    stock_layers,
    with_batch_norm,
)
from ctslib.severity.split import make_splits  # noqa: E402
from ctslib.severity.train import TrainSettings, compile_model, train_split  # noqa: E402


def layer_types(model) -> list[str]:
    return [type(layer).__name__ for layer in model.layers]


# --------------------------------------------------------------------------- the switch
def test_one_switch_stands_for_the_tricks():
    assert TrainSettings("transverse", 32, 1, 8).fast == FastPath()
    assert TrainSettings("transverse", 32, 1, 8, fast=False).fast is None
    chosen = FastPath(fused_optimizer=False, steps_per_execution=3)
    assert TrainSettings("transverse", 32, 1, 8, fast=chosen).fast is chosen
    with pytest.raises(TypeError):
        fast_path("yes")
    with pytest.raises(ValueError, match="precision"):
        FastPath(precision="float16")


def test_accelerate_swaps_kernels_and_keeps_weights_loss_and_learning_rate():
    keras.utils.set_random_seed(0)
    model = transverse_model(32)
    settings = TrainSettings("transverse", 32, 1, 8, learning_rate=3e-4, fast=False)
    plain = compile_model(model, settings)
    assert plain is model and type(plain.optimizer) is keras.optimizers.Adam and "Fused" not in str(layer_types(plain))

    fast = accelerate(plain, FastPath())
    assert fast is not plain and layer_types(fast).count("FusedBatchNormalization") == 3
    assert type(fast.optimizer) is FusedAdam and fast.optimizer.learning_rate.numpy() == pytest.approx(3e-4)
    assert fast.steps_per_execution == 10 and fast.loss == "categorical_crossentropy"
    for a, b in zip(fast.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert layer_types(stock_layers(fast)) == layer_types(model)

    only_steps = accelerate(compile_model(transverse_model(32), settings),
                            FastPath(fused_batch_norm=False, fused_optimizer=False, steps_per_execution=4))
    assert type(only_steps.optimizer) is keras.optimizers.Adam and only_steps.steps_per_execution == 4
    assert "FusedBatchNormalization" not in layer_types(only_steps)


def test_fast_and_stock_training_agree_and_both_save_stock_keras(tmp_path):
    csv = write_toy_crops(tmp_path, plane="transverse", participants_per_grade=2, frames_per_wrist=6, crop_size=32)
    frames = read_crops(csv, "transverse")
    table = make_splits(frames, seed=0, policies=("paper",))
    set_determinism(0)
    # no dropout: the fast path trains a copy of the model, whose dropout layers draw other masks
    runs = {fast: train_split(frames, table, "paper", TrainSettings("transverse", 32, epochs=3, batch_size=16, verbose=0,
                                                                    model_options={"dropout": 0.0}, fast=fast), seed=0)
            for fast in (True, False)}
    pd.testing.assert_frame_equal(runs[True].history, runs[False].history, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(runs[True].predictions["p_severe"], runs[False].predictions["p_severe"], atol=1e-3)
    for fast, result in runs.items():
        path = tmp_path / f"fast_{fast}.keras"
        result.last_model.save(path)
        with zipfile.ZipFile(path) as saved:
            config = saved.read("config.json").decode()
        assert "ctslib" not in config and '"class_name": "Adam"' in config, fast


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


# --------------------------------------------------------------------------- fused Adam
def _adam_run(optimizer, steps: int = 6):
    """Weights and moments after ``steps`` updates of a fixed two-tensor problem with varying gradients."""
    rng = np.random.default_rng(0)
    weights = [keras.Variable(rng.normal(size=(7, 5)).astype("float32")), keras.Variable(np.zeros(5, "float32"))]
    gradients = [[rng.normal(scale=s, size=w.shape).astype("float32") for w in weights] for s in np.geomspace(1, 1e-4, steps)]
    step = tf.function(lambda g: optimizer.apply_gradients(zip(g, weights)))
    for g in gradients:
        step(g)
    return [w.numpy() for w in weights] + [v.numpy() for v in optimizer.variables]


@pytest.mark.parametrize("options", [{}, {"learning_rate": 0.05, "beta_1": 0.5, "beta_2": 0.9, "epsilon": 1e-3}])
def test_fused_adam_matches_keras_adam(options):
    fused, stock = _adam_run(FusedAdam(**options)), _adam_run(keras.optimizers.Adam(**options))
    assert len(fused) == len(stock) >= 2 + 4  # weights, then the optimiser's (step, rate, m and v per weight)
    for a, b in zip(fused, stock):
        np.testing.assert_allclose(a, b, rtol=2e-6, atol=1e-7)
    assert not np.allclose(stock[0], _adam_run(keras.optimizers.Adam(**{**options, "epsilon": 0.1}))[0])


def test_fused_adam_runs_the_fused_kernel_and_falls_back_for_amsgrad():
    def op_types(optimizer):
        w = keras.Variable(np.ones((3, 2), "float32"))
        graph = tf.function(lambda g: optimizer.apply_gradients([(g, w)])).get_concrete_function(
            tf.TensorSpec((3, 2), tf.float32)).graph
        return {op.type for op in graph.get_operations()}

    assert "ResourceApplyAdam" in op_types(FusedAdam())
    assert "ResourceApplyAdam" not in op_types(keras.optimizers.Adam())
    assert "ResourceApplyAdam" not in op_types(FusedAdam(amsgrad=True))
    for a, b in zip(_adam_run(FusedAdam(amsgrad=True)), _adam_run(keras.optimizers.Adam(amsgrad=True))):
        np.testing.assert_array_equal(a, b)


