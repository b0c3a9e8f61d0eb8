#!/usr/bin/env python3
"""Frame extraction throughput: the project's 5 fps extraction vs a raw OpenCV decode loop.

    python benchmarks/bench_extract.py                 # synthetic dataset if present, else test videos
    python benchmarks/bench_extract.py --data DATA --videos 20

Both sides process the same videos. The raw loop calls ``VideoCapture.read()`` on every frame (decode
+ colour conversion, nothing kept). The project's extraction (``ctslib.frames.prepare``) opens and probes each
file, grabs every frame but retrieves only the 5 fps ones, converts them to grayscale and resizes
them to 256 x 256. Throughput is counted in *source* frames per second for both, so the ratio says
how much of the raw decoder's speed extraction keeps (target: >= 0.8); frames delivered per second
at 5 fps are printed as well. Each side runs ``--repeats`` times, alternating, and the best is kept
(the first pass also warms the file cache). Wall-clock and CPU time (all threads of this process) are
both reported: on a shared machine CPU time is the steadier of the two.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/hardware.py

import hardware  # noqa: E402
from ctslib.common.paths import SYNTHETIC_ROOT  # noqa: E402
from ctslib.data.acquisition import VideoSettings  # noqa: E402
from ctslib.data.timing import TARGET_FPS  # noqa: E402
from ctslib.data.video import probe_video  # noqa: E402
from ctslib.frames.prepare import FRAME_SIZE, extract_video  # noqa: E402

SETTINGS = VideoSettings(pixel_spacing_mm=(0.1, 0.1), fps=None)


def find_videos(data: Path | None, limit: int) -> list[Path]:
    """Videos of ``data`` (or of the first synthetic dataset found), at most ``limit``."""
    roots = [data] if data else sorted(p for p in SYNTHETIC_ROOT.glob("*") if (p / "videos").is_dir())
    for root in roots:
        videos = sorted(p for p in (root / "videos").glob("*") if p.suffix.lower() in (".mp4", ".avi"))
        if videos:
            return videos[:limit]
    return []


def make_test_videos(folder: Path, count: int, seconds: float = 10.0, fps: float = 30.0, size: tuple[int, int] = (640, 480)) -> list[Path]:
    """Speckle-like MJPG test videos (the fallback when no dataset is present)."""
    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur(rng.rayleigh(60.0, (size[1], size[0])).astype(np.float32), (0, 0), 1.2)
    paths = []
    for v in range(count):
        path = folder / f"bench_{v}.avi"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size, isColor=True)
        for i in range(int(seconds * fps)):
            frame = np.clip(np.roll(base, (i * 2) % size[0], axis=1) + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)
            writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
        writer.release()
        paths.append(path)
    return paths


def raw_decode(videos: list[Path]) -> tuple[int, float, float]:
    """Decode every frame with ``read()``; returns (frames, wall seconds, CPU seconds)."""
    frames, start, cpu = 0, time.perf_counter(), time.process_time()
    for path in videos:
        capture = cv2.VideoCapture(str(path))
        while True:
            ok, _ = capture.read()
            if not ok:
                break
            frames += 1
        capture.release()
    return frames, time.perf_counter() - start, time.process_time() - cpu


def project_extract(videos: list[Path]) -> tuple[int, int, float, float]:
    """The project's extraction; returns (source frames covered, frames delivered, wall s, CPU s)."""
    covered = delivered = 0
    start, cpu = time.perf_counter(), time.process_time()
    for path in videos:
        header = probe_video(path, SETTINGS)
        video = extract_video(header, target_fps=TARGET_FPS, frame_size=FRAME_SIZE)
        covered += header.n_frames
        delivered += len(video.frames)
    return covered, delivered, time.perf_counter() - start, time.process_time() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="data folder with videos/ (default: a synthetic dataset)")
    parser.add_argument("--videos", type=int, default=24, help="at most this many videos")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per side (best kept)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        videos = find_videos(args.data, args.videos)
        source = f"{videos[0].parent.parent}" if videos else ""
        if not videos:
            videos = make_test_videos(Path(tmp), min(args.videos, 4))
            source = "generated test videos (MJPG 640x480, 30 fps, 10 s)"
        print(f"videos: {len(videos)} from {source}")
        print(f"OpenCV {cv2.__version__}, threads {cv2.getNumThreads()}")
        print(hardware.isa_line())
        raw = np.full((args.repeats, 2), np.inf)
        ours = np.full((args.repeats, 2), np.inf)
        raw_frames = covered = delivered = 0
        for r in range(args.repeats):
            raw_frames, *raw[r] = raw_decode(videos)
            covered, delivered, *ours[r] = project_extract(videos)
    best_raw, best_ours = raw.min(axis=0), ours.min(axis=0)
    for k, clock in enumerate(("wall", "CPU")):
        raw_fps, ours_fps = raw_frames / best_raw[k], covered / best_ours[k]
        ratio = ours_fps / raw_fps
        print(f"[{clock} time] raw OpenCV read() loop : {raw_frames} frames in {best_raw[k]:.2f} s = {raw_fps:,.0f} frames/s")
        print(f"[{clock} time] project 5 fps extraction: {covered} source frames in {best_ours[k]:.2f} s = "
              f"{ours_fps:,.0f} source frames/s ({delivered / best_ours[k]:,.0f} extracted {FRAME_SIZE}x{FRAME_SIZE} frames/s)")
        print(f"[{clock} time] ratio (project / raw)   : {ratio:.2f}x  (target >= 0.80x: {'met' if ratio >= 0.8 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
