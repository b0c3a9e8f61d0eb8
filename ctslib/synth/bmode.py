"""Convolutional B-mode speckle model: tissue maps -> 8-bit ultrasound frames (a few ms each).

Image formation, per frame:

1. the probe pose (sway, slide, tilt) is an affine map from image pixels to the tissue canvas;
2. the complex reflectivity is ``sqrt(echo) * scatterers + spec``: random complex scatterers
   (fully developed speckle) weighted by the tissue's backscatter, plus coherent specular lines;
   two independent scatterer fields are mixed with a slowly drifting angle, so speckle decorrelates
   gradually between frames as a hand-held probe moves out of plane;
3. convolution with a separable Gaussian point-spread function (narrow axially, wider laterally);
4. envelope detection (magnitude) with a light speckle-reduction filter, attenuation along each
   beam (column, bone shadows everything below it), residual time-gain curve, electronic noise;
5. log compression with the exam's gain and dynamic range, then a scanner-like gray map, to 8 bits.

Artefacts for bad frames (motion blur, loss of probe contact) are applied on the envelope.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from ctslib.synth.anatomy import Canvas, Scene


@dataclass(frozen=True)
class Imaging:
    """Settings of the simulated scanner for one exam."""

    axial_psf_mm: float = 0.13  # Gaussian sigma of the pulse along depth
    lateral_psf_mm: float = 0.28  # Gaussian sigma of the beam
    noise: float = 0.015  # electronic noise amplitude (relative to unit speckle)
    gain_db: float = 0.0
    dynamic_range_db: float = 42.0
    gray_map_power: float = 1.5  # scanner gray map: display = level ** power
    speckle_smoothing_mm: tuple[float, float] = (0.14, 0.09)  # (lateral, axial) speckle-reduction sigma
    tgc_residual_db_per_cm: float = 1.5  # depth darkening the time-gain compensation leaves


@dataclass
class World:
    """Canvas maps ready for fast per-frame warping."""

    canvas: Canvas
    field_a: np.ndarray  # (rows, cols, 2) float32: Re/Im of sqrt(echo) * scatterers A + specular
    field_b: np.ndarray  # same with independent scatterers B
    transmission: np.ndarray  # (rows, cols) float32: round-trip amplitude reaching each depth
    mask: np.ndarray  # (rows, cols) uint8
    rest_mask_px: int  # nerve pixels in the image at rest (reference for 'nerve in view')
    noise: np.ndarray  # (n + 32, n + 32) float32 bank of electronic-noise envelope, cropped at random per frame


def make_world(scene: Scene, canvas: Canvas, gen: np.random.Generator) -> World:
    """Draw the scatterer fields for ``scene`` (once per video)."""
    amp = np.sqrt(np.clip(scene.echo, 0, None)).astype(np.float32)[..., None]
    # Both fields carry the specular part (scaled so the mix of ``render_frame`` keeps its level,
    # cos + sin of the mixing angle stays within 6 % of sqrt(2)).
    spec = np.zeros((canvas.rows, canvas.cols, 2), np.float32)
    spec[..., 0] = scene.spec / math.sqrt(2)
    shape = (canvas.rows, canvas.cols, 2)
    field_a = gen.standard_normal(shape, dtype=np.float32) * np.float32(math.sqrt(0.5)) * amp + spec
    field_b = gen.standard_normal(shape, dtype=np.float32) * np.float32(math.sqrt(0.5)) * amp + spec
    # Attenuation accumulates down each canvas column (the beam direction up to the small probe tilt).
    depth_att = np.cumsum(scene.att, axis=0) - scene.att
    transmission = np.exp(-2.0 * canvas.spacing_mm * depth_att).astype(np.float32)
    r0, c0, n = canvas.pad_rows, canvas.pad_cols, canvas.image_size
    rest = int(scene.mask[r0 : r0 + n, c0 : c0 + n].sum())
    white = gen.standard_normal((n + 32, n + 32, 2), dtype=np.float32)
    noise = cv2.GaussianBlur(cv2.magnitude(white[..., 0], white[..., 1]), (0, 0), 0.7)
    return World(canvas, field_a, field_b, transmission, scene.mask, rest, noise)


def pose_matrix(canvas: Canvas, dx_mm: float, dz_mm: float, angle_deg: float) -> np.ndarray:
    """Affine map image pixel (col, row) -> canvas pixel for a probe shifted by dx/dz and tilted."""
    s = canvas.spacing_mm
    a = math.radians(angle_deg)
    c, si = math.cos(a), math.sin(a)
    centre = (canvas.image_size - 1) / 2
    tx = canvas.pad_cols + centre + dx_mm / s - c * centre
    ty = canvas.pad_rows + dz_mm / s - si * centre
    return np.array([[c, -si, tx], [si, c, ty]], dtype=np.float32)


@lru_cache(maxsize=8)
def psf_kernels(imaging: Imaging, spacing_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Axial and lateral Gaussian kernels with unit energy (so speckle keeps its level)."""

    def gauss(sigma_mm: float) -> np.ndarray:
        sigma = max(sigma_mm / spacing_mm, 0.35)
        half = int(math.ceil(3 * sigma))
        k = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
        return (k / np.sqrt((k**2).sum())).astype(np.float32)

    return gauss(imaging.axial_psf_mm), gauss(imaging.lateral_psf_mm)


@lru_cache(maxsize=8)
def depth_profile(imaging: Imaging, n_rows: int, spacing_mm: float) -> np.ndarray:
    """Residual gain along depth (column vector): slight near-field brightness, slow darkening."""
    z_cm = np.arange(n_rows, dtype=np.float32) * spacing_mm / 10
    db = -imaging.tgc_residual_db_per_cm * z_cm + 2.0 * np.exp(-z_cm / 0.15)
    return (10 ** (db / 20)).astype(np.float32)[:, None]


