"""Randomised cross-sections for the segmenter: nerves of any size at any depth among varied tissue.

The study's synthetic wrist (``ctslib.synth.anatomy``) always puts the median nerve under the
retinaculum arch between the flexor tendons. A segmenter trained on those frames alone learns that
layout, not what a nerve looks like, and finds almost no nerve in real images of other regions
(docs/realism.md). These scenes trade anatomy for variety, the domain-randomisation idea:

* an imaging depth of 20-45 mm drawn per scene, so nerves, speckle grain and tissue layers come at
  the pixel scales of real images of 1-4 cm deep nerves (usgra-seg), not only the wrist's 24 mm;
* tissue in layers (hypoechoic muscle with dotted or striated texture, fat with septa) under thin
  fascia lines that fade in and out, and up to 24 short bright streaks (septa, fascicle walls);
* 0-3 tendons (echogenic, dotted, half of them outlined), a Poisson number of anechoic vessels with
  thin walls or none, 0-2 large dark bodies (muscle bellies), 1-3 thick bright fibrous bands
  (ligament, periosteum, thick fascia) and a bone surface with its acoustic shadow in half of the
  scenes: the look-alikes a model must learn to leave out;
* 0, 1 or 2 nerves (15 % of scenes show none, so the model also learns to say "no nerve"): an
  irregular oval of 4-40 mm² anywhere across the image at 20-65 % of its depth (where usgra-seg's
  nerves lie), mostly a honeycomb of 3-15 dark fascicles in epineurium whose brightness is drawn
  *relative to the tissue around it* (real nerves stand out by texture more than by brightness), a
  partial bright outline, and in half of them a fascia plane along the nerve or a vessel beside it,
  as nerves run between muscles and with arteries;
* imaging drawn per scene: beam width, gain, dynamic range, speckle reduction (heavier than the
  wrist's: real backgrounds are smoother), grey map and the depth darkening the TGC leaves;
* a display chain drawn per frame (``display_chain``): the tone curve, sharpening or smoothing and
  grain that scanners and video exports add after the B-mode image, which differ between devices.

Each choice answers a gap seen against usgra-seg, in the realism table or in a model's probability
maps (docs/realism.md, "Third round" to "Seventh round"). Frames are rendered with the same B-mode
model as the study's videos (``ctslib.synth.bmode``), one probe pose per scene. They serve the
segmenter's training and its sim-to-real measurement (``ctslib.nerve.pretrained``,
``Recipe.synth_scenes``); the study's cohort does not use them.
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

SCENE_SETS = ("wrist", "randomised")  # the segmenter's synthetic frames: the study's wrist videos or these scenes
FRAME_SIZE = 256
DEPTH_RANGE_MM = (20.0, 45.0)  # imaging depth drawn per scene: usgra-seg's nerves lie 1-4 cm deep
SIDE_PAD_MM = 3.0              # canvas margin beside the image (the probe only sways)
NO_NERVE_SHARE = 0.15          # scenes without a nerve
TWO_NERVES_SHARE = 0.2         # of the scenes with a nerve: two of them
NERVE_CSA_MM2 = (4.0, 40.0)    # wider than the wrist's 6-25 mm²: usgra-seg's nerves range from elbow to sciatic
NERVE_DEPTH_SHARE = (0.2, 0.65)  # nerve centre depth / image depth; usgra-seg train: 0.14-0.62, 90 % within 0.22-0.52
FIBROUS_BANDS = (1, 3)         # thick bright bands per scene (ligament, periosteum, thick fascia)
EPINEURIUM_MIN_DB = 1.5        # epineurium at least this much brighter than the tissue around: no labelled nerve is invisible
TONE_KNOTS = np.linspace(0.0, 1.0, 6)  # grey levels at which display_chain's tone curve is drawn


def _broken(x: np.ndarray, spacing: float, gen: np.random.Generator) -> np.ndarray:
    """Brightness along a line that fades in and out (real fascia are drawn in dashes, not strokes)."""
    return np.clip(0.6 + smooth_noise(x.shape, gen.uniform(1.0, 4.0) / spacing, 1.0, gen), 0.0, 1.6)


def _anechoic(scene: Scene, lumen: np.ndarray) -> None:
    """Empty a vessel's lumen: blood scatters almost nothing, and nothing specular is seen through it."""
    scene.echo = np.where(lumen, 0.002, scene.echo).astype(np.float32)
    scene.spec = np.where(lumen, 0.0, scene.spec).astype(np.float32)


