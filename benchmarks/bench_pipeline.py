#!/usr/bin/env python3
"""Wall time and peak memory of every stage, end to end, for one or more profiles.

    python benchmarks/bench_pipeline.py                 # smoke, into a temporary folder
    python benchmarks/bench_pipeline.py --profile default
    python benchmarks/bench_pipeline.py --report reports/default   # just print an existing run's figures

Runs ``run_all.py --force`` (every stage re-executed; the synthetic dataset is regenerated only when
``--fresh-data`` is given), then prints the per-stage table that run_all recorded in the report's
manifest.json (stage seconds, peak kernel memory) and the whole run's wall time and peak memory.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from ctslib.common.machine import machine_line  # noqa: E402


def print_manifest(report: Path, wall_s: float | None = None, peak_mb: float | None = None) -> None:
    """The per-stage table of a run's manifest, with the machine each stage's time was measured on."""
    manifest = json.loads((report / "manifest.json").read_text())
    latest = machine_line(manifest.get("cpu", {}))
    print(f"\nprofile {manifest['profile']}  data {manifest['data']['source']}  ({report})")
    print(f"latest invocation ran on: {latest}")
    print(f"{'stage':<28}{'status':>12}{'seconds':>10}{'peak MiB':>10}  measured on")
    for key, stage in sorted(manifest["stages"].items()):
        peak = stage.get("peak_rss_mb")
        machine = stage.get("machine") or "not recorded (a run before machines were recorded per stage)"
        print(f"{Path(stage['notebook']).stem:<28}{stage['status']:>12}{stage['seconds']:>10.1f}{(peak or 0):>10.0f}"
              f"  {'same' if machine == latest else machine}")
    total = sum(s["seconds"] for s in manifest["stages"].values())
    peaks = [s.get("peak_rss_mb") or 0 for s in manifest["stages"].values()]
    print(f"{'sum of stages':<28}{'':>12}{total:>10.1f}{max(peaks):>10.0f}")
    if wall_s is not None:
        print(f"end-to-end wall time {wall_s:.1f} s ({wall_s / 60:.1f} min); peak memory of the whole run {peak_mb:.0f} MiB")


def run_profile(profile: str, fresh_data: bool) -> None:
    if fresh_data:
        shutil.rmtree(PROJECT / "data" / "synthetic" / profile, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix=f"bench-{profile}-") as tmp:
        report, work = Path(tmp) / "report", Path(tmp) / "work"
        cmd = [sys.executable, str(PROJECT / "run_all.py"), "--profile", profile, "--force", "--no-progress",
               "--out", str(report), "--work", str(work)]
        start = time.perf_counter()
        proc = psutil.Popen(cmd, cwd=PROJECT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        peak = 0
        while proc.poll() is None:
            try:
                procs = [proc, *proc.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in procs if p.is_running()))
            except psutil.NoSuchProcess:
                pass
            time.sleep(0.25)
        wall = time.perf_counter() - start
        if proc.returncode:
            sys.exit(f"run_all failed for profile {profile}:\n{proc.stderr.read()[-3000:]}")
        print_manifest(report, wall, peak / 2**20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", nargs="+", default=["smoke"])
    parser.add_argument("--fresh-data", action="store_true", help="regenerate the synthetic dataset too")
    parser.add_argument("--report", type=Path, help="only print the figures of an existing report folder")
    args = parser.parse_args()
    if args.report:
        print_manifest(args.report)
        return
    for profile in args.profile:
        run_profile(profile, args.fresh_data)


if __name__ == "__main__":
    main()
