"""Data-folder validation: each bad input is reported with its file (row, column), a clean folder passes.

Every test builds a tiny data folder in ``tmp_path`` (two participants, three wrists, six
six-frame MJPG videos of 40 x 30 pixels, one npz and one PNG-folder mask set, an expert
accept-list), breaks one thing, and runs ``validate_data`` or the command line on it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from ctslib.common.paths import DataLayout
from ctslib.data.validate import Problem, main, validate_data
from dicom_files import write_dicom

SIZE = (40, 30)  # (width, height) of the test videos
COHORT = (
    "participant_id,side,sex,age,dominant_hand,dml_ms,sncv_ms,snap_uv\n"
    "S1,L,F,50,R,3.5,55,30\n"
    "S1,R,F,50,R,4.8,40,10\n"
    "S2,L,M,61,L,,,\n"
)
WRISTS = (("S1", "L"), ("S1", "R"), ("S2", "L"))
PLANES = ("transverse", "longitudinal")


# -- building a data folder ----------------------------------------------------------------------


def write_avi(path: Path, n_frames: int = 6, fps: float = 10, colour: bool = False, fourcc: str = "MJPG",
              background: int = 40) -> Path:
    """A few-frame video; grey frames (or red ones with ``colour``) with a moving bright square."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, SIZE)
    assert writer.isOpened()
    for i in range(n_frames):
        frame = np.full((SIZE[1], SIZE[0], 3), background, np.uint8)
        frame[5:15, 2 + 3 * i : 12 + 3 * i] = (0, 0, 220) if colour else 220
        writer.write(frame)
    writer.release()
    return path


def write_png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)


def write_clean_folder(root: Path) -> DataLayout:
    """Cohort, acquisition.json, one video per wrist and plane, and an empty masks/ folder."""
    layout = DataLayout(root)
    layout.videos_dir.mkdir(parents=True)
    layout.cohort_csv.write_text(COHORT)
    layout.acquisition_json.write_text(json.dumps({"source": "real", "pixel_spacing_mm": [0.1, 0.1], "fps": 10}))
    for k, (pid, side) in enumerate(WRISTS):
        for q, plane in enumerate(PLANES):  # every video differs (identical files are a warning)
            write_avi(layout.videos_dir / f"{pid}_{side}_{plane}.avi", background=30 + 4 * (2 * k + q))
    layout.masks_dir.mkdir()
    return layout


@pytest.fixture
def data(tmp_path: Path) -> DataLayout:
    """A clean data folder in the layout of docs/pipeline.md."""
    layout = write_clean_folder(tmp_path / "data")
    mask = np.zeros((2, SIZE[1], SIZE[0]), np.uint8)
    mask[:, 10:20, 10:20] = 1
    np.savez(layout.masks_dir / "S1_L_transverse.npz", index=np.array([0, 2]), mask=mask)
    write_png(layout.masks_dir / "S1_R_transverse" / "4.png", mask[0])
    layout.qc_accept_csv.write_text("video,time_s\nS1_L_transverse,0.2\nS2_L_longitudinal,0.4\n")
    return layout


def problems(layout: DataLayout, deep: bool = False) -> list[Problem]:
    """Errors and warnings only (``info`` lines describe conversions)."""
    return [p for p in validate_data(layout, deep=deep) if p.is_problem]


def only(found: list[Problem], file: str, *, row: int | None = None, column: str | None = None, text: str = "") -> Problem:
    """The single problem naming ``file`` (and row/column), whose message contains ``text``."""
    hits = [p for p in found if p.file == file and text.lower() in p.message.lower()]
    assert len(hits) == 1, f"expected one problem for {file} containing {text!r}, got:\n" + "\n".join(map(str, found))
    if row is not None or column is not None:
        assert (hits[0].row, hits[0].column) == (row, column), str(hits[0])
    return hits[0]


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``root`` with its size and modification time."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def set_cell(layout: DataLayout, row: int, column: str, value: str) -> None:
    """Overwrite one cell of cohort.csv (row = 1-based data row)."""
    lines = layout.cohort_csv.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[row].split(",")
    cells[header.index(column)] = value
    lines[row] = ",".join(cells)
    layout.cohort_csv.write_text("\n".join(lines) + "\n")


# -- a clean folder ------------------------------------------------------------------------------


