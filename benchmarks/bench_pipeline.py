#!/usr/bin/env python3
"""Wall time and peak memory of every stage, end to end, for one or more profiles.

    python benchmarks/bench_pipeline.py                 # smoke, into a temporary folder
    python benchmarks/bench_pipeline.py --profile default
    python benchmarks/bench_pipeline.py --report reports/default   # just print an existing run's figures
    python benchmarks/bench_pipeline.py --compare OLD/reports/default NEW/reports/default

``--compare`` sets two runs side by side, stage by stage, as the ratio old / new (above 1: the new run
is faster), and refuses to call it a speed-up when the two ran on different machines: a ratio means
something only for runs on one machine, best alternated (benchmarks/README.md).

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


def stage_seconds(manifest: dict) -> dict[str, tuple[str, float, str]]:
    """Per stage key: (notebook stem, seconds, machine line) of a run's manifest."""
    latest = machine_line(manifest.get("cpu", {}))
    return {key: (Path(stage["notebook"]).stem, float(stage["seconds"]), stage.get("machine") or latest)
            for key, stage in sorted(manifest["stages"].items())}


def compare_manifests(old: dict, new: dict) -> list[str]:
    """Lines of a stage-by-stage table of two runs: seconds of each, ratio old / new, and the machines.

    The whole run's ratio uses ``wall_seconds`` when both manifests have it (it holds the start-up
    between stages), else the sum of the stages. A stage one run lacks is listed with a dash.
    """
    a, b = stage_seconds(old), stage_seconds(new)
    machines = {m for _, _, m in (*a.values(), *b.values())}
    lines = [f"{'stage':<28}{'old s':>9}{'new s':>9}{'old/new':>9}"]
    for key in sorted(set(a) | set(b)):
        name = (a.get(key) or b.get(key))[0]
        sa, sb = (a[key][1] if key in a else None), (b[key][1] if key in b else None)
        ratio = f"{sa / sb:.2f}" if sa and sb else "-"
        lines.append(f"{name:<28}{sa if sa is not None else '-':>9}{sb if sb is not None else '-':>9}{ratio:>9}")
    if "wall_seconds" in old and "wall_seconds" in new:
        wa, wb, label = float(old["wall_seconds"]), float(new["wall_seconds"]), "wall_seconds"
    else:
        wa, wb, label = sum(s for _, s, _ in a.values()), sum(s for _, s, _ in b.values()), "sum of stages"
    lines.append(f"{label:<28}{wa:>9.1f}{wb:>9.1f}{wa / wb:>9.2f}")
    if len(machines) == 1:
        lines.append(f"both runs on: {machines.pop()}")
    else:
        lines.append("NOT COMPARABLE as a speed-up: the stages ran on different machines: " + "; ".join(sorted(machines)))
    return lines


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
    parser.add_argument("--compare", type=Path, nargs=2, metavar=("OLD", "NEW"),
                        help="two report folders: stage times side by side and their ratio")
    args = parser.parse_args()
    if args.compare:
        old, new = (json.loads((folder / "manifest.json").read_text()) for folder in args.compare)
        print("\n".join(compare_manifests(old, new)))
        return
    if args.report:
        print_manifest(args.report)
        return
    for profile in args.profile:
        run_profile(profile, args.fresh_data)


if __name__ == "__main__":
    main()
