"""Training the published CNNs on every split: compile, fit, keep best and last, predict, write.

The recipe is the paper's: Adam, categorical cross-entropy, accuracy, a fixed number of epochs,
batch 30 (transverse) / 20 (longitudinal), augmentation by small rotations and horizontal flips
on the training set only. What the paper leaves open, and our choice:

* **Best model** = the epoch with the lowest *validation loss* (``monitor="val_loss"``; smoother
  than accuracy on a few hundred validation frames, and Keras' ModelCheckpoint default). Both it
  and the last epoch are saved. Choosing an epoch on the validation set that is also the test set
  is optimistic, so the predictions written for evaluation come from the **last** model by
  default (``predict_with``): the epoch count is then the only choice, fixed in advance.
* **Learning rate**: Keras' Adam default 1e-3 unless set.

Speed is not part of the recipe: with ``TrainSettings(fast=True)`` (notebook parameter
``FAST_PATH``, the default) ``ctslib.severity.speed`` runs the same model and maths on TensorFlow's fused
kernels and hands back stock Keras layers for saving; ``fast=False`` is plain Keras throughout.
Every split (and seed replicate) is one independent training, run one after the other here or
as Ray tasks side by side (``ctslib.severity.tasks.train_plane``, notebook parameter ``WORKERS``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd

from ctslib import GRADES
from ctslib.severity.inputs import make_dataset
from ctslib.common.errors import StageError
from ctslib.common.handoff import PROB_COLUMNS
from ctslib.common.io import atomic_path
from ctslib.severity.models import build_model
from ctslib.severity.speed import FastPath, accelerate, fast_path, stock_layers
from ctslib.severity.split import check_split

HISTORY_COLUMNS: tuple[str, ...] = ("split", "epoch", "loss", "accuracy", "val_loss", "val_accuracy")
MONITORS = {"val_loss": "min", "val_accuracy": "max"}


@dataclass(frozen=True)
class TrainSettings:
    """Everything that decides how one plane's model is trained (the notebook's parameters).

    Attributes:
        plane: "transverse" or "longitudinal" (picks the published architecture).
        input_size: side of the square model input (the crop size of stage 03).
        epochs: training epochs (the paper: 500 transverse, 400 longitudinal).
        batch_size: images per step (the paper: 30 transverse, 20 longitudinal).
        learning_rate: Adam learning rate.
        rotation_deg: largest random rotation (degrees) of a training crop; 0 = none.
        horizontal_flip: randomly mirror training crops left-right.
        monitor: "val_loss" (lowest) or "val_accuracy" (highest) picks the "best" epoch.
        predict_with: "last" or "best": which model writes the validation predictions.
        fast: the speed switch (``ctslib.severity.speed``): True = fused kernels and ten steps per call (same
            maths), False = stock Keras, or a ``FastPath`` naming the tricks; stored as a
            ``FastPath`` or None (off).
        verbose: 0 = silent; otherwise a header line and one log line every ``log_every`` epochs.
        log_every: epochs between log lines (the first and last epoch are always logged).
        model_options: extra arguments of the model builder (padding, pool_size, kernel_initializer).
    """

    plane: str
    input_size: int
    epochs: int
    batch_size: int
    learning_rate: float = 1e-3
    rotation_deg: float = 10.0
    horizontal_flip: bool = True
    monitor: str = "val_loss"
    predict_with: str = "last"
    fast: bool | FastPath | None = True
    verbose: int = 1
    log_every: int = 10
    model_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.monitor not in MONITORS:
            raise ValueError(f"monitor must be one of {sorted(MONITORS)}, got {self.monitor!r}")
        if self.predict_with not in ("best", "last"):
            raise ValueError(f"predict_with must be 'best' or 'last', got {self.predict_with!r}")
        if self.log_every < 1:
            raise ValueError(f"log_every must be >= 1, got {self.log_every}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {self.epochs}, {self.batch_size}")
        object.__setattr__(self, "fast", fast_path(self.fast))


@dataclass
class SplitResult:
    """What training on one split produced."""

    split: str
    history: pd.DataFrame
    predictions: pd.DataFrame
    best_model: Any
    last_model: Any
    summary: dict[str, Any]


# ----------------------------------------------------------------------------- the recipe
def new_model(settings: TrainSettings, seed: int):
    """The plane's published model, freshly initialised from ``seed``."""
    keras.utils.set_random_seed(seed)
    return build_model(settings.plane, settings.input_size, **settings.model_options)


