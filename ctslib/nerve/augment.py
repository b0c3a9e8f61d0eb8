"""Device-shift augmentation for the nerve segmenter (NumPy + OpenCV, seeded).

A segmenter trained on one scanner meets others: different gain, dynamic range (gamma,
contrast), speckle, lateral/axial resolution, imaging depth, field of view and screen borders.
``augment_pair`` draws one such "other device" per call from a seeded ``numpy.random.Generator``
and applies it to an image and its nerve mask alike where geometric:

* **zoom, shift and depth crop** (one affine warp): the field of view is a random box of the
  source (zoom in 0.7-1.0, zoom out to 1.25 with dark fill); a depth crop keeps the top part of
  the image (a shallower depth setting), stretched to the square input;
* **horizontal flip** (left and right wrists mirror each other; never vertical: depth runs down);
* **resolution change** (down- then up-sampling) and **blur** (a wider point-spread function);
* **speckle** (smoothed multiplicative noise) plus a little additive noise;
* **gain, gamma, contrast** and a depth ramp (time-gain compensation);
* **dark borders** (black bands of screen captures and sector edges; the mask is cut alike).

Every draw comes from ``gen``, so the same generator state gives the same pair, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges and probabilities of ``augment_pair`` (defaults: the shipped segmenter's recipe)."""

    zoom_in: tuple[float, float] = (0.7, 1.0)      # side of the field of view, as a share of the source
    p_zoom_out: float = 0.1                        # probability of showing more than the source (dark fill)
    zoom_out: tuple[float, float] = (1.0, 1.25)
    p_depth_crop: float = 0.25                     # keep only the top of the image (shallower depth)
    depth_keep: tuple[float, float] = (0.65, 0.95)
    aspect: tuple[float, float] = (0.85, 1.18)     # width / height jitter of the field of view
    p_flip: float = 0.5
    p_lowres: float = 0.25
    lowres_factor: tuple[float, float] = (1.5, 2.5)
    p_blur: float = 0.25
    blur_sigma: tuple[float, float] = (0.4, 1.2)   # pixels of the output
    p_speckle: float = 0.4
    speckle_sd: tuple[float, float] = (0.05, 0.25)
    noise_sd: tuple[float, float] = (0.0, 0.02)
    gain: tuple[float, float] = (0.7, 1.4)
    gamma: tuple[float, float] = (0.7, 1.5)        # drawn log-uniformly
    contrast: tuple[float, float] = (0.75, 1.3)
    depth_ramp: tuple[float, float] = (-0.3, 0.3)  # relative gain change from top to bottom
    p_borders: float = 0.2                         # share of frames given dark bands at their edges
    border_max: float = 0.12                       # widest dark band, as a share of the side


def _field_of_view(height: int, width: int, gen: np.random.Generator, cfg: AugmentConfig) -> tuple[float, float, float, float]:
    """A random source box (x0, y0, box_width, box_height) in source pixels; may exceed the image."""
    if gen.random() < cfg.p_zoom_out:
        side = gen.uniform(*cfg.zoom_out)
    else:
        side = gen.uniform(*cfg.zoom_in)
    aspect = np.exp(gen.uniform(np.log(cfg.aspect[0]), np.log(cfg.aspect[1])))
    box_w = width * side * np.sqrt(aspect)
    box_h = height * side / np.sqrt(aspect)
    if gen.random() < cfg.p_depth_crop:
        box_h = min(box_h, height * gen.uniform(*cfg.depth_keep))
        y0 = gen.uniform(-0.05, 0.05) * height  # a depth crop starts at the skin
    else:
        y0 = gen.uniform(min(0.0, height - box_h), max(0.0, height - box_h))
    x0 = gen.uniform(min(0.0, width - box_w), max(0.0, width - box_w))
    return x0, y0, box_w, box_h


def _warp(image: np.ndarray, box: tuple[float, float, float, float], size: int, flip: bool) -> np.ndarray:
    """Resample the source ``box`` onto a ``size`` square (bilinear, black outside the source)."""
    x0, y0, box_w, box_h = box
    sx, sy = size / box_w, size / box_h
    # pixel centres map to pixel centres (as cv2.resize): out = s * (src - origin + 0.5) - 0.5
    matrix = np.array([[sx, 0.0, sx * (0.5 - x0) - 0.5], [0.0, sy, sy * (0.5 - y0) - 0.5]], np.float64)
    if flip:
        matrix[0] = [-sx, 0.0, size - 1 - matrix[0, 2]]  # mirror within the output
    if min(box_w, box_h) / size > 1.5:  # strong downsampling: pre-smooth against aliasing
        sigma = 0.5 * min(box_w, box_h) / size
        image = cv2.GaussianBlur(image, (0, 0), sigma)
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def _smooth_noise(size: int, sigma: float, gen: np.random.Generator) -> np.ndarray:
    """Unit-SD Gaussian noise smoothed over ``sigma`` pixels (speckle grain)."""
    noise = gen.standard_normal((size, size)).astype(np.float32)
    if sigma > 0:
        noise = cv2.GaussianBlur(noise, (0, 0), sigma)
        noise /= max(float(noise.std()), 1e-6)
    return noise


