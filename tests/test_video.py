"""Frame extraction: acquisition.json, 5 fps sampling by timestamp, OpenCV/DICOM reading, masks, errors."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from ctslib.common.errors import InputError
from ctslib.common.paths import DataLayout
from ctslib.data.acquisition import VideoSettings, parse_acquisition, read_acquisition
from ctslib.data.masks import find_masks
from ctslib.data.timing import sample_frames, uniform_times
from ctslib.data.video import choose_fps, probe_video, to_gray8
from ctslib.frames.jobs import VideoJob, frame_id, frame_table, skip_record, staged_dirs, video_jobs, write_frame_pngs
from ctslib.frames.prepare import FRAME_SIZE, extract_video, read_frame_masks, resized_spacing
from dicom_files import write_dicom

SETTINGS = VideoSettings(pixel_spacing_mm=(0.1, 0.12), fps=None)
N_BITS = 8


# -- helpers -------------------------------------------------------------------------------------


def encode_index(index: int, height: int = 120, width: int = 160) -> np.ndarray:
    """A grey frame whose 8 vertical stripes spell ``index`` in binary (robust to JPEG and resizing)."""
    frame = np.zeros((height, width), np.uint8)
    stripe = width // N_BITS
    for bit in range(N_BITS):
        frame[:, bit * stripe : (bit + 1) * stripe] = 230 if (index >> bit) & 1 else 20
    return frame


def decode_index(image: np.ndarray) -> int:
    """Inverse of ``encode_index`` on a frame of any width (reads each stripe's centre)."""
    stripe = image.shape[1] / N_BITS
    bits = [image[:, int((b + 0.5) * stripe)].mean() > 127 for b in range(N_BITS)]
    return sum(1 << b for b, on in enumerate(bits) if on)


def write_video(path: Path, n_frames: int, fps: float, fourcc: str = "MJPG", size=(160, 120)) -> Path:
    """An encoded test video whose frame ``i`` shows ``i`` in stripes."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size, isColor=True)
    assert writer.isOpened(), f"OpenCV cannot write {fourcc}"
    for i in range(n_frames):
        writer.write(cv2.cvtColor(encode_index(i, size[1], size[0]), cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


def assert_names_file(err: pytest.ExceptionInfo, path: Path) -> None:
    assert err.value.file == str(path)
    assert path.name in str(err.value)


# -- acquisition.json ----------------------------------------------------------------------------


def test_read_acquisition_applies_per_video_overrides(tmp_path):
    (tmp_path / "acquisition.json").write_text(
        json.dumps(
            {
                "source": "synthetic",
                "probe": "test probe",
                "pixel_spacing_mm": [0.07, 0.08],
                "fps": 30,
                "videos": {"S1_L_transverse": {"pixel_spacing_mm": 0.05}, "S1_R_transverse": {"fps": 12.5}},
            }
        )
    )
    acq = read_acquisition(DataLayout(tmp_path))
    assert acq.is_synthetic
    assert acq.for_video("S1_L_transverse") == VideoSettings((0.05, 0.05), 30.0)
    assert acq.for_video("S1_R_transverse") == VideoSettings((0.07, 0.08), 12.5)
    assert acq.for_video("other") == VideoSettings((0.07, 0.08), 30.0)


@pytest.mark.parametrize(
    "raw, column",
    [
        ({"pixel_spacing_mm": [0.1, 0.1]}, "source"),
        ({"source": "real"}, "pixel_spacing_mm"),
        ({"source": "real", "pixel_spacing_mm": [0.1, -1]}, "pixel_spacing_mm"),
        ({"source": "real", "pixel_spacing_mm": [0.1, 0.1], "fps": 0}, "fps"),
        ({"source": "real", "pixel_spacing_mm": [0.1, 0.1], "videos": {"A": {"pixel_spacng_mm": 1}}}, "videos.A"),
        ({"source": "real", "pixel_spacing_mm": [0.1, 0.1], "videos": {"A": {"fps": "fast"}}}, "videos.A.fps"),
    ],
)
def test_parse_acquisition_rejects_bad_fields(raw, column):
    with pytest.raises(InputError) as err:
        parse_acquisition(raw, file="acquisition.json")
    assert err.value.column == column
    assert err.value.file == "acquisition.json"


def test_read_acquisition_missing_or_invalid_json_names_file(tmp_path):
    with pytest.raises(InputError, match="acquisition.json"):
        read_acquisition(DataLayout(tmp_path))
    (tmp_path / "acquisition.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        read_acquisition(DataLayout(tmp_path))


# -- sampling ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fps, step", [(30, 6), (25, 5), (10, 2)])
def test_sampling_integer_ratio_takes_every_nth_frame(fps, step):
    schedule = sample_frames(uniform_times(10 * fps, fps), target_fps=5)
    assert len(schedule) == 50  # 10 s at 5 fps
    np.testing.assert_array_equal(schedule["sample_index"], np.arange(50))
    np.testing.assert_array_equal(schedule["source_index"], np.arange(50) * step)
    np.testing.assert_allclose(schedule["time_s"], np.arange(50) * 0.2, atol=1e-9)


@pytest.mark.parametrize("fps", [24, 29.97, 15, 12.5, 59.94])
def test_sampling_any_rate_takes_nearest_frame_to_each_5fps_tick(fps):
    n = int(10 * fps)
    times = uniform_times(n, fps)
    schedule = sample_frames(times, target_fps=5)
    last_time = (n - 1) / fps
    assert len(schedule) == int(np.floor(last_time * 5 + 1e-9)) + 1
    ticks = schedule["sample_index"].to_numpy() / 5
    # each taken frame is the one nearest its tick, and the reported time is that frame's own time
    np.testing.assert_allclose(schedule["time_s"], schedule["source_index"] / fps)
    assert np.all(np.abs(schedule["time_s"] - ticks) <= 0.5 / fps + 1e-9)
    closest = np.abs(times[None, :] - ticks[:, None]).min(axis=1)
    np.testing.assert_allclose(np.abs(schedule["time_s"] - ticks), closest, atol=1e-9)


def test_sampling_24fps_matches_hand_computed_frames():
    schedule = sample_frames(uniform_times(24, 24), target_fps=5)
    # ticks 0, .2, .4, .6, .8 s -> 0, 4.8, 9.6, 14.4, 19.2 frames -> nearest 0, 5, 10, 14, 19
    assert schedule["source_index"].tolist() == [0, 5, 10, 14, 19]


def test_sampling_slower_source_never_duplicates_frames():
    schedule = sample_frames(uniform_times(6, 2.0), target_fps=5)  # 0 .. 2.5 s
    assert schedule["source_index"].is_unique
    assert schedule["source_index"].tolist() == list(range(6))


def test_sampling_follows_a_variable_frame_time_vector():
    times = np.array([0.0, 0.1, 0.15, 0.42, 0.61, 0.79, 1.0])
    schedule = sample_frames(times, target_fps=5)
    # ticks 0, .2, .4, .6, .8, 1.0 s -> nearest frames at 0, .15, .42, .61, .79, 1.0 s
    assert schedule["source_index"].tolist() == [0, 2, 3, 4, 5, 6]
    assert schedule["sample_index"].tolist() == [0, 1, 2, 3, 4, 5]


def test_sampling_empty_video_gives_empty_schedule():
    assert sample_frames([], 5).empty


# -- reading encoded videos ----------------------------------------------------------------------


@pytest.mark.parametrize("fps, fourcc, ext", [(30, "MJPG", "avi"), (25, "MJPG", "avi"), (24, "MJPG", "avi"), (29.97, "mp4v", "mp4")])
def test_extract_video_reads_back_the_scheduled_frames(tmp_path, fps, fourcc, ext):
    n = int(round(2 * fps))  # 2 s
    path = write_video(tmp_path / f"v.{ext}", n, fps, fourcc)
    header = probe_video(path, SETTINGS)
    assert header.n_frames == n
    assert header.fps == pytest.approx(fps, rel=1e-3)
    assert header.timing_source == "container"
    video = extract_video(header, target_fps=5, frame_size=FRAME_SIZE)
    expected = sample_frames(uniform_times(n, fps), 5)
    assert len(video.frames) == len(expected) == 10
    pd.testing.assert_frame_equal(video.frames[["sample_index", "source_index", "time_s"]], expected, atol=1e-3)
    assert video.images.shape == (10, FRAME_SIZE, FRAME_SIZE) and video.images.dtype == np.uint8
    decoded = [decode_index(image) for image in video.images]
    assert decoded == video.frames["source_index"].tolist()
    # 160 x 120 source resized to 256 x 256: spacing scales by 120/256 (rows) and 160/256 (columns)
    assert video.frames["spacing_row_mm"].iloc[0] == pytest.approx(0.1 * 120 / 256)
    assert video.frames["spacing_col_mm"].iloc[0] == pytest.approx(0.12 * 160 / 256)


def test_frame_rate_precedence_container_then_acquisition():
    assert choose_fps(30.0, VideoSettings((0.1, 0.1), fps=12.0), file="v.avi") == (30.0, "container")
    for missing in (0.0, -1.0, float("nan"), 90000.0):
        assert choose_fps(missing, VideoSettings((0.1, 0.1), fps=12.0), file="v.avi") == (12.0, "acquisition.json")
    with pytest.raises(InputError, match="fps") as err:
        choose_fps(0.0, SETTINGS, file="v.avi")
    assert err.value.file == "v.avi"


def test_empty_file_raises_naming_it(tmp_path):
    path = tmp_path / "S1_L_transverse.avi"
    path.write_bytes(b"")
    with pytest.raises(InputError) as err:
        probe_video(path, SETTINGS)
    assert_names_file(err, path)


def test_corrupt_file_raises_naming_it(tmp_path):
    path = tmp_path / "S1_L_transverse.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(InputError) as err:
        probe_video(path, SETTINGS)
    assert_names_file(err, path)


def test_missing_file_raises_naming_it(tmp_path):
    with pytest.raises(InputError) as err:
        probe_video(tmp_path / "nope.avi", SETTINGS)
    assert_names_file(err, tmp_path / "nope.avi")


def test_truncated_avi_raises_naming_it(tmp_path):
    path = write_video(tmp_path / "full.avi", 60, 30)
    cut = tmp_path / "S1_L_longitudinal.avi"
    data = path.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    header = probe_video(cut, SETTINGS)  # the header still declares 60 frames
    with pytest.raises(InputError, match="truncated") as err:
        extract_video(header)
    assert_names_file(err, cut)


def test_truncated_mp4_raises_naming_it(tmp_path):
    path = write_video(tmp_path / "full.mp4", 30, 30, "mp4v")
    cut = tmp_path / "S1_R_transverse.mp4"
    cut.write_bytes(path.read_bytes()[:-2000])  # the index (moov atom) is at the end
    with pytest.raises(InputError) as err:
        extract_video(probe_video(cut, SETTINGS))
    assert_names_file(err, cut)


def test_zero_frame_video_raises_naming_it(tmp_path):
    path = tmp_path / "S2_L_transverse.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (160, 120))
    writer.release()
    if not path.exists():
        path.write_bytes(b"RIFF\x00\x00\x00\x00AVI ")
    with pytest.raises(InputError) as err:
        probe_video(path, SETTINGS)
    assert_names_file(err, path)


def test_unsupported_codec_raises_naming_it(tmp_path):
    path = write_video(tmp_path / "S3_L_transverse.avi", 10, 30)
    data = path.read_bytes().replace(b"MJPG", b"QQQQ")  # a codec no decoder knows
    path.write_bytes(data)
    with pytest.raises(InputError) as err:
        probe_video(path, SETTINGS)
    assert_names_file(err, path)


# -- DICOM ---------------------------------------------------------------------------------------


def dicom_frames(n: int = 10, rows: int = 60, cols: int = 80) -> np.ndarray:
    return np.stack([encode_index(i, rows, cols) for i in range(n)])


def test_dicom_cine_timing_spacing_and_pixels(tmp_path):
    path = write_dicom(tmp_path / "S1_L_transverse.dcm", dicom_frames(10), FrameTime=100.0, PixelSpacing=[0.2, 0.25])
    header = probe_video(path, SETTINGS)
    assert (header.n_frames, header.height, header.width) == (10, 60, 80)
    assert header.timing_source == "FrameTime" and header.fps == pytest.approx(10.0)
    assert header.pixel_spacing_mm == (0.2, 0.25) and header.spacing_source == "PixelSpacing"
    video = extract_video(header, frame_size=32)
    assert video.frames["source_index"].tolist() == [0, 2, 4, 6, 8]
    np.testing.assert_allclose(video.frames["time_s"], [0, 0.2, 0.4, 0.6, 0.8])
    assert [decode_index(im) for im in video.images] == [0, 2, 4, 6, 8]
    assert video.frames["spacing_row_mm"].iloc[0] == pytest.approx(0.2 * 60 / 32)


def test_dicom_patient_tags_never_reach_outputs(tmp_path):
    from ctslib.frames import qc
    path = write_dicom(tmp_path / "scan.dcm", dicom_frames(6), CineRate=10)
    header = probe_video(path, SETTINGS)
    video = extract_video(header, frame_size=32)
    out = tmp_path / "out"
    (out / "frames").mkdir(parents=True)
    (out / "masks").mkdir()
    job = VideoJob("P001_L", "P001", "L", "transverse", "mild", 1, "scan.dcm")
    decision = qc.final_decision(qc.qc_video(video.images), video.frames["sample_index"], None)
    table = frame_table(job, video, {}, decision)
    table["has_png"] = write_frame_pngs(table, video.images, {}, out / "frames", out / "masks", "all")
    table.to_csv(out / "frames.csv", index=False)
    written = b"".join(p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file())
    assert len(list((out / "frames").iterdir())) == len(table) == 3
    in_memory = (repr(header) + repr(video) + video.frames.to_csv()).encode()
    for secret in (b"Doe", b"Jane", b"SECRET-4711", b"19700101"):
        assert secret in path.read_bytes()  # the input does carry them ...
        assert secret not in written and secret not in in_memory  # ... the outputs never do
    assert not any(isinstance(v, str) and "Doe" in v for v in vars(header).values())


def test_dicom_frame_time_vector_and_ultrasound_region_spacing(tmp_path):
    from pydicom import Dataset

    region = Dataset()
    region.PhysicalUnitsXDirection = 3  # cm
    region.PhysicalUnitsYDirection = 3
    region.PhysicalDeltaX = 0.008
    region.PhysicalDeltaY = 0.006
    path = write_dicom(
        tmp_path / "v.dcm",
        dicom_frames(5),
        FrameTimeVector=[0, 100, 300, 100, 100],  # increments: frames at 0, .1, .4, .5, .6 s
        SequenceOfUltrasoundRegions=[region],
    )
    header = probe_video(path, SETTINGS)
    assert header.timing_source == "FrameTimeVector"
    np.testing.assert_allclose(header.source_times, [0, 0.1, 0.4, 0.5, 0.6])
    assert header.pixel_spacing_mm == pytest.approx((0.06, 0.08))
    assert header.spacing_source == "SequenceOfUltrasoundRegions"
    assert extract_video(header, frame_size=32).frames["source_index"].tolist() == [0, 1, 2, 4]


def test_dicom_16bit_uses_the_stored_bit_depth_rule(tmp_path):
    frames = np.full((2, 8, 8), 4095, np.uint16)
    frames[1] = 2048
    path = write_dicom(tmp_path / "v.dcm", frames, BitsStored=12, RecommendedDisplayFrameRate=5)
    video = extract_video(probe_video(path, SETTINGS), frame_size=8)
    assert video.images[0].max() == 255 and video.images[0].min() == 255
    assert int(video.images[1, 0, 0]) == round(2048 * 255 / 4095)


def test_dicom_rgb_is_converted_to_gray(tmp_path):
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    frames[..., 0] = 200  # pure red in RGB order
    path = write_dicom(tmp_path / "v.dcm", frames, CineRate=5)
    video = extract_video(probe_video(path, SETTINGS), frame_size=8)
    assert int(video.images[0, 0, 0]) == int(cv2.cvtColor(np.array([[[200, 0, 0]]], np.uint8), cv2.COLOR_RGB2GRAY)[0, 0])


def test_dicom_without_pixel_data_raises_naming_it(tmp_path):
    path = write_dicom(tmp_path / "S4_L_transverse.dcm", dicom_frames(3), pixel_data=False, CineRate=10)
    with pytest.raises(InputError, match="no pixel data") as err:
        probe_video(path, SETTINGS)
    assert_names_file(err, path)


def test_dicom_without_timing_uses_acquisition_fps_or_raises(tmp_path):
    path = write_dicom(tmp_path / "S5_L_transverse.dcm", dicom_frames(4))
    assert probe_video(path, VideoSettings((0.1, 0.1), fps=10.0)).timing_source == "acquisition.json"
    with pytest.raises(InputError, match="fps") as err:
        probe_video(path, SETTINGS)
    assert_names_file(err, path)


def test_not_a_dicom_file_raises_naming_it(tmp_path):
    path = tmp_path / "S6_L_transverse.dcm"
    path.write_bytes(b"this is not dicom" * 20)
    with pytest.raises(InputError) as err:
        probe_video(path, SETTINGS)
    assert_names_file(err, path)


# -- grayscale ----------------------------------------------------------------------------------


def test_to_gray8_channel_order_and_bit_depth():
    bgr = np.zeros((2, 2, 3), np.uint8)
    bgr[..., 2] = 255  # red in BGR
    assert to_gray8(bgr, channel_order="bgr")[0, 0] == to_gray8(bgr[..., ::-1].copy(), channel_order="rgb")[0, 0]
    assert to_gray8(bgr, channel_order="bgr")[0, 0] != to_gray8(bgr, channel_order="rgb")[0, 0]
    assert to_gray8(np.full((2, 2), 65535, np.uint16))[0, 0] == 255
    assert to_gray8(np.full((2, 2), 1000, np.uint16), bits_stored=10)[0, 0] == round(1000 * 255 / 1023)
    assert to_gray8(np.full((2, 2), 0.5, np.float32))[0, 0] == 128


def test_resized_spacing_is_anisotropic_for_non_square_sources():
    assert resized_spacing((0.1, 0.1), (512, 256), 256) == pytest.approx((0.2, 0.1))


# -- masks ---------------------------------------------------------------------------------------


def test_npz_masks_resized_nearest_and_labels_other_than_nerve_ignored(tmp_path):
    mask = np.zeros((3, 60, 80), np.uint8)
    mask[:, 10:30, 20:40] = 1  # nerve
    mask[:, 40:50, 50:70] = 2  # vessel: ignored
    np.savez(tmp_path / "v.npz", index=np.array([0, 2, 4]), mask=mask)
    masks = read_frame_masks(tmp_path / "v.npz", (60, 80), [0, 4, 8], frame_size=32)
    assert sorted(masks) == [0, 4]
    assert set(np.unique(masks[0]).tolist()) == {0, 1}
    expected = cv2.resize((mask[0] == 1).astype(np.uint8), (32, 32), interpolation=cv2.INTER_NEAREST)
    np.testing.assert_array_equal(masks[0], expected)


def test_mask_size_mismatch_raises_naming_the_mask(tmp_path):
    np.savez(tmp_path / "v.npz", index=np.array([0]), mask=np.zeros((1, 50, 80), np.uint8))
    with pytest.raises(InputError, match="differs") as err:
        read_frame_masks(tmp_path / "v.npz", (60, 80))
    assert_names_file(err, tmp_path / "v.npz")


def test_png_mask_folder_with_palette_labels(tmp_path):
    from PIL import Image

    folder = tmp_path / "masks" / "S1_L_transverse"
    folder.mkdir(parents=True)
    labels = np.zeros((60, 80), np.uint8)
    labels[5:15, 5:15] = 1
    labels[30:40, 30:40] = 2
    image = Image.fromarray(labels, mode="P")
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
    image.save(folder / "6.png")
    assert find_masks(DataLayout(tmp_path), "S1_L_transverse") == folder
    masks = read_frame_masks(folder, (60, 80), [0, 6], frame_size=40)
    assert list(masks) == [6]
    expected = cv2.resize((labels == 1).astype(np.uint8), (40, 40), interpolation=cv2.INTER_NEAREST)
    np.testing.assert_array_equal(masks[6], expected)
    assert masks[6].sum() > 0
    bad = tmp_path / "masks" / "S2"
    bad.mkdir()
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(bad / "0.png")
    with pytest.raises(InputError) as err:
        read_frame_masks(bad, (60, 80))
    assert_names_file(err, bad / "0.png")


# -- outputs -------------------------------------------------------------------------------------


def test_frame_id_follows_the_contract():
    assert frame_id("P007_L", "transverse", 12) == "P007_L_transverse_0012"


def test_staged_dirs_replace_targets_only_on_success(tmp_path):
    target = tmp_path / "frames"
    target.mkdir()
    (target / "old.png").write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with staged_dirs(target) as (staging,):
            (staging / "new.png").write_bytes(b"new")
            raise RuntimeError("a later video failed")
    assert [p.name for p in tmp_path.iterdir()] == ["frames"]
    assert [p.name for p in target.iterdir()] == ["old.png"]
    with staged_dirs(target) as (staging,):
        (staging / "new.png").write_bytes(b"new")
    assert [p.name for p in target.iterdir()] == ["new.png"]
    assert [p.name for p in tmp_path.iterdir()] == ["frames"]


def wrists_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "wrist_id": ["P001_L", "P001_R", "P002_L"],
            "participant_id": ["P001", "P001", "P002"],
            "side": ["L", "R", "L"],
            "grade": ["mild", "", "severe"],
            "grade_index": ["1", "", "3"],
            "video_transverse": ["S9_L_transverse.avi", "S9_R_transverse.avi", "S7_L_transverse.dcm"],
            "video_longitudinal": ["S9_L_longitudinal.avi", "S9_R_longitudinal.avi", ""],
        }
    )


def test_video_jobs_list_what_is_not_extracted():
    jobs, left_out = video_jobs(wrists_table())
    assert [(j.wrist_id, j.plane) for j in jobs] == [("P001_L", "transverse"), ("P001_L", "longitudinal"), ("P002_L", "transverse")]
    assert jobs[2].stem == "S7_L_transverse" and jobs[2].label == "P002_L_transverse" and jobs[2].grade_index == 3
    assert left_out.to_dict("records") == [
        {"wrist_id": "P001_R", "plane": "transverse", "why": "wrist has no grade"},
        {"wrist_id": "P001_R", "plane": "longitudinal", "why": "wrist has no grade"},
        {"wrist_id": "P002_L", "plane": "longitudinal", "why": "no video file"},
    ]


def test_skip_record_keeps_the_reason_not_the_file_name():
    job = video_jobs(wrists_table())[0][0]
    row = skip_record(job, "open", InputError("video file is empty (0 bytes)", file="/data/videos/S9_L_transverse.avi"))
    assert row == {"wrist_id": "P001_L", "plane": "transverse", "step": "open", "error": "video file is empty (0 bytes)"}
    assert "S9" not in str(row)


@pytest.mark.parametrize("policy, expected", [("kept", [0, 2]), ("kept+masked", [0, 1, 2]), ("all", [0, 1, 2, 3])])
def test_frame_table_and_png_policy(tmp_path, policy, expected):
    path = write_video(tmp_path / "v.avi", 8, 10)  # 0.8 s: source frames 0, 2, 4, 6 at 5 fps
    video = extract_video(probe_video(path, SETTINGS), frame_size=32)
    masks = {2: np.eye(32, dtype=np.uint8)}  # source frame 2 = the second extracted frame
    decision = pd.DataFrame({"kept": [True, False, True, False], "reason": ["ok", "blur", "ok", "frozen"]})
    job = VideoJob("P001_L", "P001", "L", "transverse", "mild", 1, "v.avi")
    table = frame_table(job, video, masks, decision)
    assert table["frame_id"].tolist() == [f"P001_L_transverse_{k:04d}" for k in range(4)]
    assert table["has_mask"].tolist() == [False, True, False, False]
    frames_dir, masks_dir = tmp_path / "frames", tmp_path / "masks"
    frames_dir.mkdir()
    masks_dir.mkdir()
    has_png = write_frame_pngs(table, video.images, masks, frames_dir, masks_dir, policy)
    assert np.flatnonzero(has_png.to_numpy()).tolist() == expected
    assert sorted(p.stem for p in frames_dir.iterdir()) == table["frame_id"].iloc[expected].tolist()
    if 1 in expected:
        saved = cv2.imread(str(masks_dir / "P001_L_transverse_0001.png"), cv2.IMREAD_GRAYSCALE)
        np.testing.assert_array_equal(saved, np.eye(32, dtype=np.uint8) * 255)
    else:
        assert not any(masks_dir.iterdir())


def test_burned_in_text_band_is_blanked_before_frames_are_saved(tmp_path: Path) -> None:
    """A screen capture with a bright text band at the top: the band is black in the extracted frames."""
    from ctslib.frames.prepare import blank_text_bands

    path = tmp_path / "S9_L_transverse.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (80, 60), isColor=False)
    for i in range(10):
        frame = np.full((60, 80), 90, np.uint8)
        frame[0:6] = 255  # "DOE^JANE 1970-01-01" burned into the top tenth
        writer.write(frame)
    writer.release()
    header = probe_video(path, SETTINGS)
    plain = extract_video(header, target_fps=5.0, frame_size=40).images
    masked = extract_video(probe_video(path, SETTINGS), target_fps=5.0, frame_size=40, text_bands=[[0.0, 0.1]]).images
    assert plain[:, :3].mean() > 200
    assert masked[:, :3].max() < 20 and abs(float(masked[:, 10:].mean()) - float(plain[:, 10:].mean())) < 2
    with pytest.raises(ValueError, match="top < bottom"):
        blank_text_bands(np.zeros((10, 10), np.uint8), [[0.5, 0.2]])