def _tissue_layers(scene: Scene, x: np.ndarray, z: np.ndarray, depth_mm: float,
                   gen: np.random.Generator) -> None:
    """Layers of muscle or fat under the subcutaneous fat, each topped by a thin, broken fascia line."""
    spacing = depth_mm / FRAME_SIZE  # mm per image pixel
    level = gen.uniform(1.5, 6.0)
    while level < depth_mm + 2.0:
        thick = gen.uniform(2.0, 10.0)
        top = level + smooth_curve(x[0], gen.uniform(0.2, 1.5), gen.uniform(8.0, 30.0), gen)
        depth = z - top[None, :]
        inside = (depth >= 0) & (depth < thick)
        if gen.random() < 0.55:  # muscle: hypoechoic, dotted or striated
            base = gen.uniform(0.02, 0.12)
            texture = smooth_noise(x.shape, gen.uniform(0.1, 1.5) / spacing, gen.uniform(0.03, 0.15) / spacing, gen)
            scene.echo = np.where(inside, base * np.clip(1 + 0.8 * texture, 0.1, None), scene.echo).astype(np.float32)
            scene.spec += inside * gen.uniform(0.1, 0.5) * np.clip(texture - 1.3, 0, None)
        else:  # fat or loose connective tissue with septa
            base = gen.uniform(0.005, 0.05)
            septa = smooth_noise(x.shape, gen.uniform(1.0, 3.0) / spacing, 0.04 / spacing, gen)
            scene.echo = np.where(inside, base, scene.echo).astype(np.float32)
            scene.spec += inside * gen.uniform(0.2, 0.8) * np.clip(septa - gen.uniform(1.0, 1.8), 0, None)
        scene.spec += gen.uniform(0.2, 1.2) * _broken(x, spacing, gen) * thin_line(depth, gen.uniform(0.03, 0.09))
        level += thick


def _fascia_streaks(scene: Scene, x: np.ndarray, z: np.ndarray, depth_mm: float, gen: np.random.Generator) -> None:
    """Short, thin bright streaks: the clutter of septa and fascicle walls of real images."""
    for _ in range(int(gen.integers(0, 25))):
        cx, cz = gen.uniform(-depth_mm / 2, depth_mm / 2), gen.uniform(1.0, depth_mm)
        half = gen.uniform(1.0, 8.0)
        tilt = gen.normal(0, 0.15)
        across = (z - cz) - tilt * (x - cx) + smooth_curve(x[0], gen.uniform(0.05, 0.4), gen.uniform(4, 12), gen)[None, :]
        along = np.clip(1 - ((x - cx) / half) ** 2, 0, None)
        scene.spec += gen.uniform(0.2, 0.9) * along * thin_line(across, gen.uniform(0.03, 0.07))