def augment_pair(
    image: np.ndarray,
    mask: np.ndarray,
    size: int,
    gen: np.random.Generator,
    cfg: AugmentConfig = AugmentConfig(),
) -> tuple[np.ndarray, np.ndarray]:
    """One device-shifted view of an image and its mask, resampled to ``size`` x ``size``.

    Args:
        image: grayscale (H, W), float32 in [0, 1] (or uint8, scaled by 1/255).
        mask: nerve mask (H, W), 0/1 (soft values allowed), or (H, W, C) with C <= 4 target
            planes warped alike (e.g. nerve, vessel, "vessels labelled").
        size: output side in pixels.
        gen: the only source of randomness.
        cfg: augmentation ranges.

    Returns:
        ``(image, mask)``, float32 in [0, 1], (size, size) and the mask's own channels; soft edges.
    """
    img = image.astype(np.float32) / (255.0 if image.dtype == np.uint8 else 1.0)
    msk = mask.astype(np.float32)
    box = _field_of_view(*img.shape, gen, cfg)
    flip = gen.random() < cfg.p_flip
    out = _warp(img, box, size, flip)
    out_mask = np.clip(_warp(msk, box, size, flip), 0.0, 1.0)

    if gen.random() < cfg.p_lowres:
        small = max(8, int(round(size / gen.uniform(*cfg.lowres_factor))))
        out = cv2.resize(cv2.resize(out, (small, small), interpolation=cv2.INTER_AREA), (size, size),
                         interpolation=cv2.INTER_LINEAR)
    if gen.random() < cfg.p_blur:
        out = cv2.GaussianBlur(out, (0, 0), gen.uniform(*cfg.blur_sigma))
    if gen.random() < cfg.p_speckle:
        grain = _smooth_noise(size, gen.uniform(0.5, 1.5), gen)
        out = out * np.clip(1.0 + gen.uniform(*cfg.speckle_sd) * grain, 0.0, None)
    out = out + gen.uniform(*cfg.noise_sd) * gen.standard_normal((size, size)).astype(np.float32)

    gamma = np.exp(gen.uniform(np.log(cfg.gamma[0]), np.log(cfg.gamma[1])))
    out = np.clip(out * gen.uniform(*cfg.gain), 0.0, 1.0) ** gamma
    mean = float(out.mean())
    out = (out - mean) * gen.uniform(*cfg.contrast) + mean
    ramp = 1.0 + gen.uniform(*cfg.depth_ramp) * (np.linspace(-0.5, 0.5, size, dtype=np.float32)[:, None])
    out = out * ramp

    if gen.random() < cfg.p_borders:
        bands = gen.uniform(0.0, cfg.border_max, size=3) * (gen.random(3) < 0.6)
        left, right, top = (int(round(b * size)) for b in bands)
        for region in (np.s_[:, :left], np.s_[:, size - right:] if right else np.s_[:, :0], np.s_[:top, :]):
            out[region] = 0.0
            out_mask[region] = 0.0
    return np.clip(out, 0.0, 1.0).astype(np.float32), out_mask.astype(np.float32)


def augment_batch(
    images: list[np.ndarray],
    masks: list[np.ndarray],
    size: int,
    gen: np.random.Generator,
    cfg: AugmentConfig = AugmentConfig(),
) -> tuple[np.ndarray, np.ndarray]:
    """``augment_pair`` over lists; returns model arrays ``(N, size, size, 1)`` (images) and
    ``(N, size, size, C)`` (targets: C = 1 for (H, W) masks, else the masks' channel count)."""
    pairs = [augment_pair(im, m, size, gen, cfg) for im, m in zip(images, masks)]
    channels = masks[0].shape[2] if len(masks) and masks[0].ndim == 3 else 1
    if not pairs:
        return np.zeros((0, size, size, 1), np.float32), np.zeros((0, size, size, channels), np.float32)
    y = np.stack([p[1] for p in pairs])
    return np.stack([p[0] for p in pairs])[..., None], y if y.ndim == 4 else y[..., None]
