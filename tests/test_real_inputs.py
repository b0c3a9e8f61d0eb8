"""Real data as a clinic has it: harmless variants are accepted (with a NOTE), ambiguity still refused.

Each test builds the tiny data folder of ``tests/test_validate.py`` (two participants, three
wrists, 6-frame videos), changes it the way a real export differs from the documented layout, and
checks that ``ctslib.data.validate`` and the stages' own readers agree: both accept it and read the same
thing, or both refuse it with the same message.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctslib.data.cohort import cohort_notes, grade_cohort, read_cohort
from ctslib.common.errors import InputError
from ctslib.frames.extraction import ExtractionSettings, probe_videos, read_video_masks, screen_video
from ctslib.common.paths import DataLayout
from ctslib.frames.region import Region
from ctslib.data.validate import validate_data
from ctslib.data.acquisition import read_acquisition
from ctslib.data.masks import find_masks
from ctslib.frames.jobs import VideoJob
from ctslib.frames.prepare import read_frame_masks
from test_validate import COHORT, SIZE, problems, write_avi, write_clean_folder, write_png


@pytest.fixture
def data(tmp_path: Path) -> DataLayout:
    """The clean folder of test_validate (without masks and accept-list)."""
    return write_clean_folder(tmp_path / "data")


def notes(layout: DataLayout) -> list[str]:
    return [f"{p.file}: {p.message}" for p in validate_data(layout) if p.severity == "note"]


def rename(layout: DataLayout, old: str, new: str) -> None:
    (layout.videos_dir / old).rename(layout.videos_dir / new)


# -- video names ---------------------------------------------------------------------------------


def test_capitalised_plane_and_upper_case_extension_are_read_with_a_note(data):
    rename(data, "S1_L_transverse.avi", "S1_L_Transverse.AVI")
    rename(data, "S2_L_longitudinal.avi", "S2_l_LONGITUDINAL.avi")
    assert problems(data) == []
    found = notes(data)
    assert any("S1_L_Transverse.AVI" in n and "extension '.AVI'" in n for n in found)
    assert any("S1_L_Transverse.AVI" in n and "'S1_L_transverse'" in n for n in found)
    assert any("S2_l_LONGITUDINAL.avi" in n and "'S2_L_longitudinal'" in n for n in found)
    # the run finds the same files: stage 01 lists them, stage 02's job uses the canonical stem
    wrists = grade_cohort(read_cohort(data.cohort_csv), layout=data)
    row = wrists.iloc[0]
    assert row["video_transverse"] == "S1_L_Transverse.AVI"
    job = VideoJob(row["wrist_id"], row["participant_id"], "L", "transverse", row["grade"], 0, row["video_transverse"])
    assert job.stem == "S1_L_transverse"
    assert (wrists["video_longitudinal"] == "").sum() == 0


@pytest.mark.parametrize("ext", [".mov", ".m4v", ".mkv", ".MP4"])
def test_other_containers_opencv_decodes_are_videos(data, ext):
    (data.videos_dir / "S1_R_transverse.avi").unlink()
    write_avi(data.videos_dir / f"S1_R_transverse{ext}", fourcc="mp4v")
    assert problems(data) == []
    assert any(f"S1_R_transverse{ext}" in n for n in notes(data))
    assert data.find_video("S1_R_transverse").name == f"S1_R_transverse{ext}"
    jobs = [VideoJob("P001_R", "P001", "R", "transverse", "mild", 1, f"S1_R_transverse{ext}")]
    headers, skipped = probe_videos(jobs, data, read_acquisition(data))
    assert not skipped and headers[jobs[0]].n_frames == 6


def test_missing_video_message_names_every_accepted_extension(data):
    (data.videos_dir / "S1_R_longitudinal.avi").unlink()
    [problem] = problems(data)
    assert problem.file == "cohort.csv" and problem.row == 2
    assert "expected videos/S1_R_longitudinal with extension mp4, avi, dcm, mov, m4v, mkv (any letter case)" in problem.message


def test_wrist_with_one_plane_is_a_warning_in_validate_and_on_the_run_index(data):
    """Validate and the run agree: the run goes on without the plane, both say so (a WARNING, an index warning)."""
    from ctslib.frames.jobs import missing_video_warnings, video_jobs

    (data.videos_dir / "S1_R_longitudinal.avi").unlink()
    [problem] = problems(data)
    assert problem.severity == "warning" and problem.file == "cohort.csv" and problem.row == 2
    assert "wrist S1 R has no longitudinal video" in problem.message and "the run goes on without it" in problem.message
    assert not [p for p in validate_data(data) if p.severity == "error"]
    wrists = grade_cohort(read_cohort(data.cohort_csv), layout=data)
    jobs, left_out = video_jobs(wrists)
    assert len(jobs) == 5  # the run extracts every other video
    wrist = wrists.loc[wrists["video_longitudinal"] == "", "wrist_id"].item()
    [warning] = missing_video_warnings(left_out)
    assert warning.startswith(f"{wrist}: no longitudinal video") and "S1" not in warning  # pseudonym, never the source id


def test_same_video_in_two_letter_cases_is_ambiguous_and_refused(data):
    write_avi(data.videos_dir / "S1_L_Transverse.mp4", fourcc="mp4v")
    assert any("share the stem 'S1_L_transverse'" in p.message for p in problems(data))


# -- cohort.csv as spreadsheets write it ---------------------------------------------------------

EXCEL_COHORT = (
    "\ufeffparticipant_id;side;sex;age;dominant_hand;dml_ms;sncv_ms;snap_uv\n"
    "S1;left;Female;50;right;3,5;55;30,5\n"
    "S1;Right;female;50;Right;4,8;40;10\n"
    "S2;L;MALE;61;Left;;;\n"
    ";;;;;;;\n"
    ";;;;;;;\n"
)


def test_semicolon_cohort_with_decimal_commas_words_and_trailing_blank_rows(data):
    data.cohort_csv.write_text(EXCEL_COHORT, encoding="utf-8")
    assert problems(data) == []
    found = " | ".join(notes(data))
    for text in ("semicolon-separated", "2 blank row(s) at the end", "decimal commas read as decimal points in dml_ms (2), snap_uv (1)",
                 "column 'side': words read as codes", "'Female' -> F", "'right' -> R"):
        assert text in found, text
    cohort = read_cohort(data.cohort_csv)
    assert cohort["side"].tolist() == ["L", "R", "L"] and cohort["sex"].tolist() == ["F", "F", "M"]
    assert cohort["dominant_hand"].tolist() == ["R", "R", "L"]
    assert cohort["dml_ms"].tolist()[:2] == [3.5, 4.8] and cohort["snap_uv"].iloc[0] == 30.5
    assert np.isnan(cohort["dml_ms"].iloc[2])
    assert len(cohort_notes(data.cohort_csv)) == 6


def test_decimal_comma_in_a_comma_separated_file_stays_an_error(data):
    data.cohort_csv.write_text(COHORT.replace("4.8", '"4,8"'))
    with pytest.raises(InputError, match=r"row 2, column 'dml_ms': not a number: '4,8'"):
        read_cohort(data.cohort_csv)


@pytest.mark.parametrize("blank", [",,,,,,,", " , ,,,,,,"], ids=["commas", "spaces"])
def test_blank_row_between_wrists_is_one_error_naming_the_row(data, blank):
    """One clear error per blank row (not one per empty cell), the same in validate and in stage 01."""
    lines = COHORT.splitlines()
    data.cohort_csv.write_text("\n".join([lines[0], lines[1], blank, *lines[2:]]) + "\n")
    message = "blank row between wrists (every cell empty): delete the row, or fill in the wrist it stood for"
    with pytest.raises(InputError, match=r"cohort.csv, row 2: blank row between wrists"):
        read_cohort(data.cohort_csv)
    [problem] = problems(data)
    assert (problem.severity, problem.file, problem.row, problem.column, problem.message) == (
        "error", "cohort.csv", 2, None, message)


def test_blank_row_beside_a_bad_cell_or_a_contradiction_is_reported_with_them(data):
    lines = COHORT.splitlines()
    bad_cell = [lines[0], lines[1], ",,,,,,,", lines[2], lines[3].replace("61", "sixty")]
    data.cohort_csv.write_text("\n".join(bad_cell) + "\n")
    found = [(p.row, p.column) for p in problems(data)]
    assert found.count((2, None)) == 1 and (4, "age") in found and len(found) == 2
    contradiction = [lines[0], lines[1], ",,,,,,,", lines[2].replace("S1,R,F,50", "S1,R,M,50"), lines[3]]
    data.cohort_csv.write_text("\n".join(contradiction) + "\n")
    found = problems(data)
    assert [(p.row, p.column) for p in found].count((2, None)) == 1
    assert any(p.row == 3 and "has sex 'M' here" in p.message for p in found)  # the blank row hides no other check


def test_words_do_not_hide_a_contradiction(data):
    data.cohort_csv.write_text(COHORT.replace("S1,R,F,50,R", "S1,R,male,50,R"))
    with pytest.raises(InputError, match=r"participant S1 has sex 'M' here but 'F'"):
        read_cohort(data.cohort_csv)
    assert any("has sex 'M' here" in p.message for p in problems(data))


# -- OS litter -----------------------------------------------------------------------------------


def test_os_litter_is_ignored_by_validate_and_by_the_run(data):
    mask = np.zeros((SIZE[1], SIZE[0]), np.uint8)
    mask[5:10, 5:10] = 1
    write_png(data.masks_dir / "S1_L_transverse" / "0.png", mask)
    for litter in ("._0.png", ".DS_Store", "Thumbs.db", "desktop.ini"):
        (data.masks_dir / "S1_L_transverse" / litter).write_bytes(b"\0\x05\x16\x07 AppleDouble")
    for litter in ("._S1_L_transverse.avi", ".DS_Store", "Thumbs.db", "desktop.ini"):
        (data.videos_dir / litter).write_bytes(b"\0\x05\x16\x07")
        (data.masks_dir / litter).write_bytes(b"\0")
    (data.root / ".DS_Store").write_bytes(b"\0")
    assert problems(data) == []
    folder = find_masks(data, "S1_L_transverse")
    assert folder == data.masks_dir / "S1_L_transverse"
    assert set(read_frame_masks(folder, (SIZE[1], SIZE[0]), frame_size=8)) == {0}
    assert data.find_video("S1_L_transverse").name == "S1_L_transverse.avi"


# -- masks that cannot be matched ----------------------------------------------------------------


def test_tif_masks_are_read_like_png(data):
    from PIL import Image

    mask = np.zeros((SIZE[1], SIZE[0]), np.uint8)
    mask[10:20, 10:20] = 1
    (data.masks_dir / "S1_L_transverse").mkdir()
    Image.fromarray(mask).save(data.masks_dir / "S1_L_transverse" / "2.tif")
    Image.fromarray(mask * 255).save(data.masks_dir / "S1_L_transverse" / "4.TIFF")
    assert problems(data) == []
    assert any("TIFF mask image(s) read like PNG" in n for n in notes(data))
    masks = read_frame_masks(data.masks_dir / "S1_L_transverse", (SIZE[1], SIZE[0]), frame_size=SIZE[1])
    assert set(masks) == {2, 4} and masks[2].sum() > 0
    np.testing.assert_array_equal(masks[2], masks[4])  # label 1 and a 0/255 export both read as nerve


def test_other_files_in_a_mask_folder_are_errors_in_validate_and_in_the_run(data):
    write_png(data.masks_dir / "S1_L_transverse" / "0.png", np.zeros((SIZE[1], SIZE[0]), np.uint8))
    (data.masks_dir / "S1_L_transverse" / "2.jpg").write_bytes(b"jpeg")
    [problem] = problems(data)
    assert problem.file == "masks/S1_L_transverse/2.jpg" and "not a mask image" in problem.message
    with pytest.raises(InputError, match=r"2\.jpg: not a mask image"):
        read_frame_masks(data.masks_dir / "S1_L_transverse", (SIZE[1], SIZE[0]))


def test_masks_numbered_from_1_are_an_error_in_validate_and_in_the_run(data):
    mask = np.zeros((SIZE[1], SIZE[0]), np.uint8)
    for frame in range(1, 7):  # a mask for each of the 6 frames, numbered 1-6 instead of 0-5
        write_png(data.masks_dir / "S1_L_transverse" / f"{frame}.png", mask)
    [problem] = problems(data)
    assert problem.file == "masks/S1_L_transverse"
    assert "masks for source frames [6] but the video has frames 0-5" in problem.message
    assert "numbered from 1" in problem.message
    jobs = [VideoJob("P001_L", "P001", "L", "transverse", "normal", 0, "S1_L_transverse.avi")]
    headers, _ = probe_videos(jobs, data, read_acquisition(data))
    header = headers[jobs[0]]
    frames = header.schedule(5.0)
    with pytest.raises(InputError, match=r"S1_L_transverse: masks for source frames \[6\].*numbered from 1"):
        read_video_masks(data, jobs[0], header, frames, Region.full((header.height, header.width)), 8)


def test_masks_found_whatever_the_letter_case_of_plane(data):
    mask = np.zeros((2, SIZE[1], SIZE[0]), np.uint8)
    np.savez(data.masks_dir / "S1_L_Transverse.npz", index=np.array([0, 2]), mask=mask)
    assert problems(data) == []
    assert find_masks(data, "S1_L_transverse") == data.masks_dir / "S1_L_Transverse.npz"


# -- acquisition.json: the scanner's text bands ---------------------------------------------------


def test_text_bands_in_acquisition_json_apply_per_video(data):
    data.acquisition_json.write_text(json.dumps({
        "source": "Real", "pixel_spacing_mm": 0.1, "text_bands": [[0, 0.1]],
        "videos": {"S1_L_Transverse": {"text_bands": [[0.9, 1.0]]}},
    }))
    acquisition = read_acquisition(data)
    assert acquisition.source == "real"
    assert acquisition.for_video("S1_L_transverse").text_bands == ((0.9, 1.0),)
    assert acquisition.for_video("S2_L_transverse").text_bands == ((0.0, 0.1),)
    assert problems(data) == []


def test_screening_a_plain_b_mode_video_keeps_its_full_frame(data):
    import cv2

    from test_qc import clean_video

    frames = [cv2.cvtColor(f, cv2.COLOR_GRAY2BGR) for f in clean_video(n=8, seed=2) for _ in range(2)]
    writer = cv2.VideoWriter(str(data.videos_dir / "S1_L_transverse.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (256, 256))
    for frame in frames:
        writer.write(frame)
    writer.release()
    jobs = [VideoJob("P001_L", "P001", "L", "transverse", "normal", 0, "S1_L_transverse.avi")]
    headers, _ = probe_videos(jobs, data, read_acquisition(data))
    screen = screen_video(headers[jobs[0]], ExtractionSettings())
    assert not screen.region.is_cropped and screen.text_boxes == ()


def test_frames_csv_flags_written_by_a_spreadsheet_read_the_same_everywhere():
    from ctslib.common.handoff import as_bool

    values = pd.Series(["True", "1", "1.0", "yes", "False", "0", "0.0", "", "nan"])
    expected = [True, True, True, True, False, False, False, False, False]
    assert as_bool(values).tolist() == expected


# -- a clinic's folder through run_all (stages 01-02) ---------------------------------------------


@pytest.mark.notebooks
def test_clinic_folder_runs_and_its_path_never_reaches_the_report(tmp_path):
    """Screen captures with capitalised .MOV names, an Excel cohort and litter run through stages 01-02."""
    import cv2

    from conftest import run_all
    from test_qc import clean_video
    from test_region import screen

    data = tmp_path / "Clinic_Doe_Jane" / "DATA"
    (data / "videos").mkdir(parents=True)
    rows = ["participant_id;side;sex;age;dominant_hand;dml_ms;sncv_ms;snap_uv"]
    for p, (dml, sncv, snap) in enumerate([("3,5", "55", "30"), ("3,8", "45", "20"), ("5,0", "40", "16"), ("7,2", "30", "8")]):
        rows.append(f"K{p + 1};right;{'Female' if p % 2 else 'male'};{40 + p};Right;{dml};{sncv};{snap}")
        for q, plane in enumerate(("Transverse", "Longitudinal")):
            frames = [screen(image) for image in clean_video(n=8, seed=10 * p + q) for _ in range(2)]
            h, w = frames[0].shape[:2]
            writer = cv2.VideoWriter(str(data / "videos" / f"K{p + 1}_R_{plane}.MOV"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (w, h))
            for frame in frames:
                writer.write(frame)
            writer.release()
    (data / "cohort.csv").write_text("\ufeff" + "\n".join(rows + [";;;;;;;"]) + "\n", encoding="utf-8")
    (data / "acquisition.json").write_text(json.dumps({"source": "Real", "pixel_spacing_mm": [0.05, 0.05]}))
    (data / ".DS_Store").write_bytes(b"\0")
    (data / "videos" / "._K1_R_Transverse.MOV").write_bytes(b"\0\x05\x16\x07")
    assert problems(DataLayout(data)) == []
    work, report = tmp_path / "work", tmp_path / "report"
    proc = run_all("--profile", "smoke", "--data", str(data), "--work", str(work), "--out", str(report),
                   "--only", "01", "02", "--set", "QC_DISABLE=[frozen]", timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    record = json.loads((work / "02_frame_extraction_qc" / "record.json").read_text())
    assert record["n_videos"] == 8 and record["n_cut_to_region"] == 8 and record["n_text_videos"] >= 1
    manifest = json.loads((report / "manifest.json").read_text())
    assert manifest["data"]["name"] == "DATA" and manifest["parameters"]["02"]["QC_DISABLE"] == ["frozen"]
    warnings = json.loads((report / "warnings.json").read_text())
    assert any("burned-in text" in w for w in warnings["02"])
    for path in report.rglob("*"):
        if path.is_file() and path.suffix in (".ipynb", ".json", ".html", ".csv", ".md"):
            assert "Clinic_Doe_Jane" not in path.read_text(encoding="utf-8", errors="replace"), path


# -- pixel spacing plausibility ------------------------------------------------------------------


@pytest.mark.parametrize("spacing, where", [(0.01, "global"), (5.0, "override")], ids=["cm-typed", "override-too-large"])
def test_implausible_pixel_spacing_is_an_error_in_validate_and_in_the_run(data, spacing, where):
    raw = {"source": "real", "pixel_spacing_mm": [0.1, 0.1]}
    if where == "global":
        raw["pixel_spacing_mm"], column = [spacing, spacing], "pixel_spacing_mm"
    else:
        raw["videos"], column = {"S1_L_transverse": {"pixel_spacing_mm": spacing}}, "videos.S1_L_transverse.pixel_spacing_mm"
    data.acquisition_json.write_text(json.dumps(raw))
    [problem] = problems(data)
    assert (problem.severity, problem.file, problem.column) == ("error", "acquisition.json", column)
    assert f"implausible pixel spacing {spacing:g} mm" in problem.message and "check the unit" in problem.message
    with pytest.raises(InputError, match=rf"acquisition.json, column '{column}': implausible pixel spacing"):
        read_acquisition(data)  # every stage reads acquisition.json through this one reader


def test_unusual_but_plausible_pixel_spacing_is_a_note(data):
    data.acquisition_json.write_text(json.dumps({"source": "real", "pixel_spacing_mm": [0.4, 0.4]}))
    assert problems(data) == []
    assert any(n.startswith("acquisition.json: pixel spacing 0.4 mm is unusual") for n in notes(data))
    assert read_acquisition(data).pixel_spacing_mm == (0.4, 0.4)
    data.acquisition_json.write_text(json.dumps({"source": "real", "pixel_spacing_mm": [0.1, 0.1]}))
    assert not any("pixel spacing" in n for n in notes(data))


# -- single-frame and duplicated videos ----------------------------------------------------------


def test_single_frame_video_is_read_with_a_note(data):
    (data.videos_dir / "S1_R_transverse.avi").unlink()
    write_avi(data.videos_dir / "S1_R_transverse.avi", n_frames=1, background=90)
    assert problems(data) == []
    assert any(n.startswith("videos/S1_R_transverse.avi: a single frame (a still image") for n in notes(data))
    jobs = [VideoJob("P001_R", "P001", "R", "transverse", "mild", 1, "S1_R_transverse.avi")]
    headers, skipped = probe_videos(jobs, data, read_acquisition(data))  # the run accepts it
    assert not skipped and headers[jobs[0]].n_frames == 1


def test_byte_identical_videos_under_different_wrists_are_a_warning(data):
    import shutil

    assert not any("byte-identical" in p.message for p in validate_data(data))  # the clean folder's videos differ
    shutil.copyfile(data.videos_dir / "S1_L_transverse.avi", data.videos_dir / "S2_L_transverse.avi")
    [problem] = problems(data)
    assert (problem.severity, problem.file) == ("warning", "videos/S2_L_transverse.avi")
    assert problem.message.startswith("byte-identical to videos/S1_L_transverse.avi")