@dataclass(frozen=True)
class FramePose:
    """Where the probe is for one frame and what goes wrong with it."""

    dx_mm: float
    dz_mm: float
    angle_deg: float
    decorrelation: float  # mixing angle of the two scatterer fields (radians)
    blur_px: float = 0.0  # motion-blur length along the lateral direction
    blur_angle_deg: float = 0.0
    contact: tuple[float, float] = (0.0, 1.0)  # lateral fraction of the probe face touching skin


def render_frame(world: World, pose: FramePose, imaging: Imaging, gen: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One 8-bit B-mode frame and its nerve mask (uint8 0/1) for ``pose``."""
    canvas = world.canvas
    n = canvas.image_size
    m = pose_matrix(canvas, pose.dx_mm, pose.dz_mm, pose.angle_deg)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    a = cv2.warpAffine(world.field_a, m, (n, n), flags=flags, borderMode=cv2.BORDER_REFLECT)
    b = cv2.warpAffine(world.field_b, m, (n, n), flags=flags, borderMode=cv2.BORDER_REFLECT)
    transmission = cv2.warpAffine(world.transmission, m, (n, n), flags=flags, borderMode=cv2.BORDER_REFLECT)
    mask = cv2.warpAffine(world.mask, m, (n, n), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderValue=0)

    iq = cv2.addWeighted(a, math.cos(pose.decorrelation), b, math.sin(pose.decorrelation), 0.0)

    k_ax, k_lat = psf_kernels(imaging, canvas.spacing_mm)
    iq = cv2.sepFilter2D(iq, -1, k_lat, k_ax, borderType=cv2.BORDER_REFLECT)
    env = cv2.magnitude(iq[..., 0], iq[..., 1])
    env = speckle_reduction(env, imaging, canvas.spacing_mm)
    env *= transmission * depth_profile(imaging, n, canvas.spacing_mm)
    # Electronic noise enters at the receiver, after tissue attenuation: it shows inside shadows.
    r0, c0 = gen.integers(0, world.noise.shape[0] - n + 1, size=2)
    env += world.noise[r0 : r0 + n, c0 : c0 + n] * np.float32(imaging.noise)
    s = canvas.spacing_mm

    if pose.blur_px >= 1.5:
        env = motion_blur(env, pose.blur_px, pose.blur_angle_deg)
    if pose.contact != (0.0, 1.0):
        env, mask = lose_contact(env, mask, pose.contact, s, gen)

    return log_compress(env, imaging), mask


def speckle_reduction(env: np.ndarray, imaging: Imaging, spacing_mm: float) -> np.ndarray:
    """Average intensity over a small neighbourhood, as scanners' speckle-reduction filters do.

    Without it the log display shows the speckle's deep nulls as a network of thin black lines.
    """
    sx, sz = (max(v / spacing_mm, 0.3) for v in imaging.speckle_smoothing_mm)
    return cv2.sqrt(cv2.GaussianBlur(env * env, (0, 0), sigmaX=sx, sigmaY=sz))


def motion_blur(env: np.ndarray, length_px: float, angle_deg: float) -> np.ndarray:
    """Smear the image along a line (fast probe motion during the frame)."""
    size = int(math.ceil(length_px)) | 1
    kernel = np.zeros((size, size), np.float32)
    kernel[size // 2, :] = 1.0
    rot = cv2.getRotationMatrix2D(((size - 1) / 2, (size - 1) / 2), angle_deg, 1.0)
    kernel = cv2.warpAffine(kernel, rot, (size, size))
    kernel /= max(float(kernel.sum()), 1e-6)
    return cv2.filter2D(env, -1, kernel, borderType=cv2.BORDER_REFLECT)


def lose_contact(
    env: np.ndarray, mask: np.ndarray, contact: tuple[float, float], spacing_mm: float, gen: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Probe (partly) lifted: where the face is off the skin only reverberations of the lens remain."""
    n_rows, n_cols = env.shape
    cols = np.linspace(0.0, 1.0, n_cols, dtype=np.float32)
    soft = 0.04
    touching = np.clip((cols - contact[0]) / soft + 0.5, 0, 1) * np.clip((contact[1] - cols) / soft + 0.5, 0, 1)
    z = np.arange(n_rows, dtype=np.float32)[:, None] * spacing_mm
    period = gen.uniform(1.0, 1.8)
    bands = (0.5 * (1 + np.cos(2 * np.pi * z / period))) ** 6  # smooth bands: lens/skin reverberations
    texture = cv2.GaussianBlur(gen.standard_normal((n_rows, n_cols), dtype=np.float32), (0, 0), sigmaX=3.0, sigmaY=0.8)
    reverb = 2.0 * np.exp(-z / 4.0) * bands * (1 + 0.6 * texture) + 0.02
    env = env * touching[None, :] + np.abs(reverb).astype(np.float32) * (1 - touching[None, :])
    mask = mask * (touching[None, :] > 0.5).astype(np.uint8)
    return env, mask


def log_compress(env: np.ndarray, imaging: Imaging) -> np.ndarray:
    """Map envelope to 8 bits: log compression over ``dynamic_range_db``, then the scanner's gray map.

    The gray map (a power curve) darkens the low end as scanners do, so speckle reads as bright
    grains on a dark background and fat is dark.
    """
    db = 20.0 * np.log10(env + 1e-6) + imaging.gain_db
    top = 6.0  # dB of full white above unit-echo speckle's mean level
    level = np.clip((db - (top - imaging.dynamic_range_db)) / imaging.dynamic_range_db, 0.0, 1.0)
    return (255.0 * level**imaging.gray_map_power).astype(np.uint8)
