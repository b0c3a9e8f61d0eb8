"""Sim-to-real: how far a segmenter trained on synthetic frames only gets on real nerves (issue 24).

The shipped recipe (``ctslib.nerve.pretrained.Recipe``) with ``synthetic_only`` set is trained once
per seed of ``SIM_SEEDS``; the usgra-seg test figures of those runs, averaged, go into the shipped
card beside the shipped model's (``record_sim_to_real``), and ``sim_to_real_table`` lays them side by
side with the share of the gap each simulator closes. The simulator is the only thing that differs
between entries, so the table measures it: docs/realism.md has the history.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd

from ctslib.common.errors import InputError
from ctslib.common.io import write_json
from ctslib.synth.scenes import SCENE_SETS

R = TypeVar("R")  # the segmenter's Recipe (ctslib.nerve.pretrained imports this module, not the reverse)


def sim_to_real_key(scenes: str) -> str:
    """The card entry of a synthetic-only segmenter: ``sim_to_real`` (wrist videos) or ``sim_to_real_<scenes>``."""
    return "sim_to_real" if scenes == "wrist" else f"sim_to_real_{scenes}"


SIM_SEEDS: tuple[tuple[int, int, int], ...] = ((2026, 101, 202), (7, 303, 404), (11, 505, 606))
"""(recipe seed, training scenes seed, held-out scenes seed) of each repeat of the sim-to-real measurement."""
SEED_FIELDS = ("seed", "synth_train_seed", "synth_heldout_seed")  # the Recipe fields a SIM_SEEDS row sets


def sim_to_real_recipes(recipe: R, repeats: int) -> list[R]:
    """``repeats`` copies of a synthetic-only ``recipe`` that differ only in their seeds (``SIM_SEEDS``).

    Two seeds of one recipe differ by 0.05-0.08 in usgra-seg test Dice (docs/realism.md), as much as the
    simulator changes being judged, so the card's sim-to-real figure is a mean over repeats.
    """
    if not 1 <= repeats <= len(SIM_SEEDS):
        raise ValueError(f"repeats must be 1 to {len(SIM_SEEDS)}, got {repeats}")
    return [replace(recipe, **dict(zip(SEED_FIELDS, seeds))) for seeds in SIM_SEEDS[:repeats]]


def record_sim_to_real(sim_cards: list[dict], card_path: Path, *, machine: str = "") -> dict:
    """Store synthetic-only segmenters' figures in the shipped card (``sim_to_real_key``); return the entry.

    The entry says how far the simulator's nerves are from real ones for a model: the same recipe
    trained on synthetic frames only, scored on the usgra-seg test images (``train`` with ``synthetic_only``),
    once per seed of ``sim_to_real_recipes``. Its figures are the means over those runs; ``runs`` keeps
    each one. Every other key of the card stays as it is.
    """
    if not sim_cards:
        raise ValueError("no synthetic-only segmenter to record")
    for sim_card in sim_cards:
        if not sim_card.get("recipe", {}).get("synthetic_only"):
            raise InputError("not a synthetic-only segmenter's card (recipe.synthetic_only is false)", file=card_path)
    recipes = [{k: v for k, v in c["recipe"].items() if k not in SEED_FIELDS} for c in sim_cards]
    if any(r != recipes[0] for r in recipes):
        raise InputError("the synthetic-only runs differ in more than their seeds", file=card_path)
    first = sim_cards[0]["recipe"]
    scenes = first.get("synth_scenes", "wrist")
    option = "" if scenes == "wrist" else f" --scenes {scenes}"
    runs = [{"seed": c["recipe"]["seed"], "scenes_seeds": [c["recipe"]["synth_train_seed"], c["recipe"]["synth_heldout_seed"]],
             "usgra_test_dice_mean": c["usgra_test"]["largest"]["dice_mean"],
             "usgra_test_dice_median": c["usgra_test"]["largest"]["dice_median"],
             "usgra_test_crop_hit_rate": c["usgra_test"]["largest"]["crop_hit_rate"],
             "synthetic_heldout_dice_mean": c["synthetic_heldout_dice_mean"], "best_epoch": c["best_epoch"],
             **({"usgra_dev_dice_mean": c["usgra_dev"]["largest"]["dice_mean"],
                 "usgra_dev_crop_hit_rate": c["usgra_dev"]["largest"]["crop_hit_rate"]} if "usgra_dev" in c else {}),
             "train_seconds": c["train_seconds"], "weights_sha256": c["weights_sha256"]} for c in sim_cards]
    dev_keys = ("usgra_dev_dice_mean", "usgra_dev_crop_hit_rate") if all("usgra_dev" in c for c in sim_cards) else ()

    def mean(key: str) -> float:
        return round(float(np.mean([run[key] for run in runs])), 4)

    repeats = f" --repeats {len(runs)}" if len(runs) > 1 else ""
    entry = {"command": f"make segmenter ARGS='--synthetic-only{option}{repeats} --out FILE'", "scenes": scenes,
             "epochs": first["epochs"], "keep_epoch": first.get("keep_epoch", "best"), "n_runs": len(runs),
             **{key: mean(key) for key in ("usgra_test_dice_mean", "usgra_test_dice_median",
                                           "usgra_test_crop_hit_rate", "synthetic_heldout_dice_mean", *dev_keys)},
             "train_seconds": round(sum(run["train_seconds"] for run in runs), 1), "machine": machine, "runs": runs}
    card = json.loads(Path(card_path).read_text(encoding="utf-8"))
    card[sim_to_real_key(scenes)] = entry
    write_json(card_path, card)
    return entry


def epoch_kept(entry: dict) -> str:
    """How a card entry chose its weights: ``"last (100)"``, or ``"best (59)"`` on its validation frames."""
    if entry.get("keep_epoch", "best") == "last":
        return f"last ({entry['epochs'] if 'epochs' in entry else entry['recipe']['epochs']})"
    return f"best ({entry['best_epoch']})"


def sim_to_real_table(card: dict) -> pd.DataFrame:
    """The card's synthetic-only segmenters beside the shipped one, on the usgra-seg test images.

    ``gap closed`` is issue 24's measure of a simulator: how much of the distance between the wrist
    frames' synthetic-only Dice and the shipped model's Dice a synthetic-only segmenter covers.
    """
    shipped = card["usgra_test"]["largest"]
    entries = {scenes: card[sim_to_real_key(scenes)] for scenes in SCENE_SETS if sim_to_real_key(scenes) in card}
    rows = [{"segmenter": f"synthetic only: {scenes} frames", "Dice mean": e["usgra_test_dice_mean"],
             "Dice median": e["usgra_test_dice_median"], "crop-hit": e["usgra_test_crop_hit_rate"],
             "synthetic held-out Dice": e["synthetic_heldout_dice_mean"], "epoch kept": epoch_kept(e),
             "runs": e.get("n_runs", 1), "machine": e.get("machine", "")}
            for scenes, e in entries.items()]
    rows.append({"segmenter": "shipped: usgra-seg train + synthetic", "Dice mean": shipped["dice_mean"],
                 "Dice median": shipped["dice_median"], "crop-hit": shipped["crop_hit_rate"],
                 "synthetic held-out Dice": card["synthetic_heldout_dice_mean"], "epoch kept": epoch_kept(card),
                 "runs": 1, "machine": ""})
    table = pd.DataFrame(rows)
    if "wrist" in entries:
        floor = entries["wrist"]["usgra_test_dice_mean"]
        table["gap closed"] = ((table["Dice mean"] - floor) / (shipped["dice_mean"] - floor)).round(3)
    return table
