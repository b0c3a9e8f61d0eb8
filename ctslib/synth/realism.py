"""How close are synthetic frames to real ultrasound? Image statistics and a domain classifier.

Synthetic frames (a generated dataset's good frames with the nerve in view) are compared with real
nerve ultrasound (the public usgra-seg images, label 1 = nerve) on what a sonographer and a model
both see, each inside the nerve mask and in the background around it:

* grey-level histograms (Wasserstein-1 distance of the pooled histograms, grey levels in [0, 1]);
* speckle: Nakagami m (moment estimator ``E[A²]² / Var(A²)``) and speckle SNR (mean / SD) in small
  patches. They are computed on the *displayed* (log-compressed) grey levels, as both domains are
  stored that way: not the physical m of the envelope, but the same operation on both sides;
* nerve-to-background contrast: mean grey level inside the nerve over a ring around it, in dB;
* texture: grey-level co-occurrence (GLCM) contrast and homogeneity of neighbouring pixels.

Every image is first cut to its image area (usgra-seg images are letterboxed with exact zeros) and
resized to one square working size, as stage 02 resizes every frame: the statistics then describe
what the pipeline's models see. ``realism_table`` pools them per domain; ``domain_auc`` trains a
logistic regression to tell the domains apart from per-image features, with cross-validation
grouped by source (a synthetic participant, a real image).

One concern, kept whole: the statistics, the classifier and the two readers all work on one
``FrameSet`` and one ``Geometry``, and the page reads top to bottom as the measurement in docs/realism.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from ctslib.common.errors import InputError
from ctslib.data.images import read_gray, read_mask
from ctslib.data.usgra import USGRA_NERVE_LABEL, usgra_pairs

SYNTHETIC, REAL = "synthetic", "real"
HIST_BINS = 64
"""Bins of the pooled grey-level histograms over [0, 1]."""
PAD_LEVEL = 2
"""8-bit level at or below which a pixel counts as letterbox padding."""
PAD_SHARE = 0.9
"""Rows/columns with at least this share of padding pixels are padding (scale ticks and labels may sit in the bar)."""
GLCM_LEVELS = 16
"""Grey levels the GLCM quantises to (coarse enough that speckle does not leave every pair unique)."""
RAYLEIGH_SNR = float(np.sqrt(np.pi / (4 - np.pi)))
"""Speckle SNR of fully developed speckle on the envelope (1.91)."""


@dataclass(frozen=True)
class FrameSet:
    """Images of one domain at the working size: grey levels in [0, 1], 0/1 nerve masks, a group per image."""

    domain: str
    images: list[np.ndarray]
    masks: list[np.ndarray]
    groups: list[str]
    names: list[str]

    def __post_init__(self) -> None:
        n = len(self.images)
        if not (len(self.masks) == len(self.groups) == len(self.names) == n):
            raise ValueError("images, masks, groups and names must have one entry per image")


@dataclass(frozen=True)
class Regions:
    """Pixel regions of one image: the nerve, the background (away from it) and a ring around the nerve."""

    nerve: np.ndarray
    background: np.ndarray
    ring: np.ndarray


# -- preparing images -----------------------------------------------------------------------------


def image_area(image: np.ndarray, pad_level: int = PAD_LEVEL, pad_share: float = PAD_SHARE) -> tuple[int, int, int, int]:
    """Bounding box (y0, y1, x0, x1) of the rows and columns that are not letterbox padding."""
    dark = image <= pad_level
    rows = np.flatnonzero(dark.mean(axis=1) < pad_share)
    cols = np.flatnonzero(dark.mean(axis=0) < pad_share)
    if rows.size == 0 or cols.size == 0:
        return 0, image.shape[0], 0, image.shape[1]
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def prepare(image: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut an 8-bit image and its mask to the image area, resize to ``size``², grey levels to [0, 1]."""
    if image.shape != mask.shape:
        raise ValueError(f"image {image.shape} and mask {mask.shape} differ in shape")
    y0, y1, x0, x1 = image_area(image)
    small = cv2.resize(image[y0:y1, x0:x1], (size, size), interpolation=cv2.INTER_AREA).astype(np.float64) / 255.0
    small_mask = cv2.resize(mask[y0:y1, x0:x1].astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)
    return small, (small_mask > 0).astype(np.uint8)


