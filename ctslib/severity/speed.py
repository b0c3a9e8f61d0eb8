"""Training speed: the published model and maths, run on TensorFlow's faster kernels (one switch).

``ctslib.severity.train`` holds the paper's recipe as written (Adam, categorical cross-entropy, a fixed
number of epochs, keep best and last). ``TrainSettings(fast=...)`` (notebook parameter
``FAST_PATH``) decides whether that recipe runs through this module:

* ``fast=True`` (the default): every trick below, as measured best on a 2-core CPU;
* ``fast=False``: stock Keras throughout (the reference; slower, agrees to float32 rounding);
* ``fast=FastPath(...)``: a chosen subset (``benchmarks/bench_train.py --ablations`` times each).

What the tricks are (``benchmarks/bench_train.py`` measures each):

* **fused BatchNormalization**: training runs a copy of the model whose BatchNormalization layers
  are ``FusedBatchNormalization``: the same layer (same weights, same maths: batch statistics in
  training, moving averages with the same momentum and epsilon at inference) computed by
  TensorFlow's fused kernel, as tf.keras 2 did by default;
* **fused Adam**: ``FusedAdam`` applies Keras' Adam formula with TensorFlow's fused kernel, one
  pass over memory instead of about ten (it matters most for the longitudinal model, whose dense
  weights make the update a third of a step);
* ``steps_per_execution=10``: Keras runs ten training steps per call into the compiled function
  (bit-identical results, less Python per step);
* ``precision="mixed_bfloat16"`` (off): faster on CPUs with bfloat16 units, changes rounding;
* ``jit_compile`` (XLA, off): on a 2-core CPU it ran these models 2-2.5x slower, and Keras turns
  it off under op determinism anyway.

What is saved never depends on the switch: ``stock_layers`` turns the trained copy back into stock
Keras layers, so every ``.keras`` file loads with plain Keras, no ctslib class needed. The data
pipeline's speed (decode once and cache, fixed tf.data parallelism) lives in ``ctslib.severity.inputs``:
it changes no number, so it is not switched.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers

PRECISIONS: tuple[str, ...] = ("float32", "mixed_bfloat16")


@dataclass(frozen=True)
class FastPath:
    """Which speed tricks training uses (the defaults are ``fast=True``).

    Attributes:
        fused_batch_norm: train with ``FusedBatchNormalization`` (same maths, faster).
        fused_optimizer: update weights with ``FusedAdam`` (Keras' Adam formula, one fused kernel).
        steps_per_execution: training steps per call into the compiled function (results unchanged).
        jit_compile: XLA-compile the train step (slower on CPU for these models).
        precision: "float32" (the paper's Keras default) or "mixed_bfloat16" (bfloat16 compute,
            float32 weights; rounding differs; saved models are float32).
    """

    fused_batch_norm: bool = True
    fused_optimizer: bool = True
    steps_per_execution: int = 10
    jit_compile: bool = False
    precision: str = "float32"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.steps_per_execution < 1:
            raise ValueError(f"steps_per_execution must be >= 1, got {self.steps_per_execution}")


def fast_path(fast: bool | FastPath | None) -> FastPath | None:
    """The tricks a ``fast`` switch stands for: True -> ``FastPath()``, False/None -> None (stock Keras)."""
    if isinstance(fast, FastPath) or fast is None:
        return fast
    if isinstance(fast, bool):
        return FastPath() if fast else None
    raise TypeError(f"fast must be True, False or a FastPath, got {fast!r}")


# ----------------------------------------------------------------------------- kernels
@keras.saving.register_keras_serializable(package="ctslib")
class FusedAdam(keras.optimizers.Adam):
    """``keras.optimizers.Adam`` whose update runs as TensorFlow's fused ``ResourceApplyAdam`` kernel.

    Keras 3 writes the update as separate tensor ops (about ten passes over each weight tensor and
    its two moment tensors); the kernel computes the same formula, ``m += (g - m)(1 - beta_1)``,
    ``v += (g^2 - v)(1 - beta_2)``, ``w -= alpha m / (sqrt(v) + epsilon)`` with
    ``alpha = lr sqrt(1 - beta_2^t) / (1 - beta_1^t)``, in one pass. Results agree with the stock
    optimiser to float32 rounding (the kernel forms ``1 - beta`` in float32). Configuration, state
    variables and everything the base class does around the update (clipping, weight decay,
    schedules, loss scaling) are unchanged. Falls back to the stock update where the kernel does
    not apply: AMSGrad, sparse gradients, distribution strategies, backends other than TensorFlow.
    """

    def _fusable(self, gradient, variable) -> bool:
        import tensorflow as tf

        return (
            keras.backend.backend() == "tensorflow" and not self.amsgrad and not tf.distribute.has_strategy()
            and not isinstance(gradient, tf.IndexedSlices) and hasattr(variable, "handle")
            and keras.backend.standardize_dtype(variable.dtype) in ("float16", "bfloat16", "float32", "float64")
        )

    def update_step(self, gradient, variable, learning_rate):
        if not self._fusable(gradient, variable):
            return super().update_step(gradient, variable, learning_rate)
        import tensorflow as tf

        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=self._momentums[index].handle, v=self._velocities[index].handle,
            beta1_power=tf.pow(beta_1, step), beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, dtype), beta1=beta_1, beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype), grad=tf.cast(gradient, dtype),
        )


@keras.saving.register_keras_serializable(package="ctslib")
class FusedBatchNormalization(layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` whose training pass uses TensorFlow's fused kernel.

    Identical parameters, config and inference; in training the batch mean/variance normalise the
    batch and update the moving statistics exactly as the stock layer does (the fused kernel's
    Bessel-corrected variance is converted back to the biased one the stock layer uses). Falls
    back to the stock computation where the fused kernel does not apply (masks, renorm,
    synchronized statistics, a channel axis other than the last, non-float32 inputs, non-TF backend).
    """

    def _fusable(self, inputs, mask) -> bool:
        return (
            keras.backend.backend() == "tensorflow" and mask is None and not self.renorm
            and not self.synchronized and len(inputs.shape) == 4 and self.axis in (-1, 3)
            and keras.backend.standardize_dtype(inputs.dtype) in ("float32", "bfloat16") and self.scale and self.center
        )

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable) or not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, self.gamma, self.beta, epsilon=self.epsilon, data_format="NHWC", is_training=True,
        )
        n = tf.cast(tf.size(inputs) // tf.shape(inputs)[-1], variance.dtype)
        variance = variance * (n - 1.0) / tf.maximum(n, 2.0)  # kernel returns the unbiased variance
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return outputs


# ----------------------------------------------------------------------------- models
def with_batch_norm(model: keras.Model, *, fused: bool, precision: str = "float32") -> keras.Model:
    """A copy of ``model`` (same weights) whose BatchNormalization layers are fused or stock Keras.

    Args:
        model: a functional model (``ctslib.severity.models``).
        fused: use ``FusedBatchNormalization`` (training) or the stock layer (saving, inference).
        precision: "float32" (every layer) or "mixed_bfloat16" (bfloat16 compute with float32
            weights, softmax output kept in float32): a training-speed option that changes rounding,
            not the architecture or the weights' type.
    """
    target = FusedBatchNormalization if fused else layers.BatchNormalization
    output_name = model.layers[-1].name

    def clone(layer):
        cls = target if isinstance(layer, layers.BatchNormalization) else layer.__class__
        config = layer.get_config()
        if not isinstance(layer, layers.InputLayer):
            config["dtype"] = "float32" if layer.name == output_name else precision
        return cls.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def stock_layers(model: keras.Model) -> keras.Model:
    """A copy of ``model`` (same weights) in stock Keras layers and float32: what gets saved."""
    return with_batch_norm(model, fused=False)


def accelerate(model: keras.Model, fast: FastPath) -> keras.Model:
    """The compiled ``model`` made fast: same weights, loss and metrics; ``fast``'s layers, optimiser and steps.

    Returns a recompiled copy when layers change (fused BatchNormalization, bfloat16), else
    ``model`` itself recompiled. The optimiser keeps its configuration (``FusedAdam`` is Adam).
    """
    config = keras.saving.deserialize_keras_object(model.get_compile_config())
    optimizer = model.optimizer
    if fast.fused_optimizer and type(optimizer) is keras.optimizers.Adam:
        optimizer = FusedAdam.from_config(optimizer.get_config())
    if fast.fused_batch_norm or fast.precision != "float32":
        model = with_batch_norm(model, fused=fast.fused_batch_norm, precision=fast.precision)
    model.compile(**{**config, "optimizer": optimizer, "jit_compile": fast.jit_compile,
                     "steps_per_execution": fast.steps_per_execution})
    return model
