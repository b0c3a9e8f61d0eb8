"""Tests of ctslib.nerve.pretrained: the validation split, a tiny deterministic training, the shipped weights."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from ctslib.common.errors import InputError
from ctslib.common.paths import USGRA_SEG_DIR
from ctslib.data.usgra import USGRA_ATTRIBUTION
from ctslib.nerve import pretrained
from ctslib.nerve.augment import AugmentConfig
from ctslib.nerve.realcheck import confidence_on_and_off, usgra_check, usgra_summary

from conftest import requires_usgra


def test_usgra_validation_split_takes_whole_blocks_of_neighbouring_images():
    paths = [Path(f"{n:04d}.png") for n in range(0, 244) if n % 6]  # 203 "train" images, gaps like usgra's
    train, val = pretrained.usgra_val_split(paths, fraction=0.15, block=8, seed=2026)
    assert len(set(train) | set(val)) == len(paths) and not set(train) & set(val)
    assert 0.15 <= len(val) / len(paths) < 0.15 + 8 / len(paths)
    blocks = lambda idx: {int(paths[i].stem) // 8 for i in idx}  # noqa: E731
    assert not blocks(train) & blocks(val)  # no block is split between the two
    again = pretrained.usgra_val_split(paths, fraction=0.15, block=8, seed=2026)
    np.testing.assert_array_equal(val, again[1])
    other = pretrained.usgra_val_split(paths, fraction=0.15, block=8, seed=1)
    assert not np.array_equal(val, other[1])


def fake_usgra(root: Path, n_train: int = 10, n_test: int = 3) -> Path:
    """A usgra-seg-shaped folder of bright ellipses on speckle (palette masks: 1 nerve, 2 vessel)."""
    from PIL import Image

    gen = np.random.default_rng(0)
    for sub, n, start in (("dataset", n_train, 0), ("dataset/test", n_test, 100)):
        (root / sub / "images").mkdir(parents=True)
        (root / sub / "masks").mkdir(parents=True)
        for k in range(n):
            labels = np.zeros((70, 80), np.uint8)
            cv2.ellipse(labels, tuple(int(v) for v in gen.integers(20, 50, 2)), (9, 6), 0, 0, 360, 1, -1)
            cv2.circle(labels, (65, 60), 4, 2, -1)
            image = gen.integers(0, 70, labels.shape).astype(np.uint8)
            image[labels == 1] = 220
            cv2.imwrite(str(root / sub / "images" / f"{start + k:04d}.png"), image)
            Image.fromarray(labels, mode="P").save(root / sub / "masks" / f"{start + k:04d}.png")
    return root


TINY = pretrained.Recipe(
    input_size=32, depth=2, base_filters=4, max_filters=8, epochs=2, batch_size=4, warmup_epochs=1,
    real_repeats=1, synth_per_epoch=4, source_side=48, val_block=3, val_fraction=0.2,
    synth_train_participants=2, synth_heldout_participants=2, synth_duration_s=1.0,
    augment=AugmentConfig(),
)


@pytest.fixture(scope="module")
def tiny_trained(tmp_path_factory) -> tuple[Path, Path, dict]:
    """A fake usgra-seg folder and the TINY recipe trained on it once (the reference of the tests below)."""
    tmp = tmp_path_factory.mktemp("tiny")
    root = fake_usgra(tmp / "usgra")
    weights = tmp / "a" / "seg.keras"
    return root, weights, pretrained.train(TINY, weights, usgra_root=root, log=lambda *_: None)


def test_tiny_training_is_deterministic_and_writes_weights_and_card(tiny_trained, tmp_path):
    root, weights, first = tiny_trained
    again = pretrained.train(TINY, tmp_path / "b" / "seg.keras", usgra_root=root, log=lambda *_: None)
    assert first["weights_sha256"] == again["weights_sha256"]
    other = pretrained.train(replace(TINY, seed=7), tmp_path / "c" / "seg.keras", usgra_root=root, log=lambda *_: None)
    assert other["weights_sha256"] != first["weights_sha256"]
    model, card = pretrained.load_shipped(weights)
    assert card == first and pretrained.weights_hash(model) == card["weights_sha256"]
    assert card["n_usgra_train"] + card["n_usgra_val"] == 10  # the 3 test images were never read for training
    assert card["usgra_test"]["largest"]["n_images"] == 3 and len(card["history"]) == 2
    assert "usgra_dev" not in card  # its train split is training data, not a development set
    assert card["recipe"]["seed"] == TINY.seed and card["input_size"] == 32


def test_vessel_output_is_trained_then_dropped_from_the_saved_nerve_segmenter(tiny_trained, tmp_path):
    root, _, plain = tiny_trained
    recipe = replace(TINY, vessel_weight=0.5)
    card = pretrained.train(recipe, tmp_path / "v" / "seg.keras", usgra_root=root, log=lambda *_: None)
    model, _ = pretrained.load_shipped(tmp_path / "v" / "seg.keras")
    assert model.output_shape[-1] == 1 and card["recipe"]["vessel_weight"] == 0.5
    assert card["weights_sha256"] != plain["weights_sha256"]  # the vessel labels changed what was learnt
    assert card["usgra_test"]["largest"]["n_images"] == 3


def test_a_synthetic_only_segmenter_learns_nothing_from_real_images_and_scores_the_unseen_train_split(tmp_path):
    root = fake_usgra(tmp_path / "usgra")
    sim = replace(TINY, synthetic_only=True)
    card = pretrained.train(sim, tmp_path / "sim" / "seg.keras", usgra_root=root, log=lambda *_: None)
    assert card["n_usgra_train"] == 0 and card["n_usgra_val"] == 0 and "usgra_val_dice_mean" not in card
    assert 0.0 <= card["synthetic_val_dice_mean"] <= 1.0 and card["recipe"]["synthetic_only"] is True
    assert card["usgra_test"]["largest"]["n_images"] == 3
    assert card["usgra_dev"]["largest"]["n_images"] == 10  # the train split, unseen, compares simulators
    gen = np.random.default_rng(1)
    for image in (root / "dataset" / "images").glob("*.png"):  # other real training pixels, same files
        cv2.imwrite(str(image), gen.integers(0, 256, (70, 80)).astype(np.uint8))
    other = pretrained.train(sim, tmp_path / "sim2" / "seg.keras", usgra_root=root, log=lambda *_: None)
    assert other["weights_sha256"] == card["weights_sha256"]  # the model did not change with them
    model, _ = pretrained.load_shipped(tmp_path / "sim2" / "seg.keras")
    dev = usgra_summary(usgra_check(model, 32, TINY.threshold, root=root, subset="train", flip_tta=True))
    assert other["usgra_dev"]["largest"]["dice_mean"] == pytest.approx(dev.iloc[0]["dice_mean"], abs=1e-4)
    for image in (root / "dataset" / "images").glob("*.png"):
        image.write_bytes(b"not an image")  # the shipped recipe reads them, and says which file is broken
    with pytest.raises(InputError):
        pretrained.train(TINY, tmp_path / "shipped" / "seg.keras", usgra_root=root, log=lambda *_: None)
    with pytest.raises(SystemExit):  # the command refuses to overwrite the shipped weights with it
        pretrained.main(["train", "--synthetic-only"])


def test_the_worst_usgra_figure_shows_the_lowest_dice_images_with_their_scores(tiny_trained):
    import matplotlib.pyplot as plt

    from ctslib.nerve.realcheck import plot_usgra_worst

    root, weights, _ = tiny_trained
    model, card = pretrained.load_shipped(weights)
    table = usgra_check(model, card["input_size"], card["threshold"], root=root, subset="train")
    fig = plot_usgra_worst(model, table, card["input_size"], card["threshold"], root=root, subset="train", n=2)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    lowest = table.sort_values(["dice_largest", "id"]).head(2)
    assert titles == [f"{r.id}: Dice {r.dice_largest:.2f}" for r in lowest.itertuples()]
    assert all(ax.images for ax in fig.axes)  # each panel shows its image, not only a title
    plt.close(fig)


def test_keep_epoch_last_keeps_the_end_of_the_schedule_and_best_keeps_the_validation_pick(tiny_trained, tmp_path):
    root, _, best = tiny_trained
    val = [h["val_dice"] for h in best["history"]]
    assert best["best_epoch"] == 1 + int(np.argmax(val))
    recipe = replace(TINY, epochs=3, keep_epoch="last")
    last = pretrained.train(recipe, tmp_path / "last" / "seg.keras", usgra_root=root, log=lambda *_: None)
    assert last["best_epoch"] == 3 and last["recipe"]["keep_epoch"] == "last"
    with pytest.raises(ValueError, match="keep_epoch"):
        pretrained.train(replace(TINY, keep_epoch="median"), tmp_path / "x" / "seg.keras", usgra_root=root)


def test_nerve_only_keeps_the_nerve_channel_of_a_two_output_model():
    two = pretrained._build(TINY, seed=3, out_channels=2)
    one = pretrained.nerve_only(two, TINY)
    x = np.random.default_rng(0).random((3, 32, 32, 1), dtype=np.float32)
    np.testing.assert_allclose(one.predict(x, verbose=0)[..., 0], two.predict(x, verbose=0)[..., 0], atol=1e-6)
    assert one.output_shape == (None, 32, 32, 1)


def test_load_shipped_names_the_missing_file(tmp_path):
    with pytest.raises(InputError, match="make segmenter"):
        pretrained.load_shipped(tmp_path / "absent.keras")


def test_shipped_weights_are_small_and_match_their_card():
    assert pretrained.SHIPPED_WEIGHTS.exists(), "ctslib/nerve/weights/nerve_segmenter.keras is missing: run `make segmenter`"
    assert pretrained.SHIPPED_WEIGHTS.stat().st_size <= 5 * 1024 * 1024
    model, card = pretrained.load_shipped()
    assert pretrained.weights_hash(model) == card["weights_sha256"]
    assert model.input_shape[1:] == (card["input_size"], card["input_size"], 1)
    assert card["attribution"] == USGRA_ATTRIBUTION


@pytest.mark.realdata
@requires_usgra
def test_shipped_model_reproduces_its_card_on_the_usgra_test_images():
    """Inference on the 40 test images gives the card's figures (the card is not hand-written)."""
    model, card = pretrained.load_shipped()
    table = usgra_check(model, card["input_size"], card["threshold"], root=USGRA_SEG_DIR,
                        flip_tta=card["flip_tta"])
    summary = usgra_summary(table).set_index("components")
    assert len(table) == 40
    for rule in ("largest", "all"):
        for key in ("dice_mean", "dice_median", "crop_hit_rate"):
            assert summary.loc[rule, key] == pytest.approx(card["usgra_test"][rule][key], abs=2e-3)
    assert summary.loc["largest", "crop_hit_rate"] > 0.5  # far above chance: it finds real nerves