def regions(mask: np.ndarray, margin: int, ring_width: int) -> Regions:
    """Nerve = mask; ring = ``ring_width`` px just outside it; background = beyond ``margin`` px of it."""
    nerve = mask > 0
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * ring_width + 1, 2 * ring_width + 1))
    ring = (cv2.dilate(nerve.astype(np.uint8), kernel) > 0) & ~nerve
    far = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1))
    background = ~(cv2.dilate(nerve.astype(np.uint8), far) > 0)
    return Regions(nerve=nerve, background=background, ring=ring)


# -- statistics -----------------------------------------------------------------------------------


def histogram(values: np.ndarray, bins: int = HIST_BINS) -> np.ndarray:
    """Counts of grey levels in [0, 1] over ``bins`` equal bins."""
    counts, _ = np.histogram(np.clip(values, 0.0, 1.0), bins=bins, range=(0.0, 1.0))
    return counts.astype(np.float64)


def wasserstein(counts_a: np.ndarray, counts_b: np.ndarray) -> float:
    """Wasserstein-1 distance (grey units in [0, 1]) between two histograms on the same [0, 1] bins."""
    if counts_a.sum() <= 0 or counts_b.sum() <= 0:
        return float("nan")
    width = 1.0 / len(counts_a)
    cdf_a, cdf_b = np.cumsum(counts_a) / counts_a.sum(), np.cumsum(counts_b) / counts_b.sum()
    return float(np.abs(cdf_a - cdf_b).sum() * width)


def nakagami_m(values: np.ndarray) -> float:
    """Moment estimate of the Nakagami shape m = E[A²]² / Var(A²) of amplitudes A (NaN when constant)."""
    power = np.asarray(values, np.float64).ravel() ** 2
    var = power.var()
    return float(power.mean() ** 2 / var) if var > 0 else float("nan")


def speckle_snr(values: np.ndarray) -> float:
    """Speckle SNR, mean / SD of the amplitudes (NaN when constant)."""
    values = np.asarray(values, np.float64).ravel()
    sd = values.std()
    return float(values.mean() / sd) if sd > 0 else float("nan")


def patch_stats(image: np.ndarray, region: np.ndarray, patch: int, floor: float = 0.02) -> tuple[float, float]:
    """Median Nakagami m and speckle SNR over the ``patch``² tiles lying wholly inside ``region``.

    Tiles darker than ``floor`` on average (shadow, anechoic lumen) have no speckle to measure and are
    skipped; NaN when no tile qualifies.
    """
    ms, snrs = [], []
    h, w = image.shape
    for y in range(0, h - patch + 1, patch):
        for x in range(0, w - patch + 1, patch):
            if not region[y:y + patch, x:x + patch].all():
                continue
            tile = image[y:y + patch, x:x + patch]
            if tile.mean() < floor:
                continue
            m, snr = nakagami_m(tile), speckle_snr(tile)
            if np.isfinite(m) and np.isfinite(snr):
                ms.append(m)
                snrs.append(snr)
    if not ms:
        return float("nan"), float("nan")
    return float(np.median(ms)), float(np.median(snrs))


def contrast_db(image: np.ndarray, inside: np.ndarray, around: np.ndarray) -> float:
    """Mean grey level inside over mean around, in dB (20 log10); NaN when a region is empty or black."""
    if not inside.any() or not around.any():
        return float("nan")
    a, b = image[inside].mean(), image[around].mean()
    return float(20 * np.log10(a / b)) if a > 0 and b > 0 else float("nan")


