"""Tests of ctslib.synth.realism: image statistics on constructed images, the domain classifier, real usgra-seg."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import requires_usgra
from ctslib.common.paths import USGRA_SEG_DIR
from ctslib.synth import realism
from ctslib.synth.config import SynthConfig
from ctslib.synth.dataset import ensure_dataset

TINY = SynthConfig(seed=13, n_participants=4, grade_counts=(2, 2, 2, 2), duration_s=3.0, source_fps=10.0,
                   frame_size=96, workers=1)


@pytest.fixture(scope="module")
def synthetic_smoke(tmp_path_factory):
    """A tiny generated dataset (4 participants, 3 s videos)."""
    return ensure_dataset(tmp_path_factory.mktemp("synth") / "tiny", TINY, progress=False)

# -- statistics with known answers ----------------------------------------------------------------


def rayleigh(shape: tuple[int, int], seed: int, scale: float = 0.2) -> np.ndarray:
    """Fully developed speckle: the envelope of circular complex Gaussian scatterers."""
    rng = np.random.default_rng(seed)
    return np.abs(rng.normal(0, scale, shape) + 1j * rng.normal(0, scale, shape))


def test_nakagami_m_and_snr_of_rayleigh_speckle():
    envelope = rayleigh((400, 400), 0)
    assert realism.nakagami_m(envelope) == pytest.approx(1.0, abs=0.03)
    assert realism.speckle_snr(envelope) == pytest.approx(realism.RAYLEIGH_SNR, abs=0.03)
    assert realism.RAYLEIGH_SNR == pytest.approx(1.913, abs=1e-3)
    # a Nakagami amplitude with m = 3 (sqrt of a gamma power with shape 3): the estimator finds 3
    power = np.random.default_rng(1).gamma(3.0, 1.0 / 3.0, 200_000)
    assert realism.nakagami_m(np.sqrt(power)) == pytest.approx(3.0, rel=0.05)
    assert np.isnan(realism.nakagami_m(np.full(10, 0.5))) and np.isnan(realism.speckle_snr(np.zeros(10)))


def test_patch_stats_use_only_tiles_inside_the_region_and_skip_black_ones():
    image = rayleigh((64, 64), 2)
    image[:, 32:] = 0.5                      # constant right half: no speckle (m and SNR undefined)
    left = np.zeros((64, 64), bool)
    left[:, :32] = True
    m, snr = realism.patch_stats(image, left, 8)
    assert m == pytest.approx(1.0, abs=0.35) and snr == pytest.approx(1.91, abs=0.5)
    dark = np.zeros((64, 64))
    assert all(np.isnan(v) for v in realism.patch_stats(dark, np.ones((64, 64), bool), 8))
    tiny = np.zeros((64, 64), bool)
    tiny[:4, :4] = True                      # smaller than a tile: nothing qualifies
    assert all(np.isnan(v) for v in realism.patch_stats(image, tiny, 8))


def test_glcm_of_uniform_checkerboard_and_stripes():
    region = np.ones((32, 32), bool)
    assert realism.glcm_stats(np.full((32, 32), 0.4), region) == pytest.approx((0.0, 1.0))
    checker = (np.indices((32, 32)).sum(axis=0) % 2).astype(float)   # 0/1: levels 0 and 15 alternate everywhere
    contrast, homogeneity = realism.glcm_stats(checker, region)
    assert contrast == pytest.approx(15 ** 2) and homogeneity == pytest.approx(1 / (1 + 15 ** 2))
    stripes = np.tile([0.0, 1.0], (32, 16))                          # vertical stripes: only right neighbours differ
    assert realism.glcm_stats(stripes, region)[0] == pytest.approx(15 ** 2 * (32 * 31) / (2 * 32 * 31))
    assert all(np.isnan(v) for v in realism.glcm_stats(checker, np.zeros((32, 32), bool)))


def test_contrast_of_a_brighter_disc_and_the_regions_around_it():
    image = np.full((96, 96), 0.25)
    mask = cv2.circle(np.zeros((96, 96), np.uint8), (48, 48), 15, 1, thickness=-1)
    image[mask > 0] = 0.5
    reg = realism.regions(mask, margin=10, ring_width=4)
    assert not (reg.ring & reg.nerve).any() and not (reg.background & reg.nerve).any()
    assert not (reg.background & reg.ring).any()                      # the ring lies inside the margin
    assert realism.contrast_db(image, reg.nerve, reg.ring) == pytest.approx(20 * np.log10(2))
    assert realism.contrast_db(image, np.zeros_like(reg.nerve), reg.ring) != realism.contrast_db(image, reg.nerve, reg.ring)


def test_histogram_distance_of_shifted_and_equal_images():
    a = realism.histogram(np.full(100, 0.2))
    b = realism.histogram(np.full(100, 0.7))
    assert realism.wasserstein(a, b) == pytest.approx(0.5, abs=1 / realism.HIST_BINS)
    assert realism.wasserstein(a, a) == 0.0
    assert np.isnan(realism.wasserstein(a, np.zeros_like(a)))


def test_image_area_cuts_letterbox_padding_with_a_tick_in_the_bar():
    image = np.zeros((100, 120), np.uint8)
    image[10:90, 20:110] = 100
    image[50, 5] = 255                        # a scale tick in the left bar is not image
    assert realism.image_area(image) == (10, 90, 20, 110)
    small, small_mask = realism.prepare(image, (image > 0).astype(np.uint8), 32)
    assert small.shape == small_mask.shape == (32, 32)
    assert small.min() == pytest.approx(100 / 255) and small_mask.all()
    with pytest.raises(ValueError):
        realism.prepare(image, np.zeros((10, 10), np.uint8), 32)


# -- the table and the domain classifier ------------------------------------------------------------


def speckle_set(domain: str, n: int, seed: int, *, nerve_level: float, scale: float, groups: int = 10,
                size: int = 64) -> realism.FrameSet:
    """Speckle images with a disc 'nerve' whose brightness and speckle scale are the knobs."""
    images, masks = [], []
    for k in range(n):
        env = rayleigh((size, size), seed * 1000 + k, scale)
        mask = cv2.circle(np.zeros((size, size), np.uint8), (size // 2, size // 2), size // 6, 1, thickness=-1)
        env[mask > 0] *= nerve_level
        images.append(np.clip(env, 0, 1))
        masks.append(mask)
    return realism.FrameSet(domain, images, masks, [f"g{k % groups}" for k in range(n)], [f"{domain}{k}" for k in range(n)])


def test_realism_table_has_every_row_and_sees_a_darker_nerve():
    syn = speckle_set("synthetic", 12, 1, nerve_level=0.5, scale=0.2)
    real = speckle_set("real", 12, 2, nerve_level=1.0, scale=0.2)
    geometry = realism.Geometry.for_size(64)
    table = realism.realism_table(syn, real, geometry)
    assert list(table.columns) == ["statistic", "region", "synthetic", "real", "gap", "gap_measure", "meaning"]
    assert len(table) == 13 and table["meaning"].notna().all()
    by = table.set_index(["statistic", "region"])
    assert by.loc[("nerve share of the image area", "nerve"), "gap"] == pytest.approx(1.0)  # the same disc in both
    wider = realism.FrameSet("real", real.images, [cv2.dilate(m, np.ones((5, 5), np.uint8)) for m in real.masks],
                             real.groups, real.names)
    share = realism.realism_table(syn, wider, geometry).set_index(["statistic", "region"])
    assert share.loc[("nerve share of the image area", "nerve"), "gap"] < 0.8  # real nerves now cover more
    contrast = by.loc[("nerve-to-ring contrast (dB)", "nerve vs ring")]
    assert contrast["synthetic"] < -4 and abs(contrast["real"]) < 1.5                   # half as bright: -6 dB
    assert by.loc[("grey-level histogram", "nerve"), "gap"] > 3 * by.loc[("grey-level histogram", "background"), "gap"]
    # speckle is Rayleigh in both: m and SNR match the theory and each other
    for region in ("nerve", "background"):
        assert by.loc[("Nakagami m", region), "real"] == pytest.approx(1.0, abs=0.4)
        assert by.loc[("speckle SNR", region), "gap"] == pytest.approx(1.0, abs=0.25)
    with pytest.raises(ValueError):
        realism.realism_table(syn, realism.FrameSet("real", [], [], [], []), geometry)


def test_domain_classifier_separates_different_sources_and_not_one_source():
    different = realism.compare(speckle_set("synthetic", 60, 3, nerve_level=0.5, scale=0.15),
                                speckle_set("real", 60, 4, nerve_level=1.0, scale=0.25), 64, seed=0)[1]
    assert len(different.fold_auc) == 5 and different.auc_mean > 0.9
    assert np.isfinite(different.scores).all()
    assert set(different.coefficients["feature"]) == set(realism.feature_names())
    same = realism.compare(speckle_set("synthetic", 60, 5, nerve_level=0.8, scale=0.2),
                           speckle_set("real", 60, 6, nerve_level=0.8, scale=0.2), 64, seed=0)[1]
    assert abs(same.auc_mean - 0.5) < 0.2


def test_extremes_pick_the_most_confusable_image_of_each_group():
    result = realism.DomainResult(fold_auc=[1.0], scores=np.array([0.9, 0.1, 0.8, 0.2, 0.3, 0.95]),
                                  labels=np.array([0, 0, 0, 1, 1, 1]),
                                  groups=np.array(["r0", "r1", "r0", "s0", "s0", "s1"]), coefficients=None)
    real_top, syn_top = realism.extremes(result, n=2)
    assert real_top.tolist() == [0, 1]     # index 2 (0.8) is another image of group r0
    assert syn_top.tolist() == [3, 5]


def test_domain_auc_refuses_too_few_groups():
    x = np.random.default_rng(0).normal(size=(20, 2))
    with pytest.raises(ValueError, match="groups"):
        realism.domain_auc(x, np.repeat([0, 1], 10), ["a"] * 10 + [f"b{k}" for k in range(10)], ["f1", "f2"])


def test_read_synthetic_takes_good_transverse_frames_grouped_by_participant(synthetic_smoke):
    frames = realism.read_synthetic(synthetic_smoke, 64, 20, seed=1)
    assert 0 < len(frames.images) <= 20
    assert all(i.shape == (64, 64) and 0 <= i.min() and i.max() <= 1 for i in frames.images)
    assert all(m.any() for m in frames.masks)                          # the nerve is in view
    assert all("transverse" in n for n in frames.names)
    assert {g for g in frames.groups} <= {n.split("_")[0] for n in frames.names}
    again = realism.read_synthetic(synthetic_smoke, 64, 20, seed=1)
    assert again.names == frames.names


# -- on real images ------------------------------------------------------------------------------


@requires_usgra
def test_table_builds_on_real_usgra_images(synthetic_smoke):
    real = realism.read_usgra(USGRA_SEG_DIR, 128, subsets=("test",))
    assert len(real.images) == 40 and len(set(real.groups)) == 40
    assert all(m.any() for m in real.masks)
    syn = realism.read_synthetic(synthetic_smoke, 128, 60, seed=0)
    table, result = realism.compare(syn, real, 128, seed=0)
    assert table[["synthetic", "real", "gap"]].notna().all().all()
    assert (table.loc[table["statistic"] == "Nakagami m", ["synthetic", "real"]] > 0).all().all()
    assert len(result.fold_auc) == 4 and 0.5 < result.auc_mean <= 1.0   # 4 participants: 4 folds


def test_compare_needs_two_groups_per_domain():
    one_group = speckle_set("synthetic", 6, 7, nerve_level=0.5, scale=0.2, groups=1)
    with pytest.raises(ValueError, match="two groups"):
        realism.compare(one_group, speckle_set("real", 6, 8, nerve_level=1.0, scale=0.2), 64)


def test_feature_auc_ranks_a_separating_feature_first():
    labels = np.repeat([0, 1], 20)
    noise = np.random.default_rng(0).normal(size=40)
    x = np.c_[np.full(40, 3.0), -labels + 0.01 * noise, noise]
    x[0, 2] = np.nan                          # an undefined value is left out, not counted
    table = realism.feature_auc(x, labels, ["constant", "lower_in_1", "noise"])
    assert table["feature"].iloc[0] == "lower_in_1" and table["auc"].iloc[0] == pytest.approx(0.0)
    auc = table.set_index("feature")["auc"]
    assert auc["constant"] == pytest.approx(0.5) and abs(auc["noise"] - 0.5) < 0.3
