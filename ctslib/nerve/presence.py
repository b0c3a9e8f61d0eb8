"""Nerve presence: a frame-level "is there a nerve here" score and its calibrated threshold.

The shipped segmenter's own outputs do not separate frames with and without a nerve on real
ultrasound: in nerve-free patches of usgra-seg images it still predicts a nerve-sized region at
probability > 0.98 (a vessel, a tendon; see docs/segmenter.md). So presence is a decision of its
own: a logistic regression on the shipped segmenter's features (its bottleneck, pooled; its first
decoder level averaged under the predicted nerve; the probability map's peak, area and mean), fitted on

* positives: usgra-seg *train* images (every one shows a nerve) and, at the scale of a patch,
  a window of each that holds its whole nerve; synthetic frames whose mask shows a nerve;
* negatives: nerve-free windows cut from the same usgra-seg images (the nerve mask, dilated,
  lies wholly outside), resized to the segmenter's input as a frame would be; synthetic frames
  whose mask is empty (the plane left the nerve).

The threshold is chosen on the usgra-seg *validation* part of the training split only (the one
that chose the shipped epoch); the 40 test images are scored afterwards. Everything (the
classifier's weights, the threshold, the measured precision and recall) is stored under
``presence`` in ``ctslib/nerve/weights/nerve_segmenter.json``. Recompute::

    .venv/bin/python -m ctslib.nerve.presence calibrate

The features always come from the *shipped* weights, also when stage 03 fine-tunes a copy: the
classifier was fitted on them, and a fine-tuned model's features would be another input.

The module is one concern, kept whole: the features, the classifier, its calibration and its checks
must change together (a feature added here and not in ``calibrate`` would silently break the card).
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from ctslib.common.errors import InputError
from ctslib.data.images import read_gray, read_mask
from ctslib.data.usgra import USGRA_NERVE_LABEL, usgra_pairs
from ctslib.nerve.inference import largest_component
from ctslib.nerve.inputs import to_model_input

PROBABILITY_THRESHOLD = 0.5
"""Pixel threshold of the probability-map features (the pipeline's mask threshold)."""

VAL_SEED_OFFSET, TEST_SEED_OFFSET = 10_000, 20_000
"""Patch seeds of validation and test images differ from the training images' (recipe seed + offset + index)."""


# -- scores and thresholds (pure) ------------------------------------------------------------


def map_features(probability: np.ndarray, threshold: float = PROBABILITY_THRESHOLD) -> np.ndarray:
    """Peak probability, largest-component area share and mean probability inside it, of one map (s, s)."""
    prob = np.asarray(probability, np.float32)
    component = largest_component((prob >= threshold).astype(np.uint8)) > 0
    area = float(component.mean())
    inside = float(prob[component].mean()) if component.any() else 0.0
    return np.array([float(prob.max()), area, inside], np.float32)


def pooled_features(bottleneck: np.ndarray) -> np.ndarray:
    """Global mean and max of a feature map (h, w, c) -> (2c,)."""
    flat = np.asarray(bottleneck, np.float32).reshape(-1, bottleneck.shape[-1])
    return np.concatenate([flat.mean(axis=0), flat.max(axis=0)])


@dataclass(frozen=True)
class PresenceClassifier:
    """Standardised logistic regression: score = sigmoid(coef . (x - mean) / scale + intercept)."""

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float

    def score(self, features: np.ndarray) -> np.ndarray:
        """Presence probability in [0, 1] per row of ``features`` (N, F)."""
        x = np.atleast_2d(np.asarray(features, np.float64))
        if x.shape[1] != len(self.coef):
            raise ValueError(f"presence classifier expects {len(self.coef)} features, got {x.shape[1]}")
        z = (x - np.asarray(self.mean)) / np.asarray(self.scale)
        logit = z @ np.asarray(self.coef) + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(logit, -60.0, 60.0)))

    def to_dict(self) -> dict:
        return {k: [float(v) for v in val] if isinstance(val, tuple) else float(val) for k, val in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> "PresenceClassifier":
        return cls(tuple(data["mean"]), tuple(data["scale"]), tuple(data["coef"]), float(data["intercept"]))


def balanced_weights(labels: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Sample weights giving every (group, label) cell the same total weight (mean weight 1)."""
    keys = [f"{g}|{y}" for g, y in zip(np.asarray(groups), np.asarray(labels))]
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    weights = 1.0 / counts[inverse]
    return weights * len(weights) / weights.sum()


def fit_classifier(features: np.ndarray, labels: np.ndarray, c: float = 0.1,
                   groups: np.ndarray | None = None) -> PresenceClassifier:
    """Fit the standardised L2 logistic regression (lbfgs: deterministic, no random step).

    With ``groups`` (e.g. the data source) every (group, class) cell weighs the same, so a source with
    few negatives (synthetic frames that left the nerve) is not outvoted; otherwise classes are balanced.

    Raises:
        ValueError: the labels hold only one class.
    """
    from sklearn.linear_model import LogisticRegression

    x, y = np.asarray(features, np.float64), np.asarray(labels).astype(int)
    if len(np.unique(y)) != 2:
        raise ValueError("presence needs positives and negatives to fit")
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(C=c, max_iter=5000, class_weight=None if groups is not None else "balanced")
    fit = model.fit((x - mean) / scale, y, sample_weight=balanced_weights(y, groups) if groups is not None else None)
    return PresenceClassifier(tuple(mean), tuple(scale), tuple(fit.coef_[0]), float(fit.intercept_[0]))


def precision_recall(scores: np.ndarray, labels: np.ndarray, threshold: float) -> tuple[float, float]:
    """Precision and recall of "nerve present" = score >= threshold (NaN where undefined)."""
    called = np.asarray(scores) >= threshold
    truth = np.asarray(labels).astype(bool)
    tp = int((called & truth).sum())
    precision = tp / int(called.sum()) if called.any() else float("nan")
    recall = tp / int(truth.sum()) if truth.any() else float("nan")
    return precision, recall


def choose_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The threshold that maximises min(precision, recall) on these (validation) scores.

    Candidates are midpoints between neighbouring distinct scores; ties go to the lowest threshold
    (keep a frame when in doubt: a dropped nerve frame is a lost crop, never a wrong one).

    Raises:
        ValueError: no positive or no negative among the labels.
    """
    s, y = np.asarray(scores, np.float64), np.asarray(labels).astype(bool)
    if y.all() or not y.any():
        raise ValueError("choosing a presence threshold needs positives and negatives")
    values = np.unique(s)
    candidates = np.concatenate([[values[0] - 1e-6], (values[:-1] + values[1:]) / 2.0]) if len(values) > 1 else values
    best, best_value = float(candidates[0]), -1.0
    for t in candidates:
        p, r = precision_recall(s, y, t)
        value = min(np.nan_to_num(p), np.nan_to_num(r))
        if value > best_value + 1e-12:
            best, best_value = float(t), value
    return best


# -- negatives and positives cut from real images --------------------------------------------


def window_boxes(shape: tuple[int, int], frac: float, steps: int = 8) -> list[tuple[int, int, int, int]]:
    """Every (y0, x0, h, w) window of ``frac`` of the image's sides on a grid of ``1/steps`` of the window."""
    height, width = shape
    h, w = max(1, int(height * frac)), max(1, int(width * frac))
    dy, dx = max(1, h // steps), max(1, w // steps)
    return [(y, x, h, w) for y in range(0, height - h + 1, dy) for x in range(0, width - w + 1, dx)]


def nerve_free_patches(image: np.ndarray, mask: np.ndarray, n: int, seed: int, *, frac: float = 0.5,
                       margin_px: int = 8) -> list[np.ndarray]:
    """Up to ``n`` seeded windows of ``image`` that hold no nerve pixel (mask dilated by ``margin_px``)."""
    from ctslib.common.seed import rng

    grown = cv2.dilate((mask > 0).astype(np.uint8), np.ones((2 * margin_px + 1,) * 2, np.uint8))
    integral = cv2.integral(grown)
    free = [(y, x, h, w) for y, x, h, w in window_boxes(image.shape[:2], frac)
            if integral[y + h, x + w] - integral[y, x + w] - integral[y + h, x] + integral[y, x] == 0]
    if not free:
        return []
    picks = rng(seed, "presence-negatives").choice(len(free), size=min(n, len(free)), replace=False)
    return [image[y:y + h, x:x + w] for y, x, h, w in (free[k] for k in sorted(picks))]


def nerve_patch(image: np.ndarray, mask: np.ndarray, seed: int, *, frac: float = 0.5) -> np.ndarray | None:
    """A seeded window of ``frac`` of the image's sides that holds the whole nerve, or None when none does."""
    from ctslib.common.seed import rng

    rows, cols = np.nonzero(mask)
    if not len(rows):
        return None
    boxes = [(y, x, h, w) for y, x, h, w in window_boxes(image.shape[:2], frac)
             if y <= rows.min() and rows.max() < y + h and x <= cols.min() and cols.max() < x + w]
    if not boxes:
        return None
    y, x, h, w = boxes[int(rng(seed, "presence-positives").integers(len(boxes)))]
    return image[y:y + h, x:x + w]


# -- the segmenter's features ------------------------------------------------------------------


def feature_model(model):
    """A Keras model giving (bottleneck, first decoder level, probability map) of the segmenter ``model``.

    The bottleneck is the last layer of the smallest spatial size (the U-Net's deepest level); the
    first decoder level is the last layer of twice that size (the decoder's output at that scale).
    """
    import keras

    spatial = [(layer, layer.output.shape) for layer in model.layers
               if len(getattr(layer.output, "shape", ())) == 4 and layer.output.shape[1] is not None]
    smallest = min(shape[1] for _, shape in spatial)
    bottleneck = [layer for layer, shape in spatial if shape[1] == smallest][-1]
    decoder = [layer for layer, shape in spatial if shape[1] == 2 * smallest][-1]
    return keras.Model(model.inputs, [bottleneck.output, decoder.output, model.outputs[0]])


def weighted_features(feature_map: np.ndarray, probability: np.ndarray) -> np.ndarray:
    """Mean of a feature map (h, w, c) weighted by the probability map (resized to h x w): what the
    predicted nerve looks like to the network, whatever its size. Uniform weights when the map is all zero."""
    h, w = feature_map.shape[:2]
    weights = cv2.resize(np.asarray(probability, np.float32), (w, h), interpolation=cv2.INTER_AREA)
    total = float(weights.sum())
    weights = weights / total if total > 0 else np.full((h, w), 1.0 / (h * w), np.float32)
    return (np.asarray(feature_map, np.float32) * weights[..., None]).sum(axis=(0, 1))


def features_and_probabilities(features_model, images: Sequence[np.ndarray], input_size: int,
                                batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Presence features of 8-bit grayscale images of any size (resized as frames are), one row each:
    pooled bottleneck (mean, max), probability-weighted decoder features, and ``map_features``; and
    the segmenter's probability maps (N, s, s) of the same forward pass."""
    rows, maps = [], []
    for start in range(0, len(images), batch_size):
        x = np.stack([to_model_input(im, input_size) for im in images[start:start + batch_size]])
        deep, decoder, prob = features_model.predict_on_batch(x)
        prob = np.asarray(prob)[..., 0]
        maps.append(prob)
        for d, e, p in zip(np.asarray(deep), np.asarray(decoder), prob):
            rows.append(np.concatenate([pooled_features(d), weighted_features(e, p), map_features(p)]))
    if not rows:
        return np.zeros((0, 0), np.float32), np.zeros((0, input_size, input_size), np.float32)
    return np.stack(rows), np.concatenate(maps)


def frame_features(features_model, images: Sequence[np.ndarray], input_size: int, batch_size: int = 32) -> np.ndarray:
    """Presence features of images (``features_and_probabilities`` without the maps)."""
    return features_and_probabilities(features_model, images, input_size, batch_size)[0]


@dataclass(frozen=True)
class Presence:
    """The shipped presence decision: features of the shipped segmenter -> classifier -> threshold."""

    features_model: object
    classifier: PresenceClassifier
    threshold: float
    input_size: int

    def scores(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Presence score in [0, 1] per image."""
        return self.scores_and_probabilities(images)[0]

    def scores_and_probabilities(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Presence score per image and the shipped segmenter's probability maps (N, s, s), from one pass.

        Where the shipped weights also cut the crops (no fine-tuning, or fine-tuning rejected), the maps
        are that segmentation's un-mirrored forward pass: stage 03 then runs two passes a frame, not three.
        """
        if len(images) == 0:
            return np.zeros(0), np.zeros((0, self.input_size, self.input_size), np.float32)
        features, maps = features_and_probabilities(self.features_model, images, self.input_size)
        return self.classifier.score(features), maps

    def uses_weights_of(self, model) -> bool:
        """Whether ``model`` holds exactly the weights presence scores with (then one pass serves both).

        The feature model is built on the segmenter's own layers, so its weights come in the same order.
        """
        from ctslib.nerve.pretrained import weights_hash

        return weights_hash(self.features_model) == weights_hash(model)


def load_presence(weights: Path | None = None, threshold: float | None = None) -> Presence:
    """The calibrated presence decision stored beside the shipped weights.

    Raises:
        InputError: the card has no ``presence`` entry, or one calibrated on other weights (its
            ``weights_sha256`` differs from the card's: the features changed); run
            ``python -m ctslib.nerve.presence calibrate``.
    """
    from ctslib.nerve import pretrained
    model, card = pretrained.load_shipped(weights or pretrained.SHIPPED_WEIGHTS)
    entry = card.get("presence")
    card_file = Path(weights or pretrained.SHIPPED_WEIGHTS).with_suffix(".json")
    if not entry:
        raise InputError("the segmenter card has no presence calibration; run `python -m ctslib.nerve.presence calibrate`",
                         file=card_file)
    if entry.get("weights_sha256") != card.get("weights_sha256"):
        raise InputError("the presence calibration was made on other segmenter weights; run "
                         "`python -m ctslib.nerve.presence calibrate` after `make segmenter`", file=card_file)
    return Presence(feature_model(model), PresenceClassifier.from_dict(entry["classifier"]),
                    float(entry["threshold"] if threshold is None else threshold), int(card["input_size"]))


# -- calibration data and the command ----------------------------------------------------------


@dataclass(frozen=True)
class CalibrationRecipe:
    """What decides the presence calibration (stored with it)."""

    seed: int = 2026
    patch_frac: float = 0.5          # side of a patch as a share of the image's
    negatives_per_image: int = 2
    margin_px: int = 8               # nerve mask dilation before a window counts as nerve-free
    c_grid: tuple[float, ...] = (0.01, 0.1, 1.0)  # inverse L2 strengths tried; validation chooses
    balance_sources: bool = False    # True: real and synthetic positives and negatives weigh alike (tried: no better)
    synth_train_seed: int = 101      # the shipped segmenter's synthetic training cohort
    synth_train_participants: int = 12
    synth_heldout_seed: int = 202    # its held-out cohort (never fitted on)
    synth_heldout_participants: int = 6
    synth_duration_s: float = 4.0
    synth_bad_share: float = 0.3


def usgra_samples(images: Sequence[np.ndarray], masks: Sequence[np.ndarray], recipe: CalibrationRecipe,
                  seed_offset: int = 0) -> pd.DataFrame:
    """Frames and patches of usgra-seg images: kind (frame | nerve_patch | free_patch), label, image."""
    rows = []
    for k, (image, mask) in enumerate(zip(images, masks)):
        seed = recipe.seed + seed_offset + k
        if mask.any():
            rows.append({"kind": "frame", "label": 1, "image": image})
            patch = nerve_patch(image, mask, seed, frac=recipe.patch_frac)
            if patch is not None:
                rows.append({"kind": "nerve_patch", "label": 1, "image": patch})
        for patch in nerve_free_patches(image, mask, recipe.negatives_per_image, seed,
                                        frac=recipe.patch_frac, margin_px=recipe.margin_px):
            rows.append({"kind": "free_patch", "label": 0, "image": patch})
    return pd.DataFrame(rows, columns=["kind", "label", "image"])


def measure(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict:
    """Counts, precision and recall of one scored set at ``threshold``."""
    p, r = precision_recall(scores, labels, threshold)
    labels = np.asarray(labels).astype(bool)
    return {"n_positive": int(labels.sum()), "n_negative": int((~labels).sum()),
            "precision": round(float(p), 4), "recall": round(float(r), 4)}


def calibrate(usgra_root: Path, recipe: CalibrationRecipe = CalibrationRecipe(), *, log=print) -> dict:
    """Fit the presence classifier, choose its strength and threshold on validation data, measure it.

    Returns the card's ``presence`` entry: classifier weights, threshold, and precision/recall on the
    training data, the usgra-seg validation and test images (frames, nerve patches, nerve-free patches)
    and the held-out synthetic cohort (per plane).
    """
    from ctslib.nerve import pretrained
    from ctslib.common.seed import set_determinism

    set_determinism(recipe.seed)
    model, card = pretrained.load_shipped()
    size = int(card["input_size"])
    feats = feature_model(model)
    rec = pretrained.Recipe(**{k: v for k, v in card["recipe"].items() if k in ("val_block", "val_fraction", "seed")})

    image_paths, mask_paths = usgra_pairs(usgra_root, "train")
    images = [read_gray(p) for p in image_paths]
    masks = [read_mask(p, USGRA_NERVE_LABEL) for p in mask_paths]
    train_idx, val_idx = pretrained.usgra_val_split(image_paths, rec.val_fraction, rec.val_block, rec.seed)
    real_train = usgra_samples([images[k] for k in train_idx], [masks[k] for k in train_idx], recipe, 0)
    real_val = usgra_samples([images[k] for k in val_idx], [masks[k] for k in val_idx], recipe, VAL_SEED_OFFSET)
    test_paths, test_mask_paths = usgra_pairs(usgra_root, "test")
    real_test = usgra_samples([read_gray(p) for p in test_paths],
                              [read_mask(p, USGRA_NERVE_LABEL) for p in test_mask_paths], recipe, TEST_SEED_OFFSET)

    with tempfile.TemporaryDirectory() as tmp:
        synth_train = pretrained.synthetic_frames(recipe.synth_train_seed, recipe.synth_train_participants,
                                                  recipe.synth_duration_s, Path(tmp) / "train", bad_share=recipe.synth_bad_share)
        synth_test = pretrained.synthetic_frames(recipe.synth_heldout_seed, recipe.synth_heldout_participants,
                                                 recipe.synth_duration_s, Path(tmp) / "heldout", bad_share=recipe.synth_bad_share)
    for table in (synth_train, synth_test):
        table["label"] = table["mask"].map(lambda m: int(m.any()))

    def features(table: pd.DataFrame) -> np.ndarray:
        return frame_features(feats, list(table["image"]), size)

    x_train = np.concatenate([features(real_train), features(synth_train)])
    y_train = np.concatenate([real_train["label"], synth_train["label"]])
    sources = np.array(["real"] * len(real_train) + ["synthetic"] * len(synth_train)) if recipe.balance_sources else None
    x_val, y_val = features(real_val), real_val["label"].to_numpy()
    best = None
    for c in recipe.c_grid:  # chosen on validation only, ties to the stronger regularisation
        candidate = fit_classifier(x_train, y_train, c, sources)
        scores = candidate.score(x_val)
        t = choose_threshold(scores, y_val)
        value = min(np.nan_to_num(precision_recall(scores, y_val, t)))
        if best is None or value > best[0] + 1e-12:
            best = (value, c, candidate, t, scores)
    _, chosen_c, classifier, threshold, val_scores = best
    test_scores, synth_scores = classifier.score(features(real_test)), classifier.score(features(synth_test))
    train_scores = classifier.score(x_train)

    def by_kind(table: pd.DataFrame, scores: np.ndarray) -> dict:
        out = {"all": measure(scores, table["label"].to_numpy(), threshold)}
        frames = table["kind"].isin(["frame", "free_patch"]).to_numpy()
        out["frames_vs_free_patches"] = measure(scores[frames], table["label"].to_numpy()[frames], threshold)
        patches = table["kind"].isin(["nerve_patch", "free_patch"]).to_numpy()
        out["nerve_vs_free_patches"] = measure(scores[patches], table["label"].to_numpy()[patches], threshold)
        return out

    synth_planes = {plane: measure(synth_scores[(synth_test["plane"] == plane).to_numpy()],
                                   synth_test.loc[synth_test["plane"] == plane, "label"].to_numpy(), threshold)
                    for plane in sorted(synth_test["plane"].unique())}
    entry = {
        "score": "logistic regression on the shipped segmenter's pooled bottleneck (mean, max), its first decoder "
                 "level averaged under the probability map, and the map's peak, largest-component area share "
                 "and mean probability; no flip TTA",
        "threshold": round(float(threshold), 6),
        "weights_sha256": card["weights_sha256"],
        "threshold_rule": "maximises min(precision, recall) on the usgra-seg validation images and their patches",
        "classifier": classifier.to_dict(),
        "recipe": asdict(recipe),
        "c": chosen_c,
        "train": measure(train_scores, y_train, threshold),
        "usgra_val": by_kind(real_val, val_scores),
        "usgra_test": by_kind(real_test, test_scores),
        "synthetic_heldout": {"all": measure(synth_scores, synth_test["label"].to_numpy(), threshold), **synth_planes},
    }
    log(f"presence threshold {threshold:.4f}; usgra test {entry['usgra_test']['all']}; "
        f"synthetic held-out {entry['synthetic_heldout']['all']}")
    return entry


# -- checks shown by stage 03 ------------------------------------------------------------------


def check_row(data: str, scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict:
    """One row of the presence table: what was scored, counts, precision and recall."""
    return {"data": data, **measure(scores, labels, threshold)}


def usgra_presence_check(presence: Presence, root: str | Path, recipe: CalibrationRecipe = CalibrationRecipe()) -> pd.DataFrame:
    """Presence precision/recall on the usgra-seg test images and patches cut from them (never fitted on).

    Rows: test frames vs nerve-free patches (the goal's set), nerve patches vs nerve-free patches
    (one scale for both classes), and all of them together.
    """
    image_paths, mask_paths = usgra_pairs(root, "test")
    samples = usgra_samples([read_gray(p) for p in image_paths],
                            [read_mask(p, USGRA_NERVE_LABEL) for p in mask_paths], recipe, TEST_SEED_OFFSET)
    scores, labels = presence.scores(list(samples["image"])), samples["label"].to_numpy()
    rows = []
    for name, kinds in (("usgra-seg test frames vs nerve-free patches", ("frame", "free_patch")),
                        ("usgra-seg test nerve patches vs nerve-free patches", ("nerve_patch", "free_patch")),
                        ("usgra-seg test, all", ("frame", "nerve_patch", "free_patch"))):
        keep = samples["kind"].isin(kinds).to_numpy()
        rows.append(check_row(name, scores[keep], labels[keep], presence.threshold))
    return pd.DataFrame(rows)


def run_presence_check(crops: pd.DataFrame, threshold: float, participants: Sequence[str] | None = None) -> pd.DataFrame:
    """Presence precision/recall on a run's kept frames with a true mask (label: the mask shows a nerve).

    ``participants`` restricts to held-out participants (those the segmenter was not fine-tuned on).
    Rows per plane and all: the presence score alone, and the stage's final decision (a crop was cut:
    area rule and presence rule together). Empty when no scored frame has a true mask.
    """
    from ctslib import PLANES
    from ctslib.common.handoff import as_bool

    true_area = pd.to_numeric(crops["true_nerve_area_px"], errors="coerce")
    part = crops[true_area.notna()]
    if participants is not None:
        part = part[part["participant_id"].astype(str).isin([str(p) for p in participants])]
    rows = []
    for plane in [*PLANES, "all"]:
        sub = part if plane == "all" else part[part["plane"] == plane]
        if sub.empty:
            continue
        labels = pd.to_numeric(sub["true_nerve_area_px"]).gt(0).to_numpy()
        scores = pd.to_numeric(sub["presence_score"], errors="coerce").to_numpy()
        if np.isfinite(scores).all():
            rows.append({"plane": plane, "decision": "presence score", **measure(scores, labels, threshold)})
        rows.append({"plane": plane, "decision": "crop cut (area + presence)",
                     **measure(as_bool(sub["nerve_found"]).to_numpy().astype(float), labels, 0.5)})
    return pd.DataFrame(rows, columns=["plane", "decision", "n_positive", "n_negative", "precision", "recall"])


def main(argv: list[str] | None = None) -> int:
    from ctslib.nerve import pretrained
    from ctslib.common.io import write_json
    from ctslib.common.paths import USGRA_SEG_DIR

    parser = argparse.ArgumentParser(prog="python -m ctslib.nerve.presence", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("calibrate", help="fit the presence score and choose its threshold; writes the card's `presence`")
    c.add_argument("--usgra", type=Path, default=None, help="usgra-seg folder (default: ../shared/data/real/usgra-seg)")
    c.add_argument("--dry-run", action="store_true", help="print the entry, leave the card as it is")
    args = parser.parse_args(argv)
    root = args.usgra or USGRA_SEG_DIR
    if not (Path(root) / "dataset").is_dir():
        raise InputError("usgra-seg not found (calibration needs its train and test splits)", file=root)
    entry = calibrate(Path(root))
    if not args.dry_run:
        card = pretrained.read_card()
        card["presence"] = entry
        write_json(pretrained.SHIPPED_CARD, card)
        print(f"wrote presence calibration to {pretrained.SHIPPED_CARD.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
