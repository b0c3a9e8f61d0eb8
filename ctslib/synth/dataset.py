"""Generate (or reuse) the synthetic dataset folder in exactly the input layout of docs/pipeline.md.

``ensure_dataset(out_dir, config)`` is the entry point: if ``out_dir/synth_config.json`` equals the
config (and generator version), the folder is reused as is; otherwise the whole dataset is rendered
into a hidden temporary sibling folder that is renamed onto ``out_dir`` only when complete, so a
killed generation never leaves a half dataset under the final name. A folder that holds other data
(no ``synth_config.json``) is never overwritten.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from ctslib import PLANES
from ctslib.common.errors import InputError
from ctslib.common.io import write_csv, write_json
from ctslib.data.ncs import grade_wrist
from ctslib.common.parallel import ordered_map
from ctslib.common.paths import DataLayout, video_stem
from ctslib.common.seed import rng
from ctslib.synth.anatomy import WristAnatomy, draw_anatomy
from ctslib.synth.cohort import make_cohort
from ctslib.synth.config import SynthConfig
from ctslib.synth.video import VideoJob, render_video

CONFIG_FILE = "synth_config.json"
PARALLEL_MIN_FRAMES = 3000
"""Smaller datasets render in this process: starting worker processes would cost more than it saves."""


def wrist_anatomies(cohort: pd.DataFrame, config: SynthConfig) -> list[tuple[str, str, WristAnatomy]]:
    """(participant_id, side, anatomy) of every wrist; severity comes from grading its NCS values."""
    out = []
    for row in cohort.itertuples(index=False):
        grade = grade_wrist(row.dml_ms, row.sncv_ms, row.snap_uv).grade
        wrist_id = f"{row.participant_id}_{row.side}"
        gen = rng(config.seed, "anatomy", wrist_id)
        anatomy = draw_anatomy(wrist_id, grade, row.side, gen, config.csa_mean_mm2, config.csa_sd_mm2)
        out.append((str(row.participant_id), str(row.side), anatomy))
    return out


def acquisition(config: SynthConfig) -> dict:
    """Contents of ``acquisition.json`` for the generated data."""
    s = round(config.pixel_spacing_mm, 6)
    return {"source": "synthetic", "probe": config.probe, "pixel_spacing_mm": [s, s], "fps": config.source_fps}


def stored_config(out_dir: str | Path) -> dict | None:
    """The configuration a synthetic dataset folder was generated with, or None."""
    path = Path(out_dir) / CONFIG_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def is_current(out_dir: str | Path, config: SynthConfig) -> bool:
    """Whether ``out_dir`` already holds the dataset of ``config`` (same generator version)."""
    return stored_config(out_dir) == config.to_dict()


def ensure_dataset(out_dir: str | Path, config: SynthConfig = SynthConfig(), progress: bool = True) -> Path:
    """Generate the synthetic dataset into ``out_dir`` unless it is already there; return its path.

    Raises:
        InputError: ``out_dir`` exists, is not empty and is not a synthetic dataset (never overwritten).
    """
    out = Path(out_dir).expanduser().resolve()
    if is_current(out, config):
        return out
    if out.exists() and any(out.iterdir()) and stored_config(out) is None:
        raise InputError(f"folder holds other data (no {CONFIG_FILE}); refusing to overwrite it", file=out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(out)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        generate(tmp, config, progress=progress)
        _swap_into_place(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def generate(root: Path, config: SynthConfig, progress: bool = True) -> dict:
    """Write the whole dataset into the (new) folder ``root``; return timing facts."""
    start = time.perf_counter()
    layout = DataLayout(root)
    for folder in (layout.videos_dir, layout.masks_dir, layout.truth_dir):
        folder.mkdir(parents=True, exist_ok=True)
    cohort = make_cohort(config.seed, config.grade_counts, config.n_participants)
    wrists = wrist_anatomies(cohort, config)
    jobs = [
        VideoJob(video_stem(pid, side, plane), plane, anatomy, config, root)
        for pid, side, anatomy in wrists
        for plane in PLANES
    ]
    rows: dict[str, list[dict]] = {}
    bar = tqdm(total=len(jobs) * config.n_frames, desc="synthetic videos", unit="frame", disable=not progress)
    with bar:
        workers = config.workers if len(jobs) * config.n_frames >= PARALLEL_MIN_FRAMES else 1
        for job, result in zip(jobs, ordered_map(render_video, jobs, workers)):
            rows[job.stem] = result
            bar.update(len(result))
    frames = pd.DataFrame([r for job in jobs for r in rows[job.stem]])
    write_csv(cohort, layout.cohort_csv)
    write_json(layout.acquisition_json, acquisition(config))
    write_csv(_wrist_truth(wrists, frames), layout.truth_dir / "wrists.csv")
    write_csv(frames, layout.truth_dir / "frames.csv")
    seconds = time.perf_counter() - start
    write_json(root / CONFIG_FILE, config.to_dict())  # written last: marks the folder complete
    return {"seconds": seconds, "n_videos": len(jobs), "n_frames": len(frames)}


def _wrist_truth(wrists: list[tuple[str, str, WristAnatomy]], frames: pd.DataFrame) -> pd.DataFrame:
    """truth/wrists.csv: the drawn anatomy and imaging of every wrist, plus its bad-frame share."""
    bad = frames.assign(bad=frames["bad_reason"] != "").groupby("wrist_id")["bad"].mean()
    table = []
    for pid, side, anatomy in wrists:
        row = {"wrist_id": anatomy.wrist_id, "participant_id": pid, "side": side, "grade_index": anatomy.grade_index}
        row.update(asdict(anatomy))
        row["nerve_width_mm"] = 2 * anatomy.half_width_mm
        row["nerve_thickness_mm"] = 2 * anatomy.half_thickness_mm
        row["bad_share"] = bad.get(anatomy.wrist_id, float("nan"))
        table.append(row)
    return pd.DataFrame(table)


def _swap_into_place(tmp: Path, out: Path) -> None:
    """Rename the finished ``tmp`` onto ``out``, replacing an older synthetic dataset there."""
    if not out.exists():
        os.replace(tmp, out)
        return
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def _remove_stale_partials(out: Path) -> None:
    """Delete temporary folders left by generations that were killed (their process is gone)."""
    for pattern in (f".{out.name}.partial-*", f".{out.name}.old-*"):
        for folder in out.parent.glob(pattern):
            pid = folder.name.rsplit("-", 1)[-1]
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
