"""One simulated scan video: probe motion, runs of bad frames, rendering, AVI + mask files.

A hand-held scan is simulated as a smooth small sway of the probe (good frames) interrupted by
runs of bad frames, each run of one kind (``BAD_REASONS``):

* ``blur``        the probe slides quickly: frames smeared laterally, speckle decorrelates;
* ``dropout``     the probe is (partly) lifted: contact lost over part or all of the face;
* ``misaligned``  the plane leaves the nerve: transverse slides until the nerve is out of the field,
  longitudinal slips beside the nerve (a tendon where the nerve was);
* ``frozen``      the display freezes: the last frame repeats unchanged.

Everything random comes from one generator per video, seeded by ``ctslib.common.seed.rng(seed, stem)``,
so a video is the same whichever worker renders it and in whatever order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ctslib.common.seed import rng
from ctslib.synth.anatomy import Canvas, WristAnatomy, longitudinal_scene, transverse_scene
from ctslib.synth.bmode import FramePose, Imaging, World, make_world, render_frame
from ctslib.synth.config import BAD_REASONS, SynthConfig

VIDEO_SUFFIX = ".avi"
VIDEO_FOURCC = "MJPG"
"""Motion-JPEG in AVI: intra-frame only, so frames decode exactly and identically everywhere, and
seeking is frame-accurate; OpenCV's bundled FFmpeg writes and reads it on every platform."""

EXTRACTION_FPS = 5.0  # the pipeline's frame extraction rate (the paper's 5 fps)
TRANSVERSE_PAD_MM = 30.0  # canvas margin beside the image: room to slide the nerve out of view
LONGITUDINAL_PAD_MM = 5.0


@dataclass(frozen=True)
class VideoJob:
    """Everything a worker needs to render one video (picklable)."""

    stem: str
    plane: str
    anatomy: WristAnatomy
    config: SynthConfig
    root: Path  # dataset folder being written (videos/ and masks/ exist)


def smooth_series(n: int, fps: float, gen: np.random.Generator, fmin_hz: float = 0.08, fmax_hz: float = 0.7) -> np.ndarray:
    """A smooth random signal in about [-1, 1]: three sinusoids of random frequency and phase."""
    t = np.arange(n) / fps
    out = np.zeros(n)
    for _ in range(3):
        out += gen.uniform(0.4, 1.0) * np.sin(2 * np.pi * gen.uniform(fmin_hz, fmax_hz) * t + gen.uniform(0, 2 * np.pi))
    return out / 2.0


def _composition(total: int, parts: int, minimum: int, gen: np.random.Generator) -> list[int]:
    """Split ``total`` into ``parts`` random run lengths, each at least ``minimum``."""
    spare = total - parts * minimum
    weights = gen.dirichlet(np.full(parts, 2.0))
    return [minimum + int(k) for k in gen.multinomial(spare, weights)]