def glcm_stats(image: np.ndarray, region: np.ndarray, levels: int = GLCM_LEVELS) -> tuple[float, float]:
    """GLCM contrast Σp(i,j)(i-j)² and homogeneity Σp(i,j)/(1+(i-j)²) of right and down neighbours.

    Grey levels in [0, 1] are quantised to ``levels``; only pairs with both pixels in ``region``
    count. NaN when there is no such pair.
    """
    q = np.minimum((np.clip(image, 0.0, 1.0) * levels).astype(np.int64), levels - 1)
    diffs = []
    for a, b, ra, rb in ((q[:, :-1], q[:, 1:], region[:, :-1], region[:, 1:]),
                         (q[:-1, :], q[1:, :], region[:-1, :], region[1:, :])):
        both = ra & rb
        diffs.append((a[both] - b[both]).astype(np.float64))
    d = np.concatenate(diffs)
    if d.size == 0:
        return float("nan"), float("nan")
    return float((d ** 2).mean()), float((1.0 / (1.0 + d ** 2)).mean())


# -- per image and per domain -----------------------------------------------------------------------


@dataclass(frozen=True)
class Geometry:
    """Sizes (pixels at the working size) of the patches, the ring and the background margin."""

    patch: int
    ring: int
    margin: int

    @classmethod
    def for_size(cls, size: int) -> "Geometry":
        """Scaled with the working size: 12 / 8 / 16 px at 256 px."""
        return cls(patch=max(4, round(size / 21)), ring=max(2, size // 32), margin=max(2, size // 16))


IMAGE_FEATURES = [
    "mean_image", "sd_image", "mean_nerve", "mean_background",
    "m_nerve", "m_background", "snr_nerve", "snr_background", "contrast_db",
    "glcm_contrast_nerve", "glcm_contrast_background", "glcm_homogeneity_nerve", "glcm_homogeneity_background",
]
"""Per-image statistics (also the domain classifier's features, with a coarse histogram)."""


def image_stats(image: np.ndarray, mask: np.ndarray, geometry: Geometry) -> dict[str, float]:
    """The ``IMAGE_FEATURES`` of one prepared image (grey levels in [0, 1]) and its nerve mask."""
    reg = regions(mask, geometry.margin, geometry.ring)
    m_n, snr_n = patch_stats(image, reg.nerve, geometry.patch)
    m_b, snr_b = patch_stats(image, reg.background, geometry.patch)
    gc_n, gh_n = glcm_stats(image, reg.nerve)
    gc_b, gh_b = glcm_stats(image, reg.background)
    nan = float("nan")
    return {
        "mean_image": float(image.mean()), "sd_image": float(image.std()),
        "mean_nerve": float(image[reg.nerve].mean()) if reg.nerve.any() else nan,
        "mean_background": float(image[reg.background].mean()) if reg.background.any() else nan,
        "m_nerve": m_n, "m_background": m_b, "snr_nerve": snr_n, "snr_background": snr_b,
        "contrast_db": contrast_db(image, reg.nerve, reg.ring),
        "glcm_contrast_nerve": gc_n, "glcm_contrast_background": gc_b,
        "glcm_homogeneity_nerve": gh_n, "glcm_homogeneity_background": gh_b,
    }


def frame_table(frames: FrameSet, geometry: Geometry) -> pd.DataFrame:
    """One row per image: domain, group, name and ``IMAGE_FEATURES``."""
    rows = [{"domain": frames.domain, "group": g, "name": n, **image_stats(i, m, geometry)}
            for i, m, g, n in zip(frames.images, frames.masks, frames.groups, frames.names)]
    return pd.DataFrame(rows, columns=["domain", "group", "name", *IMAGE_FEATURES])


def pooled_histograms(frames: FrameSet, geometry: Geometry) -> dict[str, np.ndarray]:
    """Grey-level histograms of every pixel of the domain, per region (image, nerve, background)."""
    out = {"image": np.zeros(HIST_BINS), "nerve": np.zeros(HIST_BINS), "background": np.zeros(HIST_BINS)}
    for image, mask in zip(frames.images, frames.masks):
        reg = regions(mask, geometry.margin, geometry.ring)
        out["image"] += histogram(image)
        out["nerve"] += histogram(image[reg.nerve])
        out["background"] += histogram(image[reg.background])
    return out


MEANINGS = {
    "grey-level histogram": "Wasserstein-1 in grey units (0 = same histogram, 0.1 = a tenth of the grey scale shifted); "
                            "a gap means other brightness/gain or dynamic range",
    "Nakagami m": "higher = more regular, smoother speckle on displayed grey levels; lower = sparse, strong scatterers",
    "speckle SNR": f"mean/SD in a patch (fully developed speckle on the envelope: {RAYLEIGH_SNR:.2f}); "
                   "higher = smoother, less speckled texture",
    "nerve-to-ring contrast (dB)": "how much darker (<0) or brighter (>0) the nerve is than tissue just around it; "
                                   "a gap changes how easily a model finds the nerve",
    "GLCM contrast": "mean squared grey-level step between neighbours (16 levels); higher = coarser, grainier texture",
    "GLCM homogeneity": "1 = neighbours alike (smooth); lower = grainier texture",
    "nerve share of the image area": "nerve area over the image area (bars cut off); a gap means nerves at other "
                                     "pixel scales than the model meets in real images",
}
"""What a gap in each statistic means (the ``meaning`` column of ``realism_table``)."""


def _ratio(a: float, b: float) -> float:
    return float(a / b) if np.isfinite(a) and np.isfinite(b) and b != 0 else float("nan")


def realism_table(synthetic: FrameSet, real: FrameSet, geometry: Geometry,
                  tables: tuple[pd.DataFrame, pd.DataFrame] | None = None) -> pd.DataFrame:
    """Synthetic vs real, one row per statistic and region.

    Columns: statistic, region, synthetic, real, gap, gap_measure, meaning. Histogram rows give the
    pooled mean grey level and the Wasserstein-1 distance of the pooled histograms; speckle and
    texture rows the median over images and the ratio synthetic / real; contrast the difference in dB;
    the nerve's share of the image area the median over images with a nerve and the ratio.

    Args:
        tables: the two domains' ``frame_table`` if already computed (saves recomputing them).

    Raises:
        ValueError: a domain has no image.
    """
    if not synthetic.images or not real.images:
        raise ValueError("both domains need at least one image")
    syn_t, real_t = tables if tables is not None else (frame_table(synthetic, geometry), frame_table(real, geometry))
    syn_h, real_h = pooled_histograms(synthetic, geometry), pooled_histograms(real, geometry)
    centres = (np.arange(HIST_BINS) + 0.5) / HIST_BINS
    rows = []
    for region in ("image", "nerve", "background"):
        s_mean = float((syn_h[region] * centres).sum() / syn_h[region].sum()) if syn_h[region].sum() else float("nan")
        r_mean = float((real_h[region] * centres).sum() / real_h[region].sum()) if real_h[region].sum() else float("nan")
        rows.append(("grey-level histogram", region, s_mean, r_mean, wasserstein(syn_h[region], real_h[region]),
                     "Wasserstein-1 (pooled histograms; values: mean grey level)"))
    for statistic, prefix in (("Nakagami m", "m"), ("speckle SNR", "snr"), ("GLCM contrast", "glcm_contrast"),
                              ("GLCM homogeneity", "glcm_homogeneity")):
        for region in ("nerve", "background"):
            s, r = float(syn_t[f"{prefix}_{region}"].median()), float(real_t[f"{prefix}_{region}"].median())
            rows.append((statistic, region, s, r, _ratio(s, r), "ratio synthetic / real (medians over images)"))
    s, r = float(syn_t["contrast_db"].median()), float(real_t["contrast_db"].median())
    rows.append(("nerve-to-ring contrast (dB)", "nerve vs ring", s, r, s - r,
                 "difference synthetic - real, dB (medians over images)"))
    s, r = (float(np.median([m.mean() for m in frames.masks if m.any()] or [np.nan])) for frames in (synthetic, real))
    rows.append(("nerve share of the image area", "nerve", s, r, _ratio(s, r),
                 "ratio synthetic / real (medians over images with a nerve)"))
    table = pd.DataFrame(rows, columns=["statistic", "region", "synthetic", "real", "gap", "gap_measure"])
    table["meaning"] = table["statistic"].map(MEANINGS)
    return table


# -- the domain classifier ------------------------------------------------------------------------------


def domain_features(frames: FrameSet, table: pd.DataFrame, bins: int = 16) -> np.ndarray:
    """Per-image features: ``IMAGE_FEATURES`` and a ``bins``-bin grey-level histogram (shares) of the image."""
    hists = np.stack([histogram(i, bins) / i.size for i in frames.images]) if frames.images else np.zeros((0, bins))
    return np.hstack([table[IMAGE_FEATURES].to_numpy(np.float64), hists])


def feature_names(bins: int = 16) -> list[str]:
    """Names of ``domain_features`` columns."""
    return [*IMAGE_FEATURES, *(f"hist_{k / bins:.2f}-{(k + 1) / bins:.2f}" for k in range(bins))]


@dataclass(frozen=True)
class DomainResult:
    """Grouped cross-validated synthetic-vs-real classifier: fold AUCs, out-of-fold scores, coefficients."""

    fold_auc: list[float]
    scores: np.ndarray         # out-of-fold P(synthetic) per image, in input order
    labels: np.ndarray         # 1 = synthetic, 0 = real
    groups: np.ndarray         # the cross-validation group of each image
    coefficients: pd.DataFrame  # feature, coefficient (standardised features, fitted on all images), by |coef|
    single: pd.DataFrame | None = None  # feature, auc: each feature alone (``feature_auc``)

    @property
    def auc_mean(self) -> float:
        return float(np.mean(self.fold_auc))

    @property
    def auc_sd(self) -> float:
        return float(np.std(self.fold_auc, ddof=1)) if len(self.fold_auc) > 1 else float("nan")


def _model(seed: int):
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    # median imputation: a frame without a qualifying nerve patch has NaN speckle features
    return make_pipeline(SimpleImputer(strategy="median"), StandardScaler(),
                         LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000, random_state=seed))


def domain_auc(features: np.ndarray, labels: np.ndarray, groups: Sequence[str], names: Sequence[str],
               *, folds: int = 5, seed: int = 0) -> DomainResult:
    """ROC AUC of a logistic regression telling label 1 from 0, cross-validated with groups kept whole.

    Raises:
        ValueError: fewer groups per class than ``folds``, or a feature count that differs from ``names``.
    """
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedGroupKFold

    features, labels, groups = np.asarray(features, np.float64), np.asarray(labels, int), np.asarray(groups)
    if features.shape[1] != len(names):
        raise ValueError(f"{features.shape[1]} feature columns but {len(names)} names")
    for label in (0, 1):
        n = len(np.unique(groups[labels == label]))
        if n < folds:
            raise ValueError(f"class {label} has {n} groups, fewer than {folds} folds")
    # a column that is NaN everywhere would be dropped by the imputer and misalign the coefficients
    features = np.where(np.isnan(features).all(axis=0), 0.0, features)
    scores = np.full(len(labels), np.nan)
    aucs = []
    for train, test in StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed).split(features, labels, groups):
        model = _model(seed).fit(features[train], labels[train])
        scores[test] = model.predict_proba(features[test])[:, 1]
        if len(np.unique(labels[test])) == 2:
            aucs.append(float(roc_auc_score(labels[test], scores[test])))
    full = _model(seed).fit(features, labels)
    coef = pd.DataFrame({"feature": list(names), "coefficient": full[-1].coef_[0]})
    coef = coef.reindex(coef["coefficient"].abs().sort_values(ascending=False).index).reset_index(drop=True)
    return DomainResult(fold_auc=aucs, scores=scores, labels=labels, groups=groups, coefficients=coef,
                        single=feature_auc(features, labels, names))


