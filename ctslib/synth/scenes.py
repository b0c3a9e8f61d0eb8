"""Randomised cross-sections for the segmenter: nerves of any size at any depth among varied tissue.

The study's synthetic wrist (``ctslib.synth.anatomy``) always puts the median nerve under the
retinaculum arch between the flexor tendons. A segmenter trained on those frames alone learns that
layout, not what a nerve looks like, and finds almost no nerve in real images of other regions
(docs/realism.md). These scenes trade anatomy for variety, the domain-randomisation idea:

* tissue in layers (hypoechoic muscle with dotted or striated texture, fat with septa) separated by
  bright fascia lines of random depth, waviness and strength;
* 0-3 tendons (echogenic, dotted), a Poisson number of anechoic vessels with bright walls, and a
  bone surface with its acoustic shadow in half of the scenes;
* 0, 1 or 2 nerves (15 % of scenes show none, so the model also learns to say "no nerve"): an
  irregular oval of 4-40 mm² with a honeycomb of fascicles and a bright rim, placed anywhere;
* imaging drawn per scene: beam width, gain, dynamic range and speckle reduction.

Frames are rendered with the same B-mode model as the study's videos (``ctslib.synth.bmode``), a few
probe poses per scene. They serve the segmenter's training and its sim-to-real measurement
(``ctslib.nerve.pretrained``, ``Recipe.synth_scenes``); the study's cohort does not use them.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pandas as pd

from ctslib.common.seed import rng
from ctslib.synth.anatomy import (Canvas, Scene, bone_surface, ellipse_radius, fascicle_map, skin_and_fat, smooth_curve,
                                  smooth_noise, soft_inside, thin_line)
from ctslib.synth.bmode import FramePose, Imaging, make_world, render_frame

FRAME_SIZE = 256
DEPTH_MM = 24.0              # as the study's default frames
SIDE_PAD_MM = 3.0            # canvas margin beside the image (the probe only sways)
NO_NERVE_SHARE = 0.15        # scenes without a nerve
TWO_NERVES_SHARE = 0.2       # of the scenes with a nerve: two of them
NERVE_CSA_MM2 = (4.0, 40.0)  # wider than the wrist's 6-25 mm²: usgra-seg's nerves range from elbow to sciatic


def _tissue_layers(scene: Scene, x: np.ndarray, z: np.ndarray, spacing: float, gen: np.random.Generator) -> None:
    """Layers of muscle or fat under the subcutaneous fat, each topped by a bright fascia line."""
    level = gen.uniform(1.5, 6.0)
    while level < DEPTH_MM + 2.0:
        thick = gen.uniform(2.0, 8.0)
        top = level + smooth_curve(x[0], gen.uniform(0.2, 1.5), gen.uniform(8.0, 30.0), gen)
        depth = z - top[None, :]
        inside = (depth >= 0) & (depth < thick)
        if gen.random() < 0.5:  # muscle: hypoechoic, dotted or striated
            base = gen.uniform(0.02, 0.12)
            texture = smooth_noise(x.shape, gen.uniform(0.1, 1.5) / spacing, gen.uniform(0.05, 0.2) / spacing, gen)
            scene.echo = np.where(inside, base * np.clip(1 + 0.8 * texture, 0.1, None), scene.echo).astype(np.float32)
            scene.spec += inside * gen.uniform(0.1, 0.5) * np.clip(texture - 1.3, 0, None)
        else:  # fat or loose connective tissue with septa
            base = gen.uniform(0.005, 0.05)
            septa = smooth_noise(x.shape, gen.uniform(1.0, 3.0) / spacing, 0.06 / spacing, gen)
            scene.echo = np.where(inside, base, scene.echo).astype(np.float32)
            scene.spec += inside * gen.uniform(0.2, 0.8) * np.clip(septa - gen.uniform(1.0, 1.8), 0, None)
        scene.spec += gen.uniform(0.3, 1.2) * thin_line(depth, gen.uniform(0.05, 0.12))
        level += thick


def _tendons_and_vessels(scene: Scene, x: np.ndarray, z: np.ndarray, spacing: float, gen: np.random.Generator) -> None:
    """Echogenic dotted tendons and anechoic vessels with bright walls: the nerve's look-alikes."""
    for _ in range(int(gen.integers(0, 4))):
        r = ellipse_radius(x, z, gen.uniform(-12, 12), gen.uniform(3, 18), gen.uniform(1.2, 3.0), gen.uniform(0.8, 2.0),
                           gen.normal(0, 0.3))
        inside = soft_inside(r, 0.08)
        dots = smooth_noise(x.shape, 0.12 / spacing, 0.12 / spacing, gen)
        scene.echo = scene.echo * (1 - inside) + inside * gen.uniform(0.2, 0.8) * np.clip(1 + 0.5 * dots, 0.2, None)
        scene.spec += inside * 0.25 * np.clip(dots - 0.8, 0, None)
    for _ in range(int(gen.poisson(1.5))):
        radius = gen.uniform(0.6, 3.5)
        r = ellipse_radius(x, z, gen.uniform(-12, 12), gen.uniform(3, 18), radius * gen.uniform(1.0, 1.5), radius,
                           gen.normal(0, 0.3))
        scene.echo = np.where(r < 1, 0.002, scene.echo).astype(np.float32)
        scene.spec = scene.spec * (r >= 1) + gen.uniform(0.2, 0.6) * thin_line(r - 1.0, 0.07)


