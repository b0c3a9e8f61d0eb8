"""Time the synthetic dataset generator: total wall time, CPU time and time per frame.

    python benchmarks/bench_synth.py                 # the default study cohort (94 wrists, 188 videos)
    python benchmarks/bench_synth.py --profile smoke # the smoke profile's tiny cohort
    python benchmarks/bench_synth.py --workers 1     # one process

Generates into a temporary folder (deleted afterwards); the machine's other load inflates wall time,
so CPU time per frame is printed as well.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/hardware.py

import hardware  # noqa: E402
from ctslib.report.profiles import load_profile  # noqa: E402
from ctslib.synth.config import SynthConfig  # noqa: E402
from ctslib.synth.dataset import PARALLEL_MIN_FRAMES, generate  # noqa: E402


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the render workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="default", help="profile whose stage-00 block configures the data")
    parser.add_argument("--workers", type=int, default=None, help="render processes (default: the profile's)")
    args = parser.parse_args()
    profile = load_profile(args.profile)
    params = {k: v for k, v in profile.parameters("00").items() if k not in ("DATA_DIR", "WORK_DIR", "REPORT_DIR")}
    config = SynthConfig.from_parameters(**params)
    if args.workers is not None:
        config = SynthConfig.from_parameters(**{**params, "WORKERS": args.workers})
    tmp = Path(tempfile.mkdtemp(prefix="bench_synth_"))
    try:
        wall0, cpu0 = time.perf_counter(), cpu_seconds()
        facts = generate(tmp / "data", config, progress=False)
        wall, cpu = time.perf_counter() - wall0, cpu_seconds() - cpu0
        size_mb = sum(p.stat().st_size for p in (tmp / "data").rglob("*") if p.is_file()) / 1e6
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    n = facts["n_frames"]
    workers = config.workers if n >= PARALLEL_MIN_FRAMES else 1
    print(f"profile {args.profile}: {config.n_wrists} wrists, {facts['n_videos']} videos, {n} source frames "
          f"({config.frame_size} px, {config.source_fps:g} fps), workers {workers}, cores {os.cpu_count()}")
    print(hardware.isa_line())
    print(f"total wall {wall:.1f} s  ({wall / n * 1000:.2f} ms per frame)")
    print(f"total CPU  {cpu:.1f} s  ({cpu / n * 1000:.2f} ms per frame per core)")
    print(f"dataset size {size_mb:.0f} MB  ({size_mb * 1000 / n:.1f} kB per frame)")


if __name__ == "__main__":
    main()
