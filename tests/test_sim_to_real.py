"""Tests of ctslib.nerve.sim_to_real: repeats over seeds, the figures in the card, the table beside the shipped model."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from ctslib.common.errors import InputError
from ctslib.nerve import pretrained, sim_to_real

RECIPE = pretrained.Recipe(epochs=3)


def copy_of_shipped_card(folder: Path) -> tuple[Path, dict]:
    """A copy of the shipped card to record into, and its contents before."""
    card_path = Path(shutil.copy(pretrained.SHIPPED_CARD, folder / "card.json"))
    return card_path, json.loads(card_path.read_text())


def test_sim_to_real_repeats_differ_only_in_their_seeds():
    recipes = sim_to_real.sim_to_real_recipes(replace(RECIPE, synthetic_only=True), 2)
    assert [(r.seed, r.synth_train_seed, r.synth_heldout_seed) for r in recipes] == list(sim_to_real.SIM_SEEDS[:2])
    assert replace(recipes[1], seed=RECIPE.seed, synth_train_seed=RECIPE.synth_train_seed,
                   synth_heldout_seed=RECIPE.synth_heldout_seed) == replace(RECIPE, synthetic_only=True)
    with pytest.raises(ValueError, match="repeats"):
        sim_to_real.sim_to_real_recipes(RECIPE, 0)


def test_the_sim_to_real_figures_go_into_the_card_and_leave_the_rest(tmp_path):
    card_path, before = copy_of_shipped_card(tmp_path)
    sim = {**before, "recipe": {**before["recipe"], "synthetic_only": True}, "best_epoch": 7,
           "usgra_test": {"largest": {"dice_mean": 0.1, "dice_median": 0.0, "crop_hit_rate": 0.2}}}
    entry = sim_to_real.record_sim_to_real([sim], Path(card_path), machine="a CPU")
    after = json.loads(Path(card_path).read_text())
    assert after["sim_to_real"] == entry and entry["usgra_test_dice_mean"] == 0.1 and entry["runs"][0]["best_epoch"] == 7
    assert {k: v for k, v in after.items() if k != "sim_to_real"} == {k: v for k, v in before.items() if k != "sim_to_real"}
    with pytest.raises(InputError, match="synthetic-only"):
        sim_to_real.record_sim_to_real([before], Path(card_path))


def test_repeated_sim_to_real_runs_are_recorded_as_their_mean_with_each_run_kept(tmp_path):
    card_path, before = copy_of_shipped_card(tmp_path)
    recipe = {**before["recipe"], "synthetic_only": True, "synth_scenes": "randomised", "keep_epoch": "last"}
    runs = [{**before, "recipe": {**recipe, "seed": seed, "synth_train_seed": seed + 1, "synth_heldout_seed": seed + 2},
             "usgra_test": {"largest": {"dice_mean": dice, "dice_median": 0.0, "crop_hit_rate": hit}},
             "usgra_dev": {"largest": {"dice_mean": dice / 2, "dice_median": 0.0, "crop_hit_rate": hit / 2}}}
            for seed, dice, hit in ((1, 0.2, 0.3), (5, 0.4, 0.5))]
    entry = sim_to_real.record_sim_to_real(runs, Path(card_path))
    assert entry["n_runs"] == 2 and [r["seed"] for r in entry["runs"]] == [1, 5]
    assert entry["usgra_test_dice_mean"] == pytest.approx(0.3) and entry["usgra_test_crop_hit_rate"] == pytest.approx(0.4)
    assert entry["usgra_dev_dice_mean"] == pytest.approx(0.15) and entry["runs"][1]["usgra_dev_crop_hit_rate"] == 0.25
    assert "--repeats 2" in entry["command"] and entry["keep_epoch"] == "last"
    assert sim_to_real.epoch_kept(entry) == f"last ({before['recipe']['epochs']})"
    other = {**runs[1], "recipe": {**runs[1]["recipe"], "epochs": 3}}  # not a repeat of the first run
    with pytest.raises(InputError, match="more than their seeds"):
        sim_to_real.record_sim_to_real([runs[0], other], Path(card_path))


def test_randomised_scenes_are_recorded_beside_the_wrist_figure(tmp_path):
    card_path, before = copy_of_shipped_card(tmp_path)
    sim = {**before, "recipe": {**before["recipe"], "synthetic_only": True, "synth_scenes": "randomised"},
           "usgra_test": {"largest": {"dice_mean": 0.2, "dice_median": 0.1, "crop_hit_rate": 0.3}}}
    entry = sim_to_real.record_sim_to_real([sim], Path(card_path), machine="a CPU")
    after = json.loads(Path(card_path).read_text())
    assert after["sim_to_real_randomised"] == entry and entry["scenes"] == "randomised"
    assert "--scenes randomised" in entry["command"]
    assert after["sim_to_real"] == before["sim_to_real"]  # the wrist figure (before the change) stays


def test_sim_to_real_table_puts_each_synthetic_only_figure_beside_the_shipped_model():
    entry = {"usgra_test_dice_mean": 0.3, "usgra_test_dice_median": 0.2, "usgra_test_crop_hit_rate": 0.4,
             "synthetic_heldout_dice_mean": 0.9, "best_epoch": 30, "machine": "a CPU"}
    card = {"sim_to_real": {**entry, "usgra_test_dice_mean": 0.1},
            "sim_to_real_randomised": {**entry, "scenes": "randomised"},
            "usgra_test": {"largest": {"dice_mean": 0.7, "dice_median": 0.75, "crop_hit_rate": 0.8}},
            "synthetic_heldout_dice_mean": 0.95, "best_epoch": 59}
    table = sim_to_real.sim_to_real_table(card).set_index("segmenter")
    assert list(table.index) == ["synthetic only: wrist frames", "synthetic only: randomised frames",
                                 "shipped: usgra-seg train + synthetic"]
    # (0.3 - 0.1) / (0.7 - 0.1): a third of the way from the wrist frames' figure to the shipped model's
    assert table["gap closed"].tolist() == pytest.approx([0.0, 1 / 3, 1.0], abs=1e-3)
    assert table.loc["synthetic only: randomised frames", "crop-hit"] == 0.4


def test_the_shipped_card_reads_as_a_sim_to_real_table():
    table = sim_to_real.sim_to_real_table(pretrained.read_card())
    assert len(table) >= 2 and table["Dice mean"].between(0, 1).all()
    assert table["gap closed"].iloc[-1] == 1.0 and table["gap closed"].iloc[0] == 0.0