def bad_timeline(n: int, fps: float, share: float, mix: tuple[float, ...], gen: np.random.Generator) -> list[str]:
    """Reason per frame ('' = good): bad frames come in runs of one kind, a few seconds each.

    The video's bad share is drawn around ``share`` (Beta, sd about 0.045) and each video keeps at
    least 8 % good frames. Good runs last at least one 5 fps extraction interval, so every good run
    survives the pipeline's frame extraction.
    """
    if share <= 0 or n < 4:
        return [""] * n
    concentration = 80.0
    drawn = gen.beta(share * concentration, (1 - share) * concentration)
    min_good = max(2, math.ceil(0.08 * n))
    n_bad = int(np.clip(round(drawn * n), 0, n - min_good))
    n_good = n - n_bad
    if n_bad == 0:
        return [""] * n
    min_good_run = max(1, math.ceil(fps / EXTRACTION_FPS))
    k_bad = max(1, min(round(n_bad / (2.5 * fps)), n_bad // 2))
    k_good = int(np.clip(k_bad + gen.integers(-1, 2), 1, max(1, n_good // min_good_run)))
    k_bad = int(np.clip(k_bad, k_good - 1, k_good + 1))
    bad_runs = _composition(n_bad, k_bad, min(2, n_bad // k_bad), gen)
    good_runs = _composition(n_good, k_good, min(min_good_run, n_good // k_good), gen)
    start_bad = k_bad > k_good or (k_bad == k_good and gen.random() < 0.6)
    p = np.asarray(mix, float) / sum(mix)
    reasons: list[str] = []
    runs_b, runs_g = iter(bad_runs), iter(good_runs)
    for turn in range(k_bad + k_good):
        bad_turn = (turn % 2 == 0) == start_bad
        if bad_turn:
            reason = str(gen.choice(BAD_REASONS, p=p))
            if not reasons and (reason == "frozen" or gen.random() < 0.5):
                reason = "dropout"  # a scan usually starts while the probe is being placed
            reasons += [reason] * next(runs_b)
        else:
            reasons += [""] * next(runs_g)
    return reasons


def _runs(reasons: list[str]) -> list[tuple[int, int, str]]:
    """(start, stop, reason) of every maximal run of equal reasons."""
    out, start = [], 0
    for i in range(1, len(reasons) + 1):
        if i == len(reasons) or reasons[i] != reasons[start]:
            out.append((start, i, reasons[start]))
            start = i
    return out


def plan_poses(job: VideoJob, reasons: list[str], rest_nerve_x_mm: float, gen: np.random.Generator) -> list[FramePose]:
    """Probe pose of every frame: small smooth sway, plus what each bad run does to the probe."""
    cfg, an = job.config, job.anatomy
    n, fps, s = len(reasons), cfg.source_fps, cfg.pixel_spacing_mm
    dx = an.sway_mm * smooth_series(n, fps, gen)
    dz = 0.3 * an.sway_mm * smooth_series(n, fps, gen)
    angle = 1.0 * smooth_series(n, fps, gen)
    decor = math.pi / 4 + 0.3 * smooth_series(n, fps, gen, 0.2, 1.2)
    blur = np.zeros(n)
    blur_angle = np.zeros(n)
    contact = [(0.0, 1.0)] * n
    half_width = cfg.depth_mm / 2
    for start, stop, reason in _runs(reasons):
        length = stop - start
        phase = np.linspace(0, np.pi, length + 2)[1:-1]
        if reason == "blur":
            sign = gen.choice([-1.0, 1.0])
            dx[start:stop] += sign * gen.uniform(1.0, 3.0) * np.sin(phase)
            decor[start:stop] += np.cumsum(gen.uniform(0.3, 0.8, length))
            blur[start:stop] = gen.uniform(0.45, 1.3, length) / s
            blur_angle[start:stop] = gen.normal(0, 8, length)
        elif reason == "dropout":
            lost = gen.uniform(0.45, 1.0)
            jitter = np.clip(lost + gen.normal(0, 0.05, length), 0.35, 1.0)
            from_left = gen.random() < 0.5
            for i, f in zip(range(start, stop), jitter):
                contact[i] = (float(f), 1.0) if from_left else (0.0, float(1 - f))
            dz[start:stop] -= gen.uniform(0.2, 0.8)
        elif reason == "misaligned" and job.plane == "transverse":
            side = math.copysign(1.0, rest_nerve_x_mm) if abs(rest_nerve_x_mm) > 0.5 else gen.choice([-1.0, 1.0])
            out_at = side * (half_width + an.half_width_mm + gen.uniform(1.0, 5.0))
            ramp = np.clip(np.minimum(np.arange(1, length + 1), np.arange(length, 0, -1)) / 3.0, 0, 1)
            dx[start:stop] += (rest_nerve_x_mm - out_at) * ramp
            angle[start:stop] += gen.normal(0, 2.0)
        elif reason == "misaligned":
            dx[start:stop] += gen.uniform(-3.0, 3.0)
            angle[start:stop] += gen.normal(0, 2.0)
    return [
        FramePose(float(dx[i]), float(dz[i]), float(angle[i]), float(decor[i]), float(blur[i]), float(blur_angle[i]), contact[i])
        for i in range(n)
    ]


def build_worlds(job: VideoJob, gen: np.random.Generator) -> tuple[World, World | None]:
    """Tissue worlds of the video: in plane, and (longitudinal only) beside the nerve."""
    cfg = job.config
    if job.plane == "transverse":
        canvas = Canvas.around_image(cfg.frame_size, cfg.pixel_spacing_mm, TRANSVERSE_PAD_MM)
        return make_world(transverse_scene(job.anatomy, canvas, gen), canvas, gen), None
    canvas = Canvas.around_image(cfg.frame_size, cfg.pixel_spacing_mm, LONGITUDINAL_PAD_MM)
    state = gen.bit_generator.state
    on = make_world(longitudinal_scene(job.anatomy, canvas, gen), canvas, gen)
    gen.bit_generator.state = state  # same surroundings beside the nerve
    off = make_world(longitudinal_scene(job.anatomy, canvas, gen, nerve_in_plane=False), canvas, gen)
    return on, off


def render_video(job: VideoJob) -> list[dict]:
    """Render, write ``videos/<stem>.avi`` and ``masks/<stem>.npz``; return one truth row per frame."""
    cfg, an = job.config, job.anatomy
    gen = rng(cfg.seed, "video", job.stem)
    n, fps, s = cfg.n_frames, cfg.source_fps, cfg.pixel_spacing_mm
    world, off_plane = build_worlds(job, gen)
    imaging = Imaging(gain_db=an.gain_db + gen.normal(0, 0.7), dynamic_range_db=an.dynamic_range_db)
    reasons = bad_timeline(n, fps, cfg.bad_share, cfg.bad_mix, gen)
    rest_x = -an.nerve_x_mm if an.mirrored else an.nerve_x_mm
    poses = plan_poses(job, reasons, rest_x, gen)

    path = job.root / "videos" / f"{job.stem}{VIDEO_SUFFIX}"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*VIDEO_FOURCC), fps, (cfg.frame_size, cfg.frame_size), isColor=False)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {VIDEO_FOURCC} video {path}")
    masks = np.zeros((n, cfg.frame_size, cfg.frame_size), np.uint8)
    rows = []
    frame = mask = None
    try:
        for i, (reason, pose) in enumerate(zip(reasons, poses)):
            if reason == "frozen" and frame is not None:
                pass  # the display repeats the previous frame (and its mask) unchanged
            else:
                use_off = reason == "misaligned" and off_plane is not None
                frame, mask = render_frame(off_plane if use_off else world, pose, imaging, gen)
            writer.write(frame)
            masks[i] = mask
            area_px = int(mask.sum())
            rows.append(
                {
                    "video": job.stem,
                    "wrist_id": an.wrist_id,
                    "plane": job.plane,
                    "source_index": i,
                    "time_s": i / fps,
                    "bad_reason": reason,
                    "nerve_in_view": area_px >= 0.5 * world.rest_mask_px and area_px > 0,
                    "mask_area_mm2": area_px * s * s,
                    "csa_mm2": an.csa_mm2,
                    "dx_mm": pose.dx_mm,
                    "dz_mm": pose.dz_mm,
                    "angle_deg": pose.angle_deg,
                }
            )
    finally:
        writer.release()
    np.savez_compressed(job.root / "masks" / f"{job.stem}.npz", index=np.arange(n, dtype=np.int32), mask=masks)
    return rows