def _top_distinct(indices: np.ndarray, keys: np.ndarray, groups: np.ndarray, n: int) -> np.ndarray:
    """The first ``n`` of ``indices`` ordered by ``keys``, at most one per group (near-duplicates show nothing new)."""
    out, seen = [], set()
    for k in indices[np.argsort(keys, kind="stable")]:
        if groups[k] not in seen:
            seen.add(groups[k])
            out.append(k)
        if len(out) == n:
            break
    return np.asarray(out, int)


def feature_auc(features: np.ndarray, labels: np.ndarray, names: Sequence[str]) -> pd.DataFrame:
    """ROC AUC of each feature alone (images where it is defined), strongest first.

    Above 0.5: higher in label 1 (synthetic); below: lower. Correlated features share the weight of a
    logistic regression's coefficients, so this says more plainly which single statistic separates the domains.
    """
    from sklearn.metrics import roc_auc_score

    features, labels = np.asarray(features, np.float64), np.asarray(labels, int)
    rows = []
    for k, name in enumerate(names):
        ok = np.isfinite(features[:, k])
        both = len(np.unique(labels[ok])) == 2
        rows.append({"feature": name, "auc": float(roc_auc_score(labels[ok], features[ok, k])) if both else float("nan")})
    table = pd.DataFrame(rows)
    return table.reindex((table["auc"] - 0.5).abs().sort_values(ascending=False).index).reset_index(drop=True)