def _fibrous_bands(scene: Scene, x: np.ndarray, z: np.ndarray, depth_mm: float, gen: np.random.Generator) -> None:
    """Thick, bright, fibrillar bands: ligament, periosteum and thick fascia, the look-alikes models pick.

    A third of a synthetic-only model's false picks on real images lay on such bands, which the
    scenes had drawn only as thin lines (docs/realism.md, "Seventh round"). Each band is 0.6-3 mm
    thick and 6-30 mm long, tilted and curved, 8-18 dB brighter than the tissue it crosses, with
    fibres along it, dashed bright edges, and dark spots in 40 % of them.
    """
    spacing = depth_mm / FRAME_SIZE  # mm per image pixel
    for _ in range(int(gen.integers(FIBROUS_BANDS[0], FIBROUS_BANDS[1] + 1))):
        cx, cz = gen.uniform(-depth_mm / 2, depth_mm / 2), gen.uniform(0.1, 0.9) * depth_mm
        half_length, half_thick = gen.uniform(3.0, 15.0), gen.uniform(0.3, 1.5)
        centre = cz + gen.normal(0, 0.3) * (x - cx) + smooth_curve(x[0], gen.uniform(0.2, 1.5), gen.uniform(8, 25), gen)[None, :]
        across = z - centre
        along = np.sqrt(np.clip(1 - ((x - cx) / half_length) ** 2, 0, None))  # rounded ends
        on_band = along > 0
        inside = soft_inside(np.abs(across) / half_thick, 0.2) * on_band
        if not inside.any():  # the band lies off the canvas
            continue
        core = inside > 0.5
        crossed = float(np.median(scene.echo[core] if core.any() else scene.echo))
        fibres = smooth_noise(x.shape, gen.uniform(0.5, 2.0) / spacing, 0.04 / spacing, gen)
        echo = (crossed + 0.005) * 10 ** gen.uniform(0.8, 1.8) * np.clip(1 + 0.5 * fibres, 0.2, None)
        if gen.random() < 0.4:  # dark spots: vessels or fat caught in the band
            spots = smooth_noise(x.shape, 0.3 / spacing, 0.3 / spacing, gen)
            echo = echo * (1 - 0.9 * np.clip(spots - 1.5, 0, 1))
        scene.echo = (scene.echo * (1 - inside) + inside * echo).astype(np.float32)
        edges = thin_line(np.abs(across) - half_thick, gen.uniform(0.03, 0.07)) * on_band
        scene.spec += gen.uniform(0.3, 1.0) * _broken(x, spacing, gen) * edges


def _tendons_and_vessels(scene: Scene, x: np.ndarray, z: np.ndarray, depth_mm: float,
                         gen: np.random.Generator) -> None:
    """Echogenic dotted tendons, anechoic vessels (thin walls or none) and dark bodies: the nerve's look-alikes."""
    spacing = depth_mm / FRAME_SIZE  # mm per image pixel
    half_width, deep = depth_mm / 2, 0.8 * depth_mm
    for _ in range(int(gen.integers(0, 4))):
        r = ellipse_radius(x, z, gen.uniform(-half_width, half_width), gen.uniform(3, deep), gen.uniform(1.2, 3.0),
                           gen.uniform(0.8, 2.0), gen.normal(0, 0.3))
        inside = soft_inside(r, 0.08)
        dots = smooth_noise(x.shape, 0.1 / spacing, 0.1 / spacing, gen)
        scene.echo = scene.echo * (1 - inside) + inside * gen.uniform(0.15, 0.6) * np.clip(1 + 0.5 * dots, 0.2, None)
        scene.spec += inside * 0.25 * np.clip(dots - 0.8, 0, None)
        if gen.random() < 0.5:  # a bright outline is no nerve's privilege
            scene.spec += gen.uniform(0.2, 0.8) * _broken(x, spacing, gen) * thin_line(r - 1.0, 0.05)
    for _ in range(int(gen.poisson(1.5))):
        radius = gen.uniform(0.6, 5.0)
        r = ellipse_radius(x, z, gen.uniform(-half_width, half_width), gen.uniform(3, deep), radius * gen.uniform(1.0, 1.5),
                           radius, gen.normal(0, 0.3))
        _anechoic(scene, r < 1)
        wall = gen.uniform(0.0, 0.5) if gen.random() < 0.6 else 0.0
        scene.spec = scene.spec + wall * thin_line(r - 1.0, 0.03 / radius + 0.02)
    for _ in range(int(gen.integers(0, 3))):  # muscle bellies and vessels without a wall: dark, never nerve
        r = ellipse_radius(x, z, gen.uniform(-half_width, half_width), gen.uniform(3, deep), gen.uniform(2, 8),
                           gen.uniform(1.5, 6), gen.normal(0, 0.3))
        r = r * (1 + 0.1 * smooth_noise(x.shape, 1.0 / spacing, 1.0 / spacing, gen))
        inside = soft_inside(r, 0.1)
        scene.echo = scene.echo * (1 - inside * gen.uniform(0.6, 0.97))
        scene.spec = scene.spec * (1 - inside * gen.uniform(0.5, 1.0))