def compile_model(model, settings: TrainSettings):
    """Compile with the paper's optimiser and loss: Adam + categorical cross-entropy (+ accuracy).

    With ``settings.fast`` the result is ``ctslib.severity.speed.accelerate``'s copy: same weights and
    maths on faster kernels. XLA stays off unless the fast path asks for it.
    """
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=settings.learning_rate),
                  loss="categorical_crossentropy", metrics=["accuracy"], jit_compile=False)
    return accelerate(model, settings.fast) if settings.fast else model


def stock_copy(model, settings: TrainSettings):
    """A copy of a trained model (same weights) in stock Keras layers, compiled with the plain recipe.

    This is what is saved: the ``.keras`` files load with plain Keras, no ctslib class needed.
    """
    return compile_model(stock_layers(model), replace(settings, fast=False))


# ----------------------------------------------------------------------------- callbacks
class EpochClock(keras.callbacks.Callback):
    """Wall and process-CPU seconds of every epoch, and of its training part (before validation)."""

    def __init__(self) -> None:
        super().__init__()
        self.epoch_s: list[float] = []
        self.train_s: list[float] = []
        self.train_cpu_s: list[float] = []
        self._start: float | None = None
        self._cpu = 0.0
        self._train_end: float | None = None
        self._train_cpu_end: float | None = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self._cpu = time.perf_counter(), time.process_time()
        self._train_end = self._train_cpu_end = None

    def on_test_begin(self, logs=None):
        if self._start is not None and self._train_end is None:
            self._train_end, self._train_cpu_end = time.perf_counter(), time.process_time()

    def on_epoch_end(self, epoch, logs=None):
        end, cpu = time.perf_counter(), time.process_time()
        self.epoch_s.append(end - self._start)
        self.train_s.append((self._train_end or end) - self._start)
        self.train_cpu_s.append((self._train_cpu_end or cpu) - self._cpu)
        self._start = None


class KeepBest(keras.callbacks.Callback):
    """Weights of the best epoch by ``monitor`` (kept in memory; saved once at the end)."""

    def __init__(self, monitor: str = "val_loss") -> None:
        super().__init__()
        if monitor not in MONITORS:
            raise ValueError(f"monitor must be one of {sorted(MONITORS)}, got {monitor!r}")
        self.monitor, self.mode = monitor, MONITORS[monitor]
        self.best_value = np.inf if self.mode == "min" else -np.inf
        self.best_epoch = 0
        self.best_weights = None

    def on_epoch_end(self, epoch, logs=None):
        value = float((logs or {}).get(self.monitor, np.nan))
        better = value < self.best_value if self.mode == "min" else value > self.best_value
        if np.isfinite(value) and (better or self.best_weights is None):
            self.best_value, self.best_epoch = value, epoch + 1
            self.best_weights = self.model.get_weights()


class EpochLog(keras.callbacks.Callback):
    """One line every ``every`` epochs (and the first and last): a readable log instead of one per epoch."""

    def __init__(self, every: int, epochs: int, prefix: str = "", echo=print) -> None:
        super().__init__()
        self.every, self.epochs, self.prefix, self.echo = every, epochs, prefix, echo
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        n = epoch + 1
        if n == 1 or n == self.epochs or n % self.every == 0:
            logs = logs or {}
            values = " ".join(f"{k} {logs[k]:.3f}" for k in HISTORY_COLUMNS[2:] if k in logs)
            self.echo(f"{self.prefix}epoch {n}/{self.epochs}: {values} ({time.perf_counter() - self._start:.0f} s)")


