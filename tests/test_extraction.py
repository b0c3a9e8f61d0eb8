"""Stage 02 in worker processes: the same frames, PNGs, tables and errors as in one process.

A tiny synthetic data folder (8 wrists, both planes, masks and the generator's QC labels) is
extracted once in this process and once by two spawned workers (``ctslib.common.parallel``).
"""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctslib import PLANES

from ctslib.data.acquisition import read_acquisition
from ctslib.common.errors import InputError
from ctslib.frames.funnel import read_truth_frames
from ctslib.frames.extraction import ExtractionSettings, extract_frames, probe_videos
from ctslib.common.parallel import ordered_map
from ctslib.common.paths import DataLayout, RunPaths
from ctslib.synth.config import SynthConfig
from ctslib.synth.dataset import ensure_dataset
from ctslib.frames.jobs import VideoJob

TINY = SynthConfig(seed=11, n_participants=4, grade_counts=(2, 2, 2, 2), duration_s=3.0, source_fps=10.0,
                   frame_size=96, workers=1)


def jobs_of(root: Path) -> list[VideoJob]:
    """One job per video of the synthetic folder, named after its file (no stage 01 needed)."""
    cohort = pd.read_csv(DataLayout(root).cohort_csv, dtype=str)
    jobs = []
    for k, row in enumerate(cohort.to_dict("records")):
        for plane in PLANES:
            file = f"{row['participant_id']}_{row['side']}_{plane}.avi"
            jobs.append(VideoJob(f"W{k:03d}", row["participant_id"], row["side"], plane, "mild", 1, file))
    return jobs


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return ensure_dataset(tmp_path_factory.mktemp("synth") / "tiny", TINY, progress=False)


def extract(root: Path, out: Path, workers: int, jobs: list[VideoJob] | None = None, **settings):
    layout = DataLayout(root)
    acquisition = read_acquisition(layout)
    headers, skipped = probe_videos(jobs or jobs_of(root), layout, acquisition,
                                    skip_bad_inputs=settings.get("skip_bad_inputs", False))
    paths = RunPaths(work=out / "work", report=out / "report")
    truth = read_truth_frames(layout.truth_dir / "frames.csv")
    result = extract_frames(headers, layout, acquisition, paths, ExtractionSettings(frame_size=64, **settings),
                            truth=truth, skipped=skipped, progress=False, workers=workers)
    return result, paths


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.png"))}


def test_two_workers_give_the_same_frames_pngs_and_tables_as_one(tiny, tmp_path):
    one, one_paths = extract(tiny, tmp_path / "one", workers=1)
    two, two_paths = extract(tiny, tmp_path / "two", workers=2)
    assert len(one.frames) > 100 and one.frames["kept"].any() and (~one.frames["kept"]).any()
    pd.testing.assert_frame_equal(one.frames, two.frames)
    assert one_paths.frames_csv.read_bytes() == two_paths.frames_csv.read_bytes()
    frames_one, frames_two = folder_bytes(one_paths.frames_dir), folder_bytes(two_paths.frames_dir)
    assert len(frames_one) == int(one.frames["has_png"].sum()) > 0
    assert frames_one == frames_two
    assert folder_bytes(one_paths.frame_masks_dir) == folder_bytes(two_paths.frame_masks_dir)
    pd.testing.assert_frame_equal(one.regions, two.regions)
    pd.testing.assert_frame_equal(one.scoring, two.scoring)
    assert one.warnings == two.warnings
    assert {r: [label for label, _ in ex] for r, ex in one.examples.items()} == \
        {r: [label for label, _ in ex] for r, ex in two.examples.items()}
    for reason, examples in one.examples.items():
        assert len(examples) <= 4
        assert len({label.split(" ")[0] for label, _ in examples}) == len(examples)  # one per video and verdict
        for (_, a), (_, b) in zip(examples, two.examples[reason]):
            np.testing.assert_array_equal(a, b)


def test_a_bad_mask_file_is_skipped_or_raised_from_a_worker_with_its_name(tiny, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny, broken)
    bad = broken / "masks" / "S002_L_transverse.npz"
    bad.write_bytes(b"not a mask archive")  # the video opens; its masks fail inside the worker
    result, _ = extract(broken, tmp_path / "skip", workers=2, skip_bad_inputs=True)
    assert result.skipped[["plane", "step"]].values.tolist() == [["transverse", "extract"]]
    assert "S002" not in result.skipped.to_csv()  # the source id stays out of the report tables
    assert len(result.frames.groupby(["wrist_id", "plane"])) == len(jobs_of(tiny)) - 1
    with pytest.raises(InputError, match="S002_L_transverse.npz"):
        extract(broken, tmp_path / "raise", workers=2)
    assert not list((tmp_path / "raise").rglob("*.png")) and not list((tmp_path / "raise").rglob("frames.csv"))


def test_input_error_survives_pickling_with_its_file_row_and_column():
    err = InputError("bad value", file="data/cohort.csv", row=3, column="dml_ms")
    back = pickle.loads(pickle.dumps(err))
    assert (str(back), back.file, back.row, back.column, back.reason) == (str(err), err.file, 3, "dml_ms", "bad value")


def _square_or_fail(x: int) -> int:
    if x == 3:
        raise InputError("three is bad", file=f"item{x}.avi")
    return x * x


def test_ordered_map_keeps_input_order_and_raises_the_worker_error():
    assert list(ordered_map(_square_or_fail, [5, 1, 4, 2], workers=2)) == [25, 1, 16, 4]
    assert list(ordered_map(_square_or_fail, [5, 1], workers=1)) == [25, 1]
    seen = []
    with pytest.raises(InputError, match="item3.avi: three is bad"):
        for value in ordered_map(_square_or_fail, [2, 3, 4], workers=2):
            seen.append(value)
    assert seen == [4]
