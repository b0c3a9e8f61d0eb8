"""Training path: crops -> tf.data (augmentation on training only) -> fit -> hand-off files.

Small learnable crops (``ctslib.severity.inputs.write_toy_crops``: ellipse size grows with grade) in tmp_path.
"""

from __future__ import annotations

import zipfile

import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from ctslib.severity.inputs import make_dataset, read_crop_array, read_crops, rotate_images, write_toy_crops  # noqa: E402
from ctslib.common.errors import InputError, StageError  # noqa: E402
from ctslib.common.paths import RunPaths  # noqa: E402
from ctslib.common.handoff import PREDICTION_COLUMNS  # noqa: E402
from ctslib.common.seed import set_determinism  # noqa: E402
from ctslib.severity.split import make_splits  # noqa: E402
from ctslib.severity.speed import FastPath  # noqa: E402
from ctslib.severity.tasks import train_plane  # noqa: E402
from ctslib.severity.train import (  # noqa: E402
    HISTORY_COLUMNS,
    KeepBest,
    TrainSettings,
    train_split,
    training_curves_figure,
)

SIZE = 32


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A learnable crop set: 4 grades x 4 participants x 8 frames, 32 x 32 px."""
    work = tmp_path_factory.mktemp("work")
    csv = write_toy_crops(work, plane="longitudinal", participants_per_grade=4, frames_per_wrist=8,
                          crop_size=SIZE, seed=3)
    set_determinism(2026)
    return work, read_crops(csv, "longitudinal")


def settings(**kw) -> TrainSettings:
    base = dict(plane="longitudinal", input_size=SIZE, epochs=1, batch_size=20, verbose=0)
    return TrainSettings(**{**base, **kw})


# --------------------------------------------------------------------------- data
def test_read_crops_drops_frames_without_a_nerve_and_names_missing_files(tmp_path):
    csv = write_toy_crops(tmp_path, plane="transverse", participants_per_grade=1, frames_per_wrist=3, crop_size=16)
    table = pd.read_csv(csv)
    table.loc[0, ["nerve_found", "crop_path"]] = [False, ""]
    table.to_csv(csv, index=False)
    frames = read_crops(csv, "transverse")
    assert len(frames) == len(table) - 1 and table.loc[0, "frame_id"] not in set(frames["frame_id"])
    assert read_crops(csv, "longitudinal").empty
    table.loc[2, "crop_path"] = "03_nerve_cropping/crops/missing.png"
    table.to_csv(csv, index=False)
    with pytest.raises(InputError) as err:
        read_crops(csv, "transverse")
    assert err.value.row == 3 and err.value.column == "crop_path"


def test_validation_pipeline_keeps_pixels_and_order(toy):
    _, frames = toy
    rows = frames.iloc[:7]
    batches = list(make_dataset(rows["crop_file"], rows["grade_index"], input_size=SIZE, batch_size=4,
                                training=False, seed=0, rotation_deg=30, horizontal_flip=True))
    images = np.concatenate([b[0].numpy() for b in batches])
    labels = np.concatenate([b[1].numpy() for b in batches])
    np.testing.assert_array_equal(images, read_crop_array(rows["crop_file"], SIZE))  # no augmentation
    np.testing.assert_array_equal(labels.argmax(1), rows["grade_index"].to_numpy())
    assert images.min() >= 0.0 and images.max() <= 1.0 and images.dtype == np.float32


def test_training_pipeline_flips_and_reshuffles_each_epoch(toy):
    _, frames = toy
    rows = frames.iloc[:12]
    originals = read_crop_array(rows["crop_file"], SIZE)
    ds = make_dataset(rows["crop_file"], rows["grade_index"], input_size=SIZE, batch_size=12,
                      training=True, seed=5, rotation_deg=0.0, horizontal_flip=True)
    epochs = [next(iter(ds))[0].numpy() for _ in range(2)]
    flipped_any = False
    for batch in epochs:
        for image in batch:  # every training image is an original or its mirror image
            same = [np.array_equal(image, o) for o in originals]
            mirror = [np.array_equal(image, o[:, ::-1]) for o in originals]
            assert any(same) or any(mirror)
            flipped_any |= any(mirror) and not any(same)
    assert flipped_any
    assert not np.array_equal(epochs[0], epochs[1])  # new order / new flips every epoch
    assert ds.options().autotune.enabled is False  # fixed parallelism (see ctslib.severity.inputs)


def test_rotation_keeps_shape_and_rotates_about_the_centre():
    image = np.zeros((1, 21, 21, 1), np.float32)
    image[0, 10, 15, 0] = 1.0  # a dot 5 px right of the centre
    quarter = rotate_images(image, np.array([np.pi / 2]))
    assert quarter.shape == image.shape
    row, col = np.unravel_index(np.argmax(quarter[0, :, :, 0]), (21, 21))
    assert (col, abs(row - 10)) == (10, 5)  # moved onto the vertical through the centre
    np.testing.assert_allclose(rotate_images(image, np.array([0.0])), image)


# --------------------------------------------------------------------------- training
def test_training_reduces_the_loss(toy):
    _, frames = toy
    table = make_splits(frames, seed=1, policies=("paper",))
    result = train_split(frames, table, "paper", settings(epochs=8, learning_rate=1e-3), seed=1)
    loss = result.history["loss"].to_numpy()
    assert loss[-1] < 0.7 * loss[0]
    assert result.history["accuracy"].iloc[-1] > 0.5  # chance is 0.25
    assert result.summary["n_train"] == 96 and result.summary["n_val"] == 32


def test_same_seed_same_split_and_same_first_epoch_loss(toy):
    _, frames = toy
    runs = []
    for seed in (7, 7, 8):
        table = make_splits(frames, seed=seed, policies=("grouped",))
        result = train_split(frames, table, "grouped", settings(), seed=seed)
        runs.append((table, result.history.loc[0, "loss"]))
    pd.testing.assert_frame_equal(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]  # bit-identical on CPU with op determinism
    assert runs[0][1] != runs[2][1]


def test_steps_per_execution_changes_speed_not_results(toy):
    _, frames = toy
    table = make_splits(frames, seed=4, policies=("paper",))
    histories = [train_split(frames, table, "paper", settings(epochs=2, fast=FastPath(steps_per_execution=spe)), seed=4).history
                 for spe in (1, 3)]  # 96 training frames = 5 batches: 3 + a partial execution of 2
    pd.testing.assert_frame_equal(histories[0], histories[1], check_exact=True)


def test_training_set_without_a_grade_is_refused(toy):
    _, frames = toy
    table = make_splits(frames, seed=0, policies=("paper",))
    table.loc[table["grade_index"] == 2, "subset"] = "val"
    with pytest.raises(StageError, match="moderate"):
        train_split(frames, table, "paper", settings(), seed=0)


def test_train_plane_writes_the_hand_off_files(toy, tmp_path):
    work, frames = toy
    paths = RunPaths(tmp_path / "work", tmp_path / "report")
    table = make_splits(frames, seed=2, cv_folds=2)
    summary = train_plane(frames, table, settings(epochs=1), seed=2, paths=paths)
    assert list(summary["split"]) == ["paper", "grouped", "cv0", "cv1"]

    history = pd.read_csv(paths.history_csv("longitudinal"))
    assert list(history.columns) == list(HISTORY_COLUMNS) and len(history) == 4
    written = pd.read_csv(paths.predictions_csv("longitudinal"))
    assert list(written.columns) == list(PREDICTION_COLUMNS)
    # every frame of every split once, on its own side: validation rows and (inference-mode) training rows
    assert set(zip(written["split"], written["frame_id"], written["subset"])) == set(
        zip(table["split"], table["frame_id"], table["subset"])) and len(written) == len(table)
    train_rows = written[written["subset"] == "train"]
    for row in summary.to_dict("records"):
        part = train_rows[train_rows["split"] == row["split"]]
        assert row["train_eval_accuracy"] == pytest.approx((part["y_true"] == part["y_pred"]).mean())
    preds = written[written["subset"] == "val"]
    np.testing.assert_allclose(preds[["p_normal", "p_mild", "p_moderate", "p_severe"]].sum(axis=1), 1.0, atol=1e-4)
    pd.testing.assert_frame_equal(pd.read_csv(paths.split_csv("longitudinal")), table.reset_index(drop=True),
                                  check_dtype=False)

    # the saved last model reproduces the written predictions and needs no ctslib class to load
    model = keras.models.load_model(paths.model_file("longitudinal", "grouped", "last"), compile=False)
    rows = preds[preds["split"] == "grouped"]
    files = frames.set_index("frame_id").loc[rows["frame_id"], "crop_file"]
    probs = model.predict(read_crop_array(files, SIZE), verbose=0)
    np.testing.assert_allclose(probs[:, 3], rows["p_severe"], atol=1e-4)
    assert paths.model_file("longitudinal", "cv1", "best").exists()
    with zipfile.ZipFile(paths.model_file("longitudinal", "grouped", "last")) as saved:
        config = saved.read("config.json").decode()
    assert "ctslib" not in config and '"class_name": "Adam"' in config  # stock Keras classes only

    fig = training_curves_figure(history[history["split"] == "paper"], title="Figure", subtitle="synthetic data")
    assert len(fig.axes) == 2 and fig._suptitle.get_text() == "Figure\nsynthetic data"
    fig.canvas.draw()
    assert all(float(t).is_integer() for t in fig.axes[0].get_xticks())  # one epoch: no 0.5-epoch ticks


def test_transverse_model_trains_on_the_same_path(tmp_path):
    csv = write_toy_crops(tmp_path, plane="transverse", participants_per_grade=2, frames_per_wrist=6, crop_size=SIZE)
    frames = read_crops(csv, "transverse")
    table = make_splits(frames, seed=0, policies=("paper",))
    result = train_split(frames, table, "paper",
                         TrainSettings("transverse", SIZE, epochs=6, batch_size=30, verbose=0), seed=0)
    assert np.isfinite(result.history[["loss", "val_loss"]].to_numpy()).all()
    assert result.history["loss"].iloc[-2:].mean() < result.history["loss"].iloc[0]
    assert [type(layer).__name__ for layer in result.last_model.layers].count("BatchNormalization") == 3


def test_extra_seeds_are_named_replicates_and_differ_only_by_seed(toy, tmp_path):
    work, frames = toy
    paths = RunPaths(tmp_path / "work", tmp_path / "report")
    table = make_splits(frames, seed=2, policies=("grouped",))
    summary = train_plane(frames, table, settings(epochs=1), seed=5, paths=paths, seeds=2)
    assert list(summary["split"]) == ["grouped", "grouped~s1"] and list(summary["seed"]) == [5, 6]
    preds = pd.read_csv(paths.predictions_csv("longitudinal"))
    first, second = (preds[preds["split"] == s].reset_index(drop=True) for s in ("grouped", "grouped~s1"))
    assert list(first["frame_id"]) == list(second["frame_id"])  # same frames ...
    assert not np.allclose(first["p_severe"], second["p_severe"])  # ... another initialisation
    assert paths.model_file("longitudinal", "grouped~s1", "last").exists()


def test_epoch_log_prints_every_n_epochs_and_the_last(toy, capsys):
    _, frames = toy
    table = make_splits(frames, seed=2, policies=("paper",))
    train_split(frames, table, "paper", settings(epochs=5, verbose=1, log_every=2), seed=0)
    lines = [line for line in capsys.readouterr().out.splitlines() if "epoch " in line and "/5:" in line]
    assert [line.split("epoch ")[1].split("/")[0] for line in lines] == ["1", "2", "4", "5"]


def test_keep_best_keeps_the_weights_of_the_best_epoch_by_its_monitor():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    keep = KeepBest("val_accuracy")
    keep.set_model(model)
    for epoch, accuracy in enumerate([0.5, 0.7, 0.6]):
        model.set_weights([np.full((2, 1), epoch, np.float32), np.zeros(1, np.float32)])
        keep.on_epoch_end(epoch, {"val_accuracy": accuracy, "val_loss": 1.0 - epoch})
    assert keep.best_epoch == 2 and keep.best_value == 0.7 and keep.best_weights[0][0, 0] == 1
    with pytest.raises(ValueError, match="monitor"):
        KeepBest("loss")