def test_synthetic_sets_take_randomised_scenes_or_refuse_an_unknown_set():
    recipe = replace(TINY, synth_scenes="randomised", scenes_train=4, scenes_heldout=2)
    train, heldout = pretrained.synthetic_sets(recipe)
    assert len(train) == 4 * pretrained.FRAMES_PER_SCENE and len(heldout) == 2 * pretrained.FRAMES_PER_SCENE
    assert set(train["video"]).isdisjoint(heldout["video"])
    with pytest.raises(ValueError, match="synth_scenes"):
        pretrained.synthetic_sets(replace(TINY, synth_scenes="elbow"))


def test_small_cohort_has_one_and_a_half_wrists_a_participant_and_even_grades():
    config = pretrained.small_cohort_config(seed=5, n_participants=12, duration_s=4.0)
    assert sum(config.grade_counts) == 18 and max(config.grade_counts) - min(config.grade_counts) <= 1
    assert (config.source_fps, config.bad_share, config.workers) == (5.0, 0.3, 1)


def test_usgra_summary_tells_missed_nerves_from_under_segmented_ones():
    # four images: half the nerve found, nothing predicted, a look-alike elsewhere, 70 % of the nerve found
    table = pd.DataFrame({
        "id": ["a", "b", "c", "d"], "true_area_px": [100, 100, 100, 200],
        "dice_largest": [2 * 50 / 150, 0.0, 0.0, 2 * 140 / 340], "iou_largest": [0.5, 0.0, 0.0, 0.7],
        "dice_all": [2 * 50 / 150, 0.0, 2 * 30 / 210, 2 * 140 / 340], "iou_all": [0.5, 0.0, 0.2, 0.7],
        "crop_hit": [True, False, False, True],
        "pred_area_largest_px": [50, 0, 80, 140], "pred_area_all_px": [50, 0, 110, 140],
        "nerve_seen": [True, False, False, True], "false_pick": [False, False, True, True],
    })
    summary = usgra_summary(table).set_index("components")
    assert summary.loc["largest", "empty_rate"] == pytest.approx(0.25)
    assert summary.loc["largest", "area_ratio_median"] == pytest.approx(0.6)  # (0.5 + 0.7) / 2: c overlaps nothing
    assert summary.loc["all", "area_ratio_median"] == pytest.approx(0.7)  # c's second component touches its nerve
    nothing = usgra_summary(table.assign(dice_largest=0.0, dice_all=0.0)).set_index("components")
    assert np.isnan(nothing.loc["largest", "area_ratio_median"])
    assert summary.loc["largest", "seen_rate"] == summary.loc["all", "seen_rate"] == pytest.approx(0.5)
    assert summary.loc["largest", "false_pick_rate"] == pytest.approx(0.5)


def test_confidence_on_and_off_the_nerve_tells_an_unseen_nerve_from_a_look_alike():
    true = np.zeros((100, 100), np.uint8)
    true[40:60, 40:60] = 1
    probability = np.zeros((100, 100), np.float32)
    probability[40:60, 40:60] = 0.3
    probability[42:58, 42:58] = 0.8  # most of the nerve, not its rim: the 90th percentile reads 0.8
    probability[38, 50] = 0.99  # a halo just outside the outline is still "on the nerve"
    on, off = confidence_on_and_off(probability, true, margin_px=3)
    assert on == pytest.approx(0.8) and off == 0.0
    probability[80:90, 10:20] = 0.7  # a look-alike far away
    assert confidence_on_and_off(probability, true, margin_px=3)[1] == pytest.approx(0.7)
    on, off = confidence_on_and_off(probability, np.zeros_like(true), margin_px=3)
    assert np.isnan(on) and off == pytest.approx(0.99)  # no nerve: everything is off it
