"""Randomised scenes for the segmenter (ctslib.synth.scenes): seeded, varied, and outlined where drawn."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ctslib.synth import scenes


@pytest.fixture(scope="module")
def frames():
    return scenes.scene_frames(seed=3, n_scenes=40, frames_per_scene=1)


def test_same_seed_same_frames_other_seed_other_frames(frames):
    again = scenes.scene_frames(seed=3, n_scenes=3, frames_per_scene=1)
    for k in range(3):
        assert np.array_equal(again["image"][k], frames["image"][k]) and np.array_equal(again["mask"][k], frames["mask"][k])
    other = scenes.scene_frames(seed=4, n_scenes=1, frames_per_scene=1)
    assert not np.array_equal(other["image"][0], frames["image"][0])


def test_frames_have_the_pipelines_shape_and_columns(frames):
    assert list(frames.columns) == ["video", "plane", "wrist_id", "bad_reason", "image", "mask"]
    image, mask = frames["image"][0], frames["mask"][0]
    assert image.shape == mask.shape == (scenes.FRAME_SIZE, scenes.FRAME_SIZE)
    assert image.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}


def test_some_scenes_show_no_nerve_and_the_others_put_it_at_many_depths(frames):
    areas = np.array([int(m.sum()) for m in frames["mask"]])
    assert 0 < (areas == 0).sum() < len(areas) // 2  # "no nerve" is taught, but most scenes show one
    rows = [np.nonzero(m)[0].mean() / scenes.FRAME_SIZE for m in frames["mask"] if m.any()]
    # the study's wrist keeps the nerve in a narrow band under the retinaculum; these spread over the image
    assert min(rows) < 0.35 and max(rows) > 0.55


def test_nerves_lie_in_the_depth_band_of_real_nerves_not_at_the_image_edges(frames):
    rows = [np.nonzero(m)[0].mean() / scenes.FRAME_SIZE for m in frames["mask"] if m.any()]
    low, high = scenes.NERVE_DEPTH_SHARE
    # the probe's sway and the bone shadow's cut move a centre by a few per cent, no more
    assert low - 0.06 < min(rows) and max(rows) < high + 0.06


def test_fibrous_bands_are_bright_elongated_structures_brighter_than_the_tissue_they_cross():
    from ctslib.synth.anatomy import Canvas, Scene

    canvas = Canvas.around_image(scenes.FRAME_SIZE, 30.0 / scenes.FRAME_SIZE, scenes.SIDE_PAD_MM)
    x, z = canvas.grid_mm()
    flat = np.full(x.shape, 0.05, np.float32)
    for seed in range(6):
        scene = Scene(flat.copy(), np.zeros_like(flat), np.zeros_like(flat), np.zeros(x.shape, np.uint8))
        scenes._fibrous_bands(scene, x, z, 30.0, np.random.default_rng(seed))
        bright = (cv2.GaussianBlur(scene.echo, (0, 0), 2) > 0.05 * 10 ** 0.6).astype(np.uint8)  # over +6 dB
        n, labels, stats, _ = cv2.connectedComponentsWithStats(bright)
        assert 1 <= n - 1 <= 2 * scenes.FIBROUS_BANDS[1] and bright.mean() < 0.25  # bands, not a bright image
        pixels = np.argwhere(labels == 1 + np.argmax(stats[1:, cv2.CC_STAT_AREA])).astype(np.float64)
        spread = np.linalg.eigvalsh(np.cov(pixels.T))
        assert spread[1] > 4 * spread[0]  # longer than thick (twice the spread along as across), not a blob
        assert scene.spec.max() > 0.2  # its dashed bright edges


def test_the_nerve_outline_is_textured_tissue_not_an_anechoic_vessel(frames):
    inside = [f["image"][f["mask"] > 0].mean() for _, f in frames.iterrows() if f["mask"].sum() > 200]
    assert np.median(inside) > 20  # a vessel lumen renders near black; a nerve's honeycomb does not


def test_the_imaging_depth_is_drawn_per_scene_within_its_range():
    gen = np.random.default_rng(0)
    depths = [scenes.random_scene(gen)[1].spacing_mm * scenes.FRAME_SIZE for _ in range(12)]
    low, high = scenes.DEPTH_RANGE_MM
    assert all(low <= d <= high for d in depths)
    assert max(depths) - min(depths) > (high - low) / 3  # speckle grain and nerve size vary in pixels


def test_fascicle_map_draws_few_large_or_many_small_fascicles_filling_the_asked_share():
    from ctslib.synth.anatomy import fascicle_map

    z, x = np.mgrid[0:400, 0:400].astype(np.float32) * 0.02  # 8 x 8 mm at 0.02 mm a pixel
    a, b = 3.0, 2.0
    blobs = {}
    for count, fill in ((4, 0.45), (12, 0.3)):
        fascicles = fascicle_map(x, z, 4.0, 4.0, a, b, 0.0, np.pi * a * b, np.random.default_rng(1), count=count, fill=fill)
        n, _, stats, _ = cv2.connectedComponentsWithStats((fascicles > 0.5).astype(np.uint8))
        share = float((fascicles > 0.5).sum()) * 0.02**2 / (np.pi * a * b)
        assert 2 <= n - 1 <= count and 0.6 * fill < share < 1.4 * fill  # dart throwing may place fewer than asked
        blobs[count] = (n - 1, float(np.median(stats[1:, cv2.CC_STAT_AREA])))
    assert blobs[12][0] > blobs[4][0] and blobs[4][1] > 2 * blobs[12][1]  # the honeycomb: few, large fascicles


def _laplacian_energy(image: np.ndarray) -> float:
    return float(np.abs(cv2.Laplacian(image.astype(np.float32), cv2.CV_32F)).mean())


def test_display_chain_keeps_the_grey_order_and_varies_tone_and_sharpness_between_frames():
    image = scenes.scene_frames(seed=5, n_scenes=1, frames_per_scene=1)["image"][0]
    # A smooth ramp shows the tone curve alone (unsharp masking leaves a linear ramp as it is, nearly).
    ramp = np.tile(np.linspace(0, 255, scenes.FRAME_SIZE).astype(np.uint8), (scenes.FRAME_SIZE, 1))
    gens = [np.random.default_rng(k) for k in range(12)]
    toned = [scenes.display_chain(ramp, gen) for gen in gens]
    for out in toned:
        profile = cv2.GaussianBlur(out.astype(np.float32).mean(axis=0), (0, 0), 2).ravel()[8:-8]  # grain averaged out
        assert np.all(np.diff(profile) > -1.0)  # monotone: darker tissue stays darker
    middles = [float(out[:, scenes.FRAME_SIZE // 2 - 4:scenes.FRAME_SIZE // 2 + 4].mean()) for out in toned]
    assert max(middles) - min(middles) > 20  # the tone curve differs between frames
    sharpness = [_laplacian_energy(scenes.display_chain(image, np.random.default_rng(k))) for k in range(12)]
    base = _laplacian_energy(image)
    assert max(sharpness) > 1.2 * base and min(sharpness) < base / 1.2  # sharper and smoother than rendered
    again = scenes.display_chain(image, np.random.default_rng(0))
    assert np.array_equal(again, scenes.display_chain(image, np.random.default_rng(0)))