def _nerve(scene: Scene, x: np.ndarray, z: np.ndarray, spacing: float, gen: np.random.Generator) -> np.ndarray:
    """Draw one nerve (honeycomb of fascicles, bright rim) anywhere; return its mask."""
    csa = gen.uniform(*NERVE_CSA_MM2)
    aspect = gen.uniform(1.0, 3.5)
    a, b = math.sqrt(csa * aspect / math.pi), math.sqrt(csa / (aspect * math.pi))
    cx, cz, angle = gen.uniform(-9, 9), gen.uniform(3, 17), gen.normal(0, 0.3)
    r = ellipse_radius(x, z, cx, cz, a, b, angle) * (1 + 0.08 * smooth_noise(x.shape, 1.0 / spacing, 1.0 / spacing, gen))
    fascicles = fascicle_map(x, z, cx, cz, a, b, angle, csa, gen)
    fascicles = cv2.GaussianBlur(fascicles, (0, 0), max(gen.uniform(0.03, 0.3) / spacing, 0.3))
    inside = soft_inside(r, 0.04)
    perineurium = np.clip(4 * fascicles * (1 - fascicles), 0, 1)
    echo = (gen.uniform(0.1, 0.6) * (1 - fascicles) + gen.uniform(0.01, 0.06) * fascicles
            + gen.uniform(0.0, 0.4) * perineurium)
    scene.echo = scene.echo * (1 - inside) + inside * echo
    scene.spec = scene.spec * (1 - inside) + gen.uniform(0.2, 0.9) * thin_line(r - 1.0, 0.06)
    return (r < 1.0).astype(np.uint8)


def random_scene(gen: np.random.Generator) -> tuple[Scene, Canvas]:
    """One randomised cross-section (module docstring) and its canvas."""
    spacing = DEPTH_MM / FRAME_SIZE
    canvas = Canvas.around_image(FRAME_SIZE, spacing, SIDE_PAD_MM)
    x, z = canvas.grid_mm()
    scene = skin_and_fat(x, z, canvas, gen.uniform(1.0, 6.0), gen)
    _tissue_layers(scene, x, z, spacing, gen)
    _tendons_and_vessels(scene, x, z, spacing, gen)
    mask = np.zeros(x.shape, np.uint8)
    n_nerves = 0 if gen.random() < NO_NERVE_SHARE else (2 if gen.random() < TWO_NERVES_SHARE else 1)
    for _ in range(n_nerves):
        mask = np.maximum(mask, _nerve(scene, x, z, spacing, gen))
    scene.mask = mask
    if gen.random() < 0.5:
        surface = gen.uniform(10, DEPTH_MM + 3) + smooth_curve(x[0], gen.uniform(0.5, 3), gen.uniform(8, 20), gen)
        bone_surface(scene, x, z, surface, canvas, gen)
        scene.mask = scene.mask * (z < surface[None, :] - 0.2)  # nothing is seen, nor outlined, in the shadow
    return scene, canvas


def random_imaging(gen: np.random.Generator) -> Imaging:
    """Scanner settings of one scene: beam width, gain, dynamic range, speckle reduction."""
    return Imaging(axial_psf_mm=gen.uniform(0.07, 0.15), lateral_psf_mm=gen.uniform(0.15, 0.3),
                   gain_db=gen.uniform(-14, 2), dynamic_range_db=gen.uniform(40, 60),
                   speckle_smoothing_mm=(gen.uniform(0.05, 0.15), gen.uniform(0.04, 0.1)))


def scene_frames(seed: int, n_scenes: int, frames_per_scene: int) -> pd.DataFrame:
    """Render ``n_scenes`` randomised scenes, ``frames_per_scene`` probe poses each.

    Same columns as ``ctslib.nerve.pretrained.synthetic_frames``: video, plane, wrist_id, bad_reason,
    image (uint8 HxW), mask (uint8 HxW 0/1); one "video" per scene, no bad frames.
    """
    gen = rng(seed, "random-scenes")
    rows = []
    for k in range(n_scenes):
        scene, canvas = random_scene(gen)
        world, imaging = make_world(scene, canvas, gen), random_imaging(gen)
        for _ in range(frames_per_scene):
            pose = FramePose(gen.normal(0, 0.5), 0.0, gen.normal(0, 1.0), gen.uniform(0, 1.5))
            image, mask = render_frame(world, pose, imaging, gen)
            rows.append({"video": f"scene{seed}_{k:04d}", "plane": "transverse", "wrist_id": f"scene{k:04d}",
                         "bad_reason": "", "image": image, "mask": mask})
    return pd.DataFrame(rows)