def test_clean_folder_passes_with_exit_0_writes_nothing_and_summarises(data, capsys):
    before = tree(data.root)
    assert main([str(data.root), "--deep"]) == 0
    assert main([str(data.root)]) == 0
    assert tree(data.root) == before
    out = capsys.readouterr().out
    assert "OK: no problems found" in out
    assert "2 participants, 3 wrists" in out
    assert "3 transverse, 3 longitudinal" in out
    assert "3 frame(s) of 2 video(s)" in out
    assert "2 rows" in out


def test_problems_exit_1_and_are_all_printed_with_file_row_column(data, capsys):
    set_cell(data, 1, "dml_ms", "abc")
    set_cell(data, 3, "sex", "X")
    (data.videos_dir / "S1_R_longitudinal.avi").unlink()
    before = tree(data.root)
    assert main([str(data.root)]) == 1
    assert tree(data.root) == before
    out = capsys.readouterr().out
    assert "cohort.csv, row 1, column 'dml_ms': not a number: 'abc'" in out
    assert "cohort.csv, row 3, column 'sex': unknown value 'X'" in out
    assert "cohort.csv, row 2: wrist S1 R has no longitudinal video" in out
    assert "WARNING cohort.csv, row 2: wrist S1 R has no longitudinal video" in out  # the run goes on: a warning
    assert "PROBLEMS: 2 error(s), 1 warning(s)" in out


def test_usage_errors_exit_2(tmp_path, capsys):
    assert main([str(tmp_path / "no-such-folder")]) == 2
    assert main([]) == 2
    assert main([str(tmp_path), "--no-such-option"]) == 2


# -- cohort.csv ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "row, column, value, text",
    [
        (2, "dml_ms", '"4,8"', "not a number: '4,8'"),  # a decimal comma (quoted, so the row keeps 8 cells)
        (1, "dml_ms", "fast", "not a number: 'fast'"),
        (2, "sncv_ms", "-40", "negative value -40"),
        (3, "snap_uv", "3000", "implausible value 3000"),
        (1, "side", "X", "unknown value 'X'"),
        (2, "age", "", "value is blank"),
        (1, "dml_ms", "inf", "not a finite number"),
        (3, "participant_id", "", "participant_id is blank"),
        (3, "dominant_hand", "both", "unknown value 'both'"),
    ],
    ids=["decimal-comma", "non-numeric", "negative", "absurd", "unknown-side", "blank-age", "infinite",
         "blank-id", "unknown-hand"],
)
def test_bad_cohort_cell_names_row_and_column(data, row, column, value, text):
    set_cell(data, row, column, value)
    only(problems(data), "cohort.csv", row=row, column=column, text=text)


def test_every_bad_cohort_cell_is_reported_not_just_the_first(data):
    set_cell(data, 1, "dml_ms", "fast")
    set_cell(data, 2, "sncv_ms", "-40")
    set_cell(data, 3, "snap_uv", "3000")
    found = [p for p in problems(data) if p.file == "cohort.csv"]
    assert [(p.row, p.column) for p in found] == [(1, "dml_ms"), (2, "sncv_ms"), (3, "snap_uv")]


def test_missing_cohort_column_names_the_column(data):
    text = data.cohort_csv.read_text().replace(",snap_uv", "").replace(",30\n", "\n").replace(",10\n", "\n").replace(",,\n", ",\n")
    data.cohort_csv.write_text(text)
    only(problems(data), "cohort.csv", column="snap_uv", text="missing column")


def test_duplicate_wrist_names_both_rows(data):
    set_cell(data, 2, "side", "L")  # S1 L twice
    found = only(problems(data), "cohort.csv", row=2, column="side", text="listed twice")
    assert "also row 1" in found.message


def test_duplicate_wrist_is_found_beside_bad_cells(data):
    set_cell(data, 2, "side", "L")
    set_cell(data, 3, "dml_ms", "fast")
    found = problems(data)
    only(found, "cohort.csv", row=2, column="side", text="listed twice")
    only(found, "cohort.csv", row=3, column="dml_ms", text="not a number")


def test_participant_with_different_sex_on_two_rows(data):
    set_cell(data, 2, "sex", "M")
    only(problems(data), "cohort.csv", row=2, column="sex", text="participant S1 has sex 'M' here but 'F'")