def _nerve(scene: Scene, x: np.ndarray, z: np.ndarray, depth_mm: float,
           gen: np.random.Generator) -> np.ndarray:
    """Draw one nerve (a honeycomb of dark fascicles in bright epineurium, a bright rim) anywhere; return its mask."""
    spacing = depth_mm / FRAME_SIZE  # mm per image pixel
    csa = gen.uniform(*NERVE_CSA_MM2)
    aspect = gen.uniform(1.0, 3.0)
    a, b = math.sqrt(csa * aspect / math.pi), math.sqrt(csa / (aspect * math.pi))
    cx, cz, angle = gen.uniform(-0.4, 0.4) * depth_mm, gen.uniform(*NERVE_DEPTH_SHARE) * depth_mm, gen.normal(0, 0.3)
    r = ellipse_radius(x, z, cx, cz, a, b, angle) * (1 + 0.08 * smooth_noise(x.shape, 1.0 / spacing, 1.0 / spacing, gen))
    # Real nerves stand out from their surroundings by texture more than by brightness (docs/realism.md:
    # +1 dB over the ring around them), so the nerve's levels are drawn relative to the tissue it replaces.
    around = float(np.median(scene.echo[r < 1.6])) + 0.005
    if gen.random() < 0.7:  # few large fascicles: the honeycomb of real nerves
        count = int(gen.integers(3, 16))
        fascicles = fascicle_map(x, z, cx, cz, a, b, angle, csa, gen, count=count, fill=gen.uniform(0.3, 0.55))
        epineurium_top, fascicle_range = 1.2, (-1.5, -0.3)  # log10 of echo relative to the tissue around
    else:  # many small fascicles
        fascicles = fascicle_map(x, z, cx, cz, a, b, angle, csa, gen)
        epineurium_top, fascicle_range = 0.9, (-1.0, 0.0)
    echo_epi = around * 10 ** gen.uniform(EPINEURIUM_MIN_DB / 10, epineurium_top)
    echo_fasc = around * 10 ** gen.uniform(*fascicle_range)
    fascicles = cv2.GaussianBlur(fascicles, (0, 0), max(gen.uniform(0.02, 0.15) / spacing, 0.3))
    inside = soft_inside(r, 0.04)
    perineurium = np.clip(4 * fascicles * (1 - fascicles), 0, 1)
    echo = echo_epi * (1 - fascicles) + echo_fasc * fascicles + gen.uniform(0.0, 0.4) * perineurium
    scene.echo = scene.echo * (1 - inside) + inside * echo
    # The epineurium's bright outline is partial in real images (dashed, brighter on top and bottom),
    # and sometimes missing: a closed bright ring would be a cue no real nerve offers.
    rim = gen.uniform(0.0, 0.9) * _broken(x, spacing, gen) * thin_line(r - 1.0, gen.uniform(0.03, 0.08))
    scene.spec = scene.spec * (1 - inside) + inside * gen.uniform(0.0, 0.6) * perineurium + rim
    if gen.random() < 0.5:  # a fascia plane running along the nerve, as nerves travel between muscles
        side = b if gen.random() < 0.5 else -b
        along = z - (cz + side + smooth_curve(x[0], gen.uniform(0.1, 0.6), gen.uniform(8, 25), gen)[None, :])
        scene.spec += gen.uniform(0.3, 1.0) * _broken(x, spacing, gen) * thin_line(along, gen.uniform(0.04, 0.09)) * (r >= 0.9)
    if gen.random() < 0.5:  # a vessel beside it (brachial plexus and artery, femoral nerve and vessels)
        radius = gen.uniform(0.8, 4.0)
        direction = gen.uniform(0, 2 * math.pi)
        reach = max(a, b) + radius * gen.uniform(0.9, 1.3)
        vx, vz = cx + reach * math.cos(direction), cz + reach * math.sin(direction)
        rv = ellipse_radius(x, z, vx, vz, radius * gen.uniform(1.0, 1.4), radius, gen.normal(0, 0.3))
        _anechoic(scene, (rv < 1) & (r >= 1.0))  # no wall: the nerve's own rim borders it
    return (r < 1.0).astype(np.uint8)


