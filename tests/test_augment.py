"""Tests of ctslib.nerve.augment: device-shift augmentation moves image and mask together, seeded."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from ctslib.nerve.augment import AugmentConfig, augment_batch, augment_pair

NO_INTENSITY = AugmentConfig(p_lowres=0.0, p_blur=0.0, p_speckle=0.0, noise_sd=(0.0, 0.0), gain=(1.0, 1.0),
                             gamma=(1.0, 1.0), contrast=(1.0, 1.0), depth_ramp=(0.0, 0.0), p_borders=0.0)
IDENTITY = replace(NO_INTENSITY, zoom_in=(1.0, 1.0), p_zoom_out=0.0, p_depth_crop=0.0, aspect=(1.0, 1.0), p_flip=0.0)


def ellipse_pair(seed: int = 0, shape: tuple[int, int] = (90, 120)) -> tuple[np.ndarray, np.ndarray]:
    gen = np.random.default_rng(seed)
    mask = np.zeros(shape, np.uint8)
    cv2.ellipse(mask, (40, 50), (18, 10), 15, 0, 360, 1, thickness=-1)
    image = gen.uniform(0.05, 0.3, shape).astype(np.float32)
    image[mask > 0] = gen.uniform(0.75, 1.0, int(mask.sum()))
    return image, mask


def test_same_seed_same_pair_other_seed_other_pair():
    image, mask = ellipse_pair()
    a = augment_pair(image, mask, 48, np.random.default_rng(3))
    b = augment_pair(image, mask, 48, np.random.default_rng(3))
    c = augment_pair(image, mask, 48, np.random.default_rng(4))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    assert a[0].shape == a[1].shape == (48, 48) and a[0].dtype == np.float32
    assert 0.0 <= a[0].min() and a[0].max() <= 1.0 and 0.0 <= a[1].min() and a[1].max() <= 1.0


def test_geometry_moves_the_mask_with_the_image():
    image, mask = ellipse_pair()
    gen = np.random.default_rng(0)
    for _ in range(20):
        x, y = augment_pair(image, mask, 64, gen, NO_INTENSITY)
        inner = cv2.erode((y > 0.5).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        outer = cv2.dilate((y > 0.5).astype(np.uint8), np.ones((3, 3), np.uint8)) == 0
        if inner.any():  # the nerve may leave a zoomed-in field of view
            assert x[inner].min() > 0.6
        assert x[outer].max() < 0.45


def test_identity_settings_only_resize_and_flip_mirrors():
    image, mask = ellipse_pair()
    image = cv2.GaussianBlur(image, (0, 0), 2.0)  # smooth: resampling schemes agree on it
    x, y = augment_pair(image, mask, 60, np.random.default_rng(0), IDENTITY)
    plain = cv2.resize(image, (60, 60), interpolation=cv2.INTER_LINEAR)
    assert np.abs(x - plain).mean() < 0.01
    flipped, fmask = augment_pair(image, mask, 60, np.random.default_rng(0), replace(IDENTITY, p_flip=1.0))
    np.testing.assert_allclose(flipped, x[:, ::-1], atol=1e-5)
    np.testing.assert_allclose(fmask, y[:, ::-1], atol=1e-5)


def test_dark_borders_black_out_image_and_mask_alike():
    image = np.full((64, 64), 0.8, np.float32)
    mask = np.ones((64, 64), np.uint8)
    cfg = replace(IDENTITY, p_borders=1.0, border_max=0.3)
    gen = np.random.default_rng(5)
    saw_band = False
    for _ in range(10):
        x, y = augment_pair(image, mask, 64, gen, cfg)
        dark = x == 0.0
        np.testing.assert_array_equal(dark, y == 0.0)
        saw_band |= bool(dark.any())
    assert saw_band


def test_intensity_changes_keep_the_nerve_brighter_than_its_surroundings_on_average():
    image, mask = ellipse_pair()
    x, y = augment_batch([image] * 16, [mask] * 16, 48, np.random.default_rng(2))
    assert x.shape == y.shape == (16, 48, 48, 1)
    inside = [xi[yi > 0.5].mean() for xi, yi in zip(x, y) if (yi > 0.5).sum() > 10]
    outside = [xi[yi < 0.5].mean() for xi, yi in zip(x, y) if (yi > 0.5).sum() > 10]
    assert len(inside) >= 8 and np.mean(np.array(inside) > np.array(outside)) > 0.9
    assert len({round(float(v.mean()), 3) for v in x}) > 10  # every view differs


def test_target_planes_are_warped_alike_and_batched_with_their_channels():
    """A (H, W, 3) target (nerve, vessel, "vessels labelled") gets the very warp of a (H, W) mask."""
    image, mask = ellipse_pair()
    vessel = np.zeros_like(mask)
    cv2.circle(vessel, (90, 60), 8, 1, thickness=-1)
    planes = np.stack([mask, vessel, np.ones_like(mask)], axis=-1).astype(np.float32)
    for seed in range(5):
        x1, y1 = augment_pair(image, mask, 48, np.random.default_rng(seed))
        x3, y3 = augment_pair(image, planes, 48, np.random.default_rng(seed))
        np.testing.assert_array_equal(x1, x3)
        np.testing.assert_allclose(y3[..., 0], y1, atol=1e-6)
        assert y3.shape == (48, 48, 3) and y3[..., 2].max() == 1.0
    x, y = augment_batch([image, image], [planes, planes], 32, np.random.default_rng(0))
    assert x.shape == (2, 32, 32, 1) and y.shape == (2, 32, 32, 3)
    _, y_flat = augment_batch([image], [mask], 32, np.random.default_rng(0))
    assert y_flat.shape == (1, 32, 32, 1)