@pytest.mark.parametrize(
    "content, text",
    [(None, "cohort file not found"), ("", "not a readable CSV file"), (COHORT.splitlines()[0] + "\n", "no wrists")],
    ids=["missing", "empty", "header-only"],
)
def test_unreadable_cohort_file(data, content, text):
    if content is None:
        data.cohort_csv.unlink()
    else:
        data.cohort_csv.write_text(content)
    found = problems(data)
    only(found, "cohort.csv", text=text)
    assert not [p for p in found if p.file and p.file.startswith("videos/")]  # names not judged without a cohort


# -- acquisition.json ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content, column, text",
    [
        (None, None, "missing"),
        ("{not json", None, "not valid JSON"),
        (json.dumps({"source": "real"}), "pixel_spacing_mm", "needs"),
        (json.dumps({"source": "real", "pixel_spacing_mm": [0.1, -1]}), "pixel_spacing_mm", "positive"),
        (json.dumps({"source": "real", "pixel_spacing_mm": "0.1 mm"}), "pixel_spacing_mm", "two numbers"),
    ],
    ids=["missing", "invalid-json", "no-spacing", "negative-spacing", "spacing-text"],
)
def test_bad_acquisition_json(data, content, column, text):
    if content is None:
        data.acquisition_json.unlink()
    else:
        data.acquisition_json.write_text(content)
    only(problems(data), "acquisition.json", column=column, text=text)


def test_acquisition_override_for_a_video_that_does_not_exist(data):
    raw = json.loads(data.acquisition_json.read_text())
    raw["videos"] = {"S1_L_transvers": {"pixel_spacing_mm": [0.05, 0.05]}}
    data.acquisition_json.write_text(json.dumps(raw))
    only(problems(data), "acquisition.json", column="videos.S1_L_transvers", text="listed but missing")


# -- video names ---------------------------------------------------------------------------------


def test_wrist_without_a_video_for_a_plane_names_the_cohort_row(data):
    (data.videos_dir / "S1_R_longitudinal.avi").unlink()
    only(problems(data), "cohort.csv", row=2, text="wrist S1 R has no longitudinal video")


def test_video_of_no_cohort_wrist(data):
    write_avi(data.videos_dir / "S3_R_transverse.avi")
    only(problems(data), "videos/S3_R_transverse.avi", text="matches no cohort wrist")


def test_video_with_unknown_plane_name(data):
    os.replace(data.videos_dir / "S2_L_longitudinal.avi", data.videos_dir / "S2_L_long.avi")
    found = problems(data)
    only(found, "videos/S2_L_long.avi", text="unknown plane name 'long'")
    only(found, "cohort.csv", row=3, text="no longitudinal video")


def test_file_with_unsupported_extension_in_videos(data):
    (data.videos_dir / "S1_L_transverse.wmv").write_bytes(b"\0" * 10)
    only(problems(data), "videos/S1_L_transverse.wmv", text="not a video")


def test_two_files_for_one_video_stem(data):
    write_dicom(data.videos_dir / "S1_L_transverse.dcm", np.zeros((3, SIZE[1], SIZE[0]), np.uint8), CineRate=10)
    only(problems(data), "videos/S1_L_transverse.avi", text="share the stem")


def test_video_listed_but_missing_dangling_link(data):
    target = data.videos_dir / "S2_L_transverse.avi"
    target.unlink()
    target.symlink_to(data.root / "elsewhere" / "S2_L_transverse.avi")
    only(problems(data), "videos/S2_L_transverse.avi", text="not found")


# -- video contents ------------------------------------------------------------------------------


def _corrupt(path: Path) -> None:
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _zero_frames(path: Path) -> None:
    cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, SIZE).release()


def _unknown_codec(path: Path) -> None:
    path.write_bytes(path.read_bytes().replace(b"MJPG", b"QQQQ"))


@pytest.mark.parametrize("damage", [_corrupt, _empty, _zero_frames, _unknown_codec],
                         ids=["corrupt", "zero-bytes", "zero-frames", "unsupported-codec"])
def test_unreadable_video_is_found_by_the_quick_check(data, damage):
    path = data.videos_dir / "S1_R_transverse.avi"
    damage(path)
    assert path.exists()
    only(problems(data), "videos/S1_R_transverse.avi")


def test_truncated_video_is_found_by_deep_check_only(data):
    path = data.videos_dir / "S2_L_transverse.avi"
    write_avi(path, n_frames=60)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert problems(data) == []  # the first frame still decodes
    only(problems(data, deep=True), "videos/S2_L_transverse.avi", text="truncated")