def extremes(result: DomainResult, n: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the ``n`` most synthetic-looking real images and the ``n`` most real-looking synthetic ones.

    At most one image per group (a synthetic participant, a real image).
    """
    real_idx, syn_idx = np.flatnonzero(result.labels == 0), np.flatnonzero(result.labels == 1)
    real_top = _top_distinct(real_idx, -result.scores[real_idx], result.groups, n)
    syn_top = _top_distinct(syn_idx, result.scores[syn_idx], result.groups, n)
    return real_top, syn_top


def plot_extremes(synthetic: FrameSet, real: FrameSet, result: DomainResult, n: int = 4):
    """Two rows: the most synthetic-looking real frames, the most real-looking synthetic frames (nerve outlined)."""
    import matplotlib.pyplot as plt

    real_top, syn_top = extremes(result, n)
    n_real = len(real.images)
    cols = max(len(real_top), len(syn_top), 1)
    fig, axes = plt.subplots(2, cols, figsize=(2.6 * cols, 6.4), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for row, (indices, frames, offset, label) in enumerate(
            ((real_top, real, 0, "real"), (syn_top, synthetic, n_real, "synthetic"))):
        for col, k in enumerate(indices):
            image, mask = frames.images[k - offset], frames.masks[k - offset]
            axes[row, col].imshow(image, cmap="gray", vmin=0, vmax=1)
            if mask.any():
                axes[row, col].contour(mask, levels=[0.5], colors="yellow", linewidths=0.7)
            axes[row, col].set_title(f"{label}\nP(synthetic) {result.scores[k]:.2f}", fontsize=8)
    axes[0, 0].text(-0.08, 0.5, "most synthetic-looking\nreal frames", transform=axes[0, 0].transAxes,
                    rotation=90, ha="right", va="center", fontsize=8)
    axes[1, 0].text(-0.08, 0.5, "most real-looking\nsynthetic frames", transform=axes[1, 0].transAxes,
                    rotation=90, ha="right", va="center", fontsize=8)
    return fig


def compare(synthetic: FrameSet, real: FrameSet, size: int, *, folds: int = 5, seed: int = 0,
            bins: int = 16) -> tuple[pd.DataFrame, DomainResult]:
    """The realism table and the grouped domain classifier for two prepared frame sets at ``size``.

    ``folds`` shrinks to the number of groups of the smaller side (a smoke cohort has few participants).

    Raises:
        ValueError: a domain has fewer than two groups (no grouped cross-validation possible).
    """
    folds = min(folds, len(set(synthetic.groups)), len(set(real.groups)))
    if folds < 2:
        raise ValueError("each domain needs images of at least two groups for grouped cross-validation")
    geometry = Geometry.for_size(size)
    syn_t, real_t = frame_table(synthetic, geometry), frame_table(real, geometry)
    table = realism_table(synthetic, real, geometry, (syn_t, real_t))
    # real first, then synthetic: the order ``plot_extremes`` indexes by
    features = np.vstack([domain_features(real, real_t, bins), domain_features(synthetic, syn_t, bins)])
    labels = np.r_[np.zeros(len(real.images), int), np.ones(len(synthetic.images), int)]
    groups = [f"real:{g}" for g in real.groups] + [f"synthetic:{g}" for g in synthetic.groups]
    return table, domain_auc(features, labels, groups, feature_names(bins), folds=folds, seed=seed)


# -- reading the two domains -------------------------------------------------------------------------------


def read_usgra(root: str | Path, size: int, subsets: Sequence[str] = ("train", "test")) -> FrameSet:
    """Every usgra-seg image with its nerve mask (label 1), prepared at ``size``; one group per image.

    Raises:
        InputError: the folder is missing or an image has no readable mask (from ``ctslib.data.usgra`` and ``ctslib.data.images``).
    """
    images, masks, names = [], [], []
    for subset in subsets:
        image_paths, mask_paths = usgra_pairs(root, subset)
        for ip, mp in zip(image_paths, mask_paths):
            image, mask = read_gray(ip), read_mask(mp, USGRA_NERVE_LABEL)
            if image.shape != mask.shape:
                raise InputError(f"mask shape {mask.shape} differs from its image's {image.shape}", file=mp)
            small, small_mask = prepare(image, mask, size)
            images.append(small)
            masks.append(small_mask)
            names.append(f"{subset}/{ip.name}")
    # no participant ids in usgra-seg: each image is its own group
    return FrameSet(REAL, images, masks, list(names), names)


def read_synthetic(data_dir: str | Path, size: int, n: int, seed: int,
                   planes: Sequence[str] = ("transverse",)) -> FrameSet:
    """Up to ``n`` good synthetic frames with the nerve in view, drawn at random, prepared at ``size``.

    Transverse frames only by default: usgra-seg shows nerves in cross-section, as the transverse plane does.

    Groups are participants (a wrist's frames are near-duplicates, and so are a participant's two wrists).

    Raises:
        InputError: not a synthetic dataset, or a video/mask file is missing.
    """
    from ctslib.common.paths import DataLayout
    from ctslib.common.seed import rng
    from ctslib.synth.summary import read_truth

    layout = DataLayout(Path(data_dir))
    frames, _ = read_truth(data_dir)
    nerve_in_view = frames["nerve_in_view"].astype(str).str.lower().isin(["true", "1"])
    good = frames[(frames["bad_reason"] == "") & nerve_in_view & frames["plane"].isin(list(planes))]
    if good.empty:
        raise InputError("no good frame with the nerve in view", file=layout.truth_dir / "frames.csv")
    pick = good.iloc[np.sort(rng(seed, "realism").choice(len(good), size=min(n, len(good)), replace=False))]
    images, masks, groups, names = [], [], [], []
    for stem, rows in pick.groupby("video", sort=True):
        path = layout.find_video(str(stem))
        if path is None:
            raise InputError(f"no video for {stem}", file=layout.videos_dir)
        with np.load(layout.masks_dir / f"{stem}.npz") as npz:
            index, stack = npz["index"], npz["mask"]
        wanted = set(rows["source_index"].astype(int))
        cap = cv2.VideoCapture(str(path))
        try:
            k = 0
            while wanted and k <= max(wanted):
                ok, frame = cap.read()
                if not ok:
                    raise InputError(f"cannot read frame {k}", file=path)
                if k in wanted:
                    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
                    mask = stack[int(np.searchsorted(index, k))] == 1
                    small, small_mask = prepare(gray, mask.astype(np.uint8), size)
                    images.append(small)
                    masks.append(small_mask)
                    groups.append(str(stem).split("_")[0])
                    names.append(f"{stem}#{k}")
                k += 1
        finally:
            cap.release()
    return FrameSet(SYNTHETIC, images, masks, groups, names)
