#!/usr/bin/env python3
"""Re-run the whole CTS ultrasound study: every notebook in order, then the HTML report.

    python run_all.py                          # default profile on the synthetic default data
    python run_all.py --profile smoke          # a quick end-to-end check (what the tests run)
    python run_all.py --profile paper          # the published 500 / 400 epochs (GPU recommended)
    python run_all.py --data /path/to/DATA     # your own data in the layout of the README
    python run_all.py --only 04                # re-run one stage (its inputs must exist)
    python run_all.py --from 03                # re-run stage 03 and everything after it
    python run_all.py --data DATA --set 'TEXT_BANDS=[[0, 0.08]]' --set 'QC_DISABLE=[misaligned]'
                                               # override any notebook parameter (VALUE is YAML)

Stages whose inputs, parameters, notebook and library code are unchanged since their last
successful run are skipped (see ctslib/report/runner.py); a killed run resumes where it stopped.
Executed notebooks, their HTML, tables, figures, index.html and manifest.json land in
reports/<run>/; frames, crops and models in work/<run>/.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from ctslib.common.errors import InputError, StageError
from ctslib.common.io import sha256_tree
from ctslib.common.paths import NOTEBOOKS_DIR, REPORTS_ROOT, STAGES, SYNTHETIC_ROOT, WORK_ROOT, RunPaths
from ctslib.report.profiles import available_profiles, load_profile, parse_overrides
from ctslib.report.index import build_manifest, git_commit, write_report
from ctslib.report.runner import RunPlan, StageResult, declared_parameters, make_private, read_stamp, run_stages


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="default", help=f"one of {available_profiles()} or a YAML path (default: default)")
    parser.add_argument("--data", type=Path, help="input data folder (default: the synthetic dataset of the profile, generated on first use)")
    parser.add_argument("--run", help="run name (default: the profile name, with '-real' for --data runs)")
    parser.add_argument("--out", type=Path, help="report folder (default: reports/<run>)")
    parser.add_argument("--work", type=Path, help="work folder for frames, crops and models (default: work/<run>)")
    stage_choice = sorted(STAGES)
    parser.add_argument("--only", nargs="+", choices=stage_choice, metavar="NN", help="run only these stages (forced)")
    parser.add_argument("--from", dest="from_stage", choices=stage_choice, metavar="NN", help="re-run from this stage on (forced)")
    parser.add_argument("--force", action="store_true", help="ignore stamps and re-run every planned stage")
    parser.add_argument("--skip-bad-inputs", action="store_true", help="continue past unreadable videos (listed in the report)")
    parser.add_argument("--kernel", default="python3", help="Jupyter kernel name (default: python3 = this interpreter's ipykernel)")
    parser.add_argument("--no-progress", action="store_true", help="hide papermill's per-cell progress bars")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                        help="override parameter NAME in every stage whose notebook declares it (repeatable); "
                             "VALUE is YAML: --set EPOCHS=5, --set 'TEXT_BANDS=[[0, 0.08]]', --set OVERLAY_MASK=true, "
                             "--set 'QC_DISABLE=[misaligned]'. Wins over the profile; a name no stage declares is an error")
    return parser.parse_args(argv)


def declared_by_stage() -> dict[str, frozenset[str]]:
    """Parameter names each stage's notebook declares (what ``--set`` may override)."""
    return {key: frozenset(declared_parameters(NOTEBOOKS_DIR / name)) for key, name in STAGES.items()}


def plan_stages(args: argparse.Namespace, synthetic: bool) -> tuple[list[str], set[str]]:
    """Stages to consider in this invocation and the ones forced to re-run."""
    keys = [k for k in sorted(STAGES) if synthetic or k != "00"]
    if args.only:
        chosen = [k for k in keys if k in args.only]
        if not chosen:
            raise StageError(f"--only {args.only}: nothing to run (stage 00 is the synthetic generator, not used with --data)")
        return chosen, set(chosen)
    if args.from_stage:
        chosen = [k for k in keys if k >= args.from_stage]
        return chosen, set(chosen)
    return keys, set(keys) if args.force else set()


def earlier_results(paths: RunPaths, planned: list[str], synthetic: bool) -> list[StageResult]:
    """Stages finished in earlier invocations and not planned now, so the index still lists them."""
    results = []
    for key in sorted(STAGES):
        if key in planned or (key == "00" and not synthetic):
            continue
        done = read_stamp(paths.stage_dir(key))
        if done:
            results.append(StageResult(key, STAGES[key], "earlier run", done.get("seconds", 0.0),
                                       done.get("peak_rss_mb"), done.get("outputs", []), done.get("stamp", ""),
                                       machine=done.get("machine", "")))
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.time()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # kernels inherit it: keep TensorFlow's C++ chatter out of the log
    profile = load_profile(args.profile)
    if args.overrides:
        profile = profile.with_overrides(parse_overrides(args.overrides), declared_by_stage())
    commit = git_commit()  # the code the stages run with, even if the tree changes during the run
    synthetic = args.data is None
    run = args.run or (profile.name if synthetic else f"{profile.name}-real")
    paths = RunPaths(work=(args.work or WORK_ROOT / run).resolve(), report=(args.out or REPORTS_ROOT / run).resolve())
    data_dir = (SYNTHETIC_ROOT / profile.name).resolve() if synthetic else args.data.expanduser().resolve()
    if not synthetic and not data_dir.is_dir():
        raise InputError("data folder not found", file=data_dir)
    stages, forced = plan_stages(args, synthetic)
    plan = RunPlan(stages=stages, forced=forced, parameters=profile.parameters,
                   common_keys=list(profile.common), synthetic=synthetic)
    print(f"CTS study run '{run}': profile {profile.name}, data {data_dir}"
          f"{' (synthetic default)' if synthetic else ''}\n  report -> {paths.report}\n  work   -> {paths.work}")
    if profile.overrides:
        print(f"  --set  -> {profile.overrides}")
    extra = {"SKIP_BAD_INPUTS": bool(args.skip_bad_inputs)}
    try:
        results, data_hash = run_stages(plan, paths, data_dir, kernel=args.kernel, progress=not args.no_progress,
                                        extra=extra)
    except BaseException:  # interrupted or a dead kernel: the partly executed notebook still gets no machine path
        make_private(paths, data_dir)
        raise
    all_results = sorted(results + earlier_results(paths, stages, synthetic), key=lambda r: r.key)
    make_private(paths, data_dir, all_results)  # before the manifest hashes the tables; errors pseudonymised
    if not data_hash and data_dir.exists():
        data_hash = sha256_tree(data_dir)
    params = {r.key: profile.parameters(r.key) for r in all_results}
    manifest = build_manifest(profile=profile.name, parameters=params, data_dir=data_dir, data_hash=data_hash,
                              results=all_results, paths=paths, started=started, git=commit)
    index = write_report(paths, manifest, all_results)
    make_private(paths, data_dir)  # manifest.json and index.html quote the command line
    failed = [r for r in results if r.status == "failed"]
    if failed:
        r = failed[0]
        print(f"\nStage {r.key} ({r.stem}) failed: {r.error}\n"
              "(as the report shows it: participant IDs pseudonymised, folders as <data>, <work> ...; "
              "the FAILED line above names your file)\n"
              f"The executed notebook with the traceback: {paths.report / r.notebook}\n"
              f"Report so far: {index}", file=sys.stderr)
        return 1
    print(f"\nReport: {index}  ({time.time() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (InputError, StageError) as err:
        print(f"run_all: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("run_all: interrupted; finished stages keep their stamps and are skipped next time", file=sys.stderr)
        sys.exit(130)