def random_scene(gen: np.random.Generator) -> tuple[Scene, Canvas]:
    """One randomised cross-section (module docstring) and its canvas, at a depth drawn per scene."""
    depth_mm = gen.uniform(*DEPTH_RANGE_MM)
    spacing = depth_mm / FRAME_SIZE
    canvas = Canvas.around_image(FRAME_SIZE, spacing, SIDE_PAD_MM)
    x, z = canvas.grid_mm()
    scene = skin_and_fat(x, z, canvas, gen.uniform(1.0, 6.0), gen)
    _tissue_layers(scene, x, z, depth_mm, gen)
    _fascia_streaks(scene, x, z, depth_mm, gen)
    _fibrous_bands(scene, x, z, depth_mm, gen)
    _tendons_and_vessels(scene, x, z, depth_mm, gen)
    mask = np.zeros(x.shape, np.uint8)
    n_nerves = 0 if gen.random() < NO_NERVE_SHARE else (2 if gen.random() < TWO_NERVES_SHARE else 1)
    for _ in range(n_nerves):
        mask = np.maximum(mask, _nerve(scene, x, z, depth_mm, gen))
    scene.mask = mask
    if gen.random() < 0.5:
        surface = (gen.uniform(0.45, 1.1) * depth_mm
                   + smooth_curve(x[0], gen.uniform(0.3, 2.0), gen.uniform(15, 40), gen))
        bone_surface(scene, x, z, surface, canvas, gen)
        scene.mask = scene.mask * (z < surface[None, :] - 0.2)  # nothing is seen, nor outlined, in the shadow
    return scene, canvas


def random_imaging(gen: np.random.Generator) -> Imaging:
    """Scanner settings of one scene: beam width, gain, dynamic range, speckle reduction, grey map, TGC."""
    return Imaging(axial_psf_mm=gen.uniform(0.04, 0.1), lateral_psf_mm=gen.uniform(0.08, 0.2),
                   gain_db=gen.uniform(-14, 2), dynamic_range_db=gen.uniform(40, 60),
                   speckle_smoothing_mm=(gen.uniform(0.06, 0.22), gen.uniform(0.05, 0.14)),
                   gray_map_power=gen.uniform(1.1, 2.0), tgc_residual_db_per_cm=gen.uniform(0.0, 6.0))


def display_chain(image: np.ndarray, gen: np.random.Generator) -> np.ndarray:
    """The post-processing a scanner or its video export applies to one 8-bit frame, drawn at random.

    A monotone tone curve (a power law with jittered knots; its exponent is drawn so that the mean
    grey level stays that of real images, usgra-seg), unsharp masking whose amount (0.4-1.8) smooths
    below 1 and sharpens above it, and a faint multiplicative grain (compression and dithering).
    Without it every synthetic frame shares the renderer's one look, and a model trained on them
    learns that look along with the nerves (docs/realism.md, "Fourth round").
    """
    level = image.astype(np.float32) / 255.0
    inner = (TONE_KNOTS > 0) & (TONE_KNOTS < 1)
    curve = TONE_KNOTS ** np.exp(gen.uniform(-0.35, 0.65)) + inner * gen.normal(0.0, 0.04, TONE_KNOTS.size)
    curve = np.maximum.accumulate(np.clip(curve, 0.0, 1.0))  # monotone: a darker tissue stays darker
    level = np.interp(level, TONE_KNOTS, curve).astype(np.float32)
    smooth = cv2.GaussianBlur(level, (0, 0), gen.uniform(0.7, 2.0))
    level = smooth + np.float32(gen.uniform(0.4, 1.8)) * (level - smooth)
    grain = cv2.GaussianBlur(gen.standard_normal(level.shape).astype(np.float32), (0, 0), 0.5)
    level = level * (1.0 + np.float32(gen.uniform(0.0, 0.08)) * grain)
    return np.clip(np.rint(level * 255.0), 0, 255).astype(np.uint8)


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
            image = display_chain(image, gen)
            rows.append({"video": f"scene{seed}_{k:04d}", "plane": "transverse", "wrist_id": f"scene{k:04d}",
                         "bad_reason": "", "image": image, "mask": mask})
    return pd.DataFrame(rows)
