"""The paper's published recipe of both severity CNNs, as data: the one place its numbers are written.

``ctslib.severity.models`` builds the layers from it, the ``paper`` profile takes its training
budget from it (``recipe: paper``, ``ctslib.report.profiles``) and the report lists a run's
deviations against it (``ctslib.report.index.deviations``). No TensorFlow here, so ``run_all.py``
reads it without loading TensorFlow.

What the paper states: layer types, filter counts, 3x3 kernels, ReLU, BatchNormalization in the
transverse model only, ``he_normal`` for the transverse convolutions, dropout 0.6 after every hidden
dense layer, a 4-way softmax, Adam, 500 / 400 epochs at batch 30 / 20, and augmentation by "small"
rotations and horizontal flips. It gives no rotation limit; ours (``TrainSettings.rotation_deg``,
notebook parameter ``ROTATION_DEG``) is a run choice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

KERNEL_SIZE = 3
"""Side of every convolution kernel (the paper: 3x3)."""

DROPOUT = 0.6
"""The paper's dropout rate after every hidden dense layer of both models."""


@dataclass(frozen=True)
class PaperRecipe:
    """One plane's published model and training budget.

    Attributes:
        conv_filters: filters of each convolution, in order.
        dense_units: units of each hidden dense layer, in order (each followed by ``DROPOUT``).
        batch_norm: BatchNormalization after each convolution.
        kernel_initializer: the convolutions' initialiser as the paper names it; None where it names none.
        epochs: training epochs.
        batch_size: images per step.
    """

    conv_filters: tuple[int, ...]
    dense_units: tuple[int, ...]
    batch_norm: bool
    kernel_initializer: str | None
    epochs: int
    batch_size: int

    @property
    def dropout(self) -> list[float]:
        """The paper's dropout rate after each hidden dense layer."""
        return [DROPOUT] * len(self.dense_units)

    def parameters(self) -> dict[str, Any]:
        """The recipe as the model notebooks' parameters (``EPOCHS``, ``BATCH_SIZE``, ``DROPOUT``)."""
        return {"EPOCHS": self.epochs, "BATCH_SIZE": self.batch_size, "DROPOUT": self.dropout}


PAPER_RECIPE: dict[str, PaperRecipe] = {
    "transverse": PaperRecipe(conv_filters=(16, 32, 64), dense_units=(256, 72, 16), batch_norm=True,
                              kernel_initializer="he_normal", epochs=500, batch_size=30),
    "longitudinal": PaperRecipe(conv_filters=(16, 32), dense_units=(256,), batch_norm=False,
                                kernel_initializer=None, epochs=400, batch_size=20),
}
"""The paper's recipe of each plane's model."""
