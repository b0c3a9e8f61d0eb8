"""Randomised scenes for the segmenter (ctslib.synth.scenes): seeded, varied, and outlined where drawn."""

from __future__ import annotations

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


def test_the_nerve_outline_is_textured_tissue_not_an_anechoic_vessel(frames):
    inside = [f["image"][f["mask"] > 0].mean() for _, f in frames.iterrows() if f["mask"].sum() > 200]
    assert np.median(inside) > 20  # a vessel lumen renders near black; a nerve's honeycomb does not