def test_dicom_without_pixel_data(data):
    (data.videos_dir / "S1_L_longitudinal.avi").unlink()
    write_dicom(data.videos_dir / "S1_L_longitudinal.dcm", np.zeros((3, 30, 40), np.uint8), pixel_data=False, CineRate=10)
    only(problems(data), "videos/S1_L_longitudinal.dcm", text="no pixel data")


def test_16bit_dicom_and_colour_video_are_notes_not_problems(data, capsys):
    (data.videos_dir / "S1_L_longitudinal.avi").unlink()
    write_dicom(data.videos_dir / "S1_L_longitudinal.dcm", np.full((4, 30, 40), 3000, np.uint16), BitsStored=12, CineRate=10)
    write_avi(data.videos_dir / "S2_L_transverse.avi", colour=True)
    found = validate_data(data, deep=True)
    assert not [p for p in found if p.is_problem]
    notes = {(p.file, p.message.split(" ")[0]) for p in found if p.severity == "info"}
    assert notes == {("videos/S1_L_longitudinal.dcm", "12-bit"), ("videos/S2_L_transverse.avi", "colour")}
    assert main([str(data.root)]) == 0
    assert "will be converted" in capsys.readouterr().out


# -- masks ---------------------------------------------------------------------------------------


def test_npz_mask_of_another_size_than_its_video(data):
    np.savez(data.masks_dir / "S1_L_transverse.npz", index=np.array([0]), mask=np.zeros((1, 32, 32), np.uint8))
    only(problems(data), "masks/S1_L_transverse.npz", text="differs from its video frame size 40x30")


def test_png_mask_of_another_size_than_its_video(data):
    write_png(data.masks_dir / "S1_R_transverse" / "2.png", np.zeros((20, 20), np.uint8))
    only(problems(data), "masks/S1_R_transverse/2.png", text="mask size 20x20 differs")


def test_mask_whose_stem_matches_no_video(data):
    os.replace(data.masks_dir / "S1_L_transverse.npz", data.masks_dir / "S1_L_tranverse.npz")
    only(problems(data), "masks/S1_L_tranverse.npz", text="matches no video")


def test_mask_file_and_mask_folder_for_one_video(data):
    write_png(data.masks_dir / "S1_L_transverse" / "0.png", np.zeros((SIZE[1], SIZE[0]), np.uint8))
    found = only(problems(data), "masks/S1_L_transverse", text="only the .npz is used")
    assert found.severity == "warning"


def test_file_in_masks_that_is_not_a_mask(data):
    write_png(data.masks_dir / "S1_L_longitudinal.png", np.zeros((SIZE[1], SIZE[0]), np.uint8))
    only(problems(data), "masks/S1_L_longitudinal.png", text="not a mask")


def test_masks_outside_the_video_or_off_the_extracted_frames(data):
    mask = np.zeros((2, SIZE[1], SIZE[0]), np.uint8)
    np.savez(data.masks_dir / "S1_L_transverse.npz", index=np.array([1, 99]), mask=mask)
    found = problems(data)
    only(found, "masks/S1_L_transverse.npz", text="source frames [99]")
    only(found, "masks/S1_L_transverse.npz", text="none of the 2 masks")


# -- qc_accept.csv -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line, column, text",
    [
        ("S9_L_transverse,0.2", "video", "unknown video 'S9_L_transverse'"),
        ("S1_L_transverse,7.5", "time_s", "no extracted frame at 7.5 s"),
        ("S1_L_transverse,soon", "time_s", "not a number"),
    ],
    ids=["unknown-video", "unknown-time", "bad-time"],
)
def test_accept_list_naming_unknown_videos_or_frames(data, line, column, text):
    data.qc_accept_csv.write_text(f"video,time_s\nS1_L_transverse,0.2\n{line}\n")
    only(problems(data), "qc_accept.csv", row=2, column=column, text=text)


def test_accept_list_every_bad_row_is_reported(data):
    data.qc_accept_csv.write_text("video,frame\nS9_L_transverse,0\nS1_L_transverse,1\nS1_L_transverse,40\n")
    found = [p for p in problems(data) if p.file == "qc_accept.csv"]
    assert [(p.row, p.column) for p in found] == [(1, "video"), (3, "frame")]