# ----------------------------------------------------------------------------- one split
def split_frames(frames: pd.DataFrame, split_table: pd.DataFrame, split: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The training and validation rows of ``frames`` (with ``crop_file``) for one split."""
    rows = split_table[split_table["split"] == split]
    subset = frames[["frame_id"]].merge(rows[["frame_id", "subset"]], on="frame_id", how="left")["subset"]
    if subset.isna().any():
        raise StageError(f"split '{split}' does not assign frame {frames['frame_id'][subset.isna()].iloc[0]}")
    return frames[subset.to_numpy() == "train"], frames[subset.to_numpy() == "val"]


def predict_frames(model, rows: pd.DataFrame, settings: TrainSettings, split: str, subset: str = "val") -> pd.DataFrame:
    """Class probabilities of ``rows`` in the predictions.csv layout (file order kept)."""
    ds = make_dataset(rows["crop_file"], rows["grade_index"], input_size=settings.input_size,
                      batch_size=max(settings.batch_size, 64), training=False, seed=0)
    probs = model.predict(ds, verbose=0) if len(rows) else np.zeros((0, len(GRADES)), np.float32)
    out = rows[["frame_id", "wrist_id", "participant_id"]].reset_index(drop=True).copy()
    out.insert(3, "split", split)
    out.insert(4, "subset", subset)
    out["y_true"] = rows["grade_index"].to_numpy().astype(int)
    out["y_pred"] = probs.argmax(axis=1).astype(int)
    for i, column in enumerate(PROB_COLUMNS):
        out[column] = probs[:, i]
    return out


def train_split(frames: pd.DataFrame, split_table: pd.DataFrame, split: str, settings: TrainSettings,
                seed: int) -> SplitResult:
    """Train a fresh model on one split's training frames; validate every epoch on its validation frames.

    The result's predictions hold the validation frames (``subset`` "val") and, from the same model in
    inference mode, the training frames (``subset`` "train").

    Args:
        frames: one plane's crops (``ctslib.severity.inputs.read_crops``: frame ids, grade_index, crop_file).
        split_table: ``split.csv`` rows (``ctslib.severity.split.make_splits``).
        split: which split to train ("paper", "grouped", "cv0", ...).
        settings: the training recipe.
        seed: seeds the initial weights, the shuffle order and the augmentation.

    Raises:
        StageError: the training set lacks a grade.
    """
    train_rows, val_rows = split_frames(frames, split_table, split)
    check_split(split_table[split_table["split"] == split])
    keras.utils.set_random_seed(seed)  # before the datasets: their shuffle/augment seeds derive from it
    train_ds = make_dataset(train_rows["crop_file"], train_rows["grade_index"], input_size=settings.input_size,
                            batch_size=settings.batch_size, training=True, seed=seed,
                            rotation_deg=settings.rotation_deg, horizontal_flip=settings.horizontal_flip)
    val_ds = make_dataset(val_rows["crop_file"], val_rows["grade_index"], input_size=settings.input_size,
                          batch_size=max(settings.batch_size, 64), training=False, seed=seed)
    model = compile_model(new_model(settings, seed), settings)
    clock, keep = EpochClock(), KeepBest(settings.monitor)
    if settings.verbose:
        print(f"[{settings.plane} / {split}] {len(train_rows)} training, {len(val_rows)} validation frames, "
              f"{settings.epochs} epochs, batch {settings.batch_size}", flush=True)
    callbacks = [clock, keep]
    if settings.verbose:
        callbacks.append(EpochLog(settings.log_every, settings.epochs, f"  [{split}] ",
                                  echo=lambda line: print(line, flush=True)))
    fit = model.fit(train_ds, validation_data=val_ds, epochs=settings.epochs, callbacks=callbacks,
                    verbose=0, shuffle=False)  # the dataset reshuffles itself (seeded)
    history = pd.DataFrame(fit.history)
    history.insert(0, "epoch", np.arange(1, len(history) + 1))
    history.insert(0, "split", split)
    history = history.reindex(columns=list(HISTORY_COLUMNS))

    last_model, best_model = stock_copy(model, settings), stock_copy(model, settings)
    best_model.set_weights(keep.best_weights)
    predictor = best_model if settings.predict_with == "best" else last_model
    predictions = predict_frames(predictor, val_rows, settings, split)
    # The same model on its own training frames, in inference mode (no dropout, no augmentation): the
    # fair "training accuracy" for the sanity flags (Keras' running one is taken with dropout on).
    train_predictions = predict_frames(predictor, train_rows, settings, split, subset="train")

    steady = clock.train_s[1:] or clock.train_s  # the first epoch also traces the graph
    summary = {
        "split": split, "n_train": len(train_rows), "n_val": len(val_rows),
        "train_participants": train_rows["participant_id"].nunique(),
        "val_participants": val_rows["participant_id"].nunique(),
        "epochs": settings.epochs, "best_epoch": keep.best_epoch,
        "best_val_loss": float(history["val_loss"].iloc[keep.best_epoch - 1]),
        "best_val_accuracy": float(history["val_accuracy"].iloc[keep.best_epoch - 1]),
        "final_val_accuracy": float(history["val_accuracy"].iloc[-1]),
        "final_train_accuracy": float(history["accuracy"].iloc[-1]),
        "prediction_accuracy": float((predictions["y_true"] == predictions["y_pred"]).mean()) if len(predictions) else np.nan,
        "train_eval_accuracy": float((train_predictions["y_true"] == train_predictions["y_pred"]).mean()),
        "predict_with": settings.predict_with,
        "seconds_total": float(sum(clock.epoch_s)),
        "seconds_per_epoch": float(np.mean(clock.epoch_s[1:] or clock.epoch_s)),
        "first_epoch_seconds": float(clock.epoch_s[0]),
        "train_images_per_second": float(len(train_rows) * len(steady) / max(sum(steady), 1e-9)),
        # CPU seconds of this process per steady training epoch: comparable across runs on a busy machine
        "train_cpu_seconds_per_epoch": float(np.mean(clock.train_cpu_s[1:] or clock.train_cpu_s)),
    }
    predictions = pd.concat([predictions, train_predictions], ignore_index=True)
    return SplitResult(split, history, predictions, best_model, last_model, summary)


# ----------------------------------------------------------------------------- one plane
def save_model(model, path: str | Path) -> Path:
    """Save a Keras model (or a worker's ``ctslib.severity.tasks.KerasFile``) atomically as ``.keras``."""
    with atomic_path(path) as tmp:
        model.save(tmp)
    return Path(path)


# ----------------------------------------------------------------------------- figures
def training_curves_figure(history: pd.DataFrame, title: str | None = None, subtitle: str | None = None):
    """Training and validation accuracy (left) and loss (right) per epoch: the paper's Figures 2-3.

    One split: its two lines. Several splits (CV folds): the mean over the folds per epoch with a
    band from the lowest to the highest fold, because ten overlaid pairs of lines cannot be told
    apart. Epoch ticks are whole numbers; ``subtitle`` (e.g. "synthetic data") goes under the title.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    splits = list(dict.fromkeys(history["split"]))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, metric in ((axes[0], "accuracy"), (axes[1], "loss")):
        for column, name, colour, style in ((metric, "training", colors[0], "-"), (f"val_{metric}", "validation",
                                                                                    colors[1], "--")):
            if len(splits) == 1:
                ax.plot(history["epoch"], history[column], color=colour, lw=1.5, ls=style, label=name)
                continue
            band = history.groupby("epoch")[column].agg(["mean", "min", "max"]).reset_index()
            ax.fill_between(band["epoch"], band["min"], band["max"], color=colour, alpha=0.2, lw=0)
            ax.plot(band["epoch"], band["mean"], color=colour, lw=1.8, ls=style,
                    label=f"{name}: mean of {len(splits)} folds (band: lowest to highest fold)")
    axes[0].set(xlabel="epoch", ylabel="accuracy", title="Model accuracy", ylim=(0, 1.02))
    axes[1].set(xlabel="epoch", ylabel="loss (categorical cross-entropy)", title="Model loss")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    if title or subtitle:
        fig.suptitle("\n".join(t for t in (title, subtitle) if t))
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- reporting
def tensorflow_device() -> str:
    """The device TensorFlow trains on, e.g. "CPU" or "GPU: NVIDIA H200" (for the manifest)."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU"
    names = [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus]
    return "GPU: " + ", ".join(names)


def training_sentence(summary: pd.DataFrame) -> str:
    """What the training table shows, per split, from its recorded numbers."""
    parts, gaps = [], {}
    for row in summary.to_dict("records"):
        gap = row["train_eval_accuracy"] - row["prediction_accuracy"]
        gaps[row["split"]] = gap
        parts.append(f"{row['split']}: validation accuracy {row['prediction_accuracy']:.3f} on {row['val_participants']} "
                     f"participants, training accuracy {row['train_eval_accuracy']:.3f} (gap {gap:+.3f})")
    text = "; ".join(parts) + "."
    if "paper" in gaps and "grouped" in gaps:
        if gaps["grouped"] - gaps["paper"] > 0.1:
            text += (" The grouped split's gap is larger than the frame split's: on new participants the model does "
                     "worse than on wrists it has seen, which the paper's frame split hides (leakage).")
        else:
            text += " The gaps are similar on both splits: no sign here that the frame split flatters the model."
    return text


def curves_sentence(history: pd.DataFrame, ratio: float = 1.5) -> str:
    """What the loss curves show at the last epoch, per split (seed replicates left out)."""
    last = history[~history["split"].str.contains("~", regex=False)].groupby("split", sort=False).last()
    parts = []
    for split, row in last.iterrows():
        verdict = ("validation loss well above training loss: what it learned carries over poorly"
                   if row["val_loss"] > ratio * row["loss"] else "validation loss close to training loss")
        parts.append(f"{split}: training loss {row['loss']:.3f}, validation loss {row['val_loss']:.3f} ({verdict})")
    return "After the last epoch, " + "; ".join(parts) + "."
