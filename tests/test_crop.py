"""Tests of the crops: border clamping, centroid crops, the no-nerve rule, CSA, the crop loop (ctslib.nerve.crop),
frames.csv (ctslib.nerve.frames), nerve hints (ctslib.nerve.hints) and the crop summaries (ctslib.nerve.crop_summary)."""

from __future__ import annotations

import math
import re

import cv2
import numpy as np
import pandas as pd
import pytest

from ctslib import PLANES
from ctslib.common.errors import InputError
from ctslib.nerve import crop, crop_summary, geometry
from ctslib.nerve.frames import masked_frames, read_frames, validate_frames
from ctslib.nerve.hints import hint_pixels, load_hints, read_nerve_hints


def disk(shape: tuple[int, int], cx: int, cy: int, r: int) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.circle(mask, (cx, cy), r, 1, thickness=-1)
    return mask


# -- geometry -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cx", "cy", "expected"),
    [(2, 3, (0, 0)), (61, 2, (44, 0)), (1, 46, (0, 28)), (62, 45, (44, 28))],
)
def test_crop_stays_inside_image_at_all_four_corners(cx, cy, expected):
    width, height, size = 64, 48, 20
    mask = disk((height, width), cx, cy, 2)
    plan = crop.plan_crop(mask, size, min_area_px=1)
    assert plan.nerve_found
    assert (plan.x0, plan.y0) == expected
    image = np.arange(width * height, dtype=np.uint32).reshape(height, width)
    cut = crop.extract_crop(image, plan.x0, plan.y0, size)
    assert cut.shape == (size, size)
    assert cut[0, 0] == image[expected[1], expected[0]]
    # the nerve centroid is kept as recorded centre even though the box was shifted
    assert abs(plan.centre_x - cx) < 0.5 and abs(plan.centre_y - cy) < 0.5


def test_crop_box_is_centred_on_mask_centroid_and_holds_the_nerve():
    height, width, size = 80, 100, 24
    mask = disk((height, width), 57, 33, 6)
    image = np.full((height, width), 20, np.uint8)
    image[mask > 0] = 250  # the "nerve" is the only bright thing in the frame
    plan = crop.plan_crop(mask, size, min_area_px=10)
    # box centre x0 + (size-1)/2 is within half a pixel of the centroid (57, 33)
    assert abs(plan.x0 + (size - 1) / 2 - 57) <= 0.5
    assert abs(plan.y0 + (size - 1) / 2 - 33) <= 0.5
    cut = crop.extract_crop(image, plan.x0, plan.y0, size)
    assert (cut == 250).sum() == (image == 250).sum()  # the whole nerve is inside the crop
    bright_rows, bright_cols = np.nonzero(cut == 250)
    assert abs(bright_cols.mean() - (size - 1) / 2) <= 0.5
    assert abs(bright_rows.mean() - (size - 1) / 2) <= 0.5


def test_crop_larger_than_frame_or_leaving_it_is_refused():
    with pytest.raises(ValueError):
        crop.crop_origin(10, 10, 65, 64, 64)
    with pytest.raises(ValueError):
        crop.extract_crop(np.zeros((32, 32), np.uint8), 20, 0, 16)


def test_no_nerve_rule_for_empty_and_tiny_masks():
    empty = np.zeros((32, 32), np.uint8)
    plan = crop.plan_crop(empty, 16, min_area_px=5)
    assert not plan.nerve_found and plan.area_px == 0 and math.isnan(plan.centre_x)
    tiny = empty.copy()
    tiny[10:12, 10:12] = 1  # 4 px < 5 px
    assert not crop.plan_crop(tiny, 16, min_area_px=5).nerve_found
    assert crop.plan_crop(tiny, 16, min_area_px=4).nerve_found

    frame = {"frame_id": "P001_L_transverse_0001", "wrist_id": "P001_L", "participant_id": "P001",
             "plane": "transverse", "grade": "mild", "grade_index": 1,
             "spacing_row_mm": 0.1, "spacing_col_mm": 0.1}
    row, _ = crop.crop_record(frame, tiny, 16, min_area_mm2=0.05, true_mask=disk((32, 32), 11, 11, 3))
    assert row["nerve_found"] is False and row["reason"] == crop.NO_NERVE_REASON
    assert row["crop_path"] == "" and math.isnan(row["csa_mm2"])
    assert row["centre_in_true_mask"] is False  # no crop counts as a miss where the truth shows a nerve
    row, _ = crop.crop_record(frame, tiny, 16, min_area_mm2=0.05, true_mask=np.zeros_like(tiny))
    assert row["centre_in_true_mask"] is None and row["true_nerve_area_px"] == 0  # nothing to hit


def test_csa_of_a_known_disk_and_spacing():
    mask = disk((200, 200), 100, 100, 40)
    count = int(mask.sum())
    assert abs(count - math.pi * 40**2) / (math.pi * 40**2) < 0.02
    assert crop.csa_mm2(mask, 0.1, 0.2) == pytest.approx(count * 0.02)
    assert crop.csa_mm2(mask, 0.1, 0.2) == pytest.approx(math.pi * 40**2 * 0.02, rel=0.02)
    assert crop.min_area_pixels(1.0, 0.1, 0.2) == pytest.approx(50.0)


def test_point_in_mask_and_fraction_in_box():
    mask = disk((40, 40), 20, 20, 5)
    assert geometry.point_in_mask(mask, 20.3, 19.6)
    assert not geometry.point_in_mask(mask, 2, 2)
    assert not geometry.point_in_mask(mask, 100, 3) and not geometry.point_in_mask(mask, float("nan"), 3)
    assert crop.fraction_in_box(mask, 0, 0, 40) == 1.0
    assert crop.fraction_in_box(mask, 0, 0, 20) == pytest.approx((mask[:20, :20]).sum() / mask.sum())
    assert math.isnan(crop.fraction_in_box(np.zeros_like(mask), 0, 0, 10))


# -- frames.csv validation -------------------------------------------------------------------


def frames_table(n: int = 3, **overrides) -> pd.DataFrame:
    rows = []
    for i in range(n):
        plane = PLANES[i % 2]
        rows.append({"frame_id": f"P00{i}_L_{plane}_0001", "wrist_id": f"P00{i}_L", "participant_id": f"P00{i}",
                     "side": "L", "plane": plane, "grade": "normal", "grade_index": 0,
                     "spacing_row_mm": 0.1, "spacing_col_mm": 0.1, "has_mask": True, "kept": True})
    df = pd.DataFrame(rows)
    for k, v in overrides.items():
        df[k] = df[k].astype(object)
        df.loc[0, k] = v
    return df


def test_validate_frames_names_missing_column_and_bad_spacing(tmp_path):
    with pytest.raises(InputError) as err:
        validate_frames(frames_table().drop(columns=["spacing_col_mm"]), file="frames.csv")
    assert err.value.column == "spacing_col_mm" and "frames.csv" in str(err.value)
    bad = frames_table()
    bad["spacing_row_mm"] = bad["spacing_row_mm"].astype(object)
    bad.loc[1, "spacing_row_mm"] = "n/a"
    with pytest.raises(InputError) as err:
        validate_frames(bad, file="frames.csv")
    assert err.value.row == 2 and err.value.column == "spacing_row_mm"
    ok = validate_frames(frames_table(kept="False"))
    assert ok["kept"].tolist() == [False, True, True]
    with pytest.raises(InputError):
        read_frames(tmp_path / "missing.csv")


# -- the crop loop on a tiny frame folder ---------------------------------------------------------


def threshold_model():
    """A real Keras model that "segments" bright pixels: enough to test the crop loop exactly."""
    import keras

    return keras.Sequential([keras.Input((32, 32, 1)), keras.layers.Lambda(lambda x: keras.ops.cast(x > 0.5, "float32"))])


def write_tiny_layout(tmp_path, seed: int = 0):
    frames_dir, masks_dir = tmp_path / "frames", tmp_path / "masks"
    frames_dir.mkdir()
    masks_dir.mkdir()
    rng = np.random.default_rng(seed)
    # middle, two corners, a frame without a nerve, and a nerve the "segmenter" misses (not bright)
    centres = [(20, 30), (5, 6), (58, 60), None, (32, 32)]
    rows = frames_table(5)
    rows["grade"] = ["normal", "mild", "severe", "moderate", "mild"]
    for (i, row), centre in zip(rows.iterrows(), centres):
        image = rng.integers(10, 60, (64, 64)).astype(np.uint8)  # dark speckle
        mask = np.zeros((64, 64), np.uint8)
        if centre is not None:
            cv2.ellipse(mask, centre, (7, 4), 0, 0, 360, 1, thickness=-1)
            if i < 3:
                image[mask > 0] = rng.integers(200, 255, int(mask.sum()))
        cv2.imwrite(str(frames_dir / f"{row.frame_id}.png"), image)
        cv2.imwrite(str(masks_dir / f"{row.frame_id}.png"), mask * 255)
    return rows, frames_dir, masks_dir


def test_crop_frames_writes_crops_and_table(tmp_path):
    frames, frames_dir, masks_dir = write_tiny_layout(tmp_path)
    crops_dir = tmp_path / "work" / "03" / "crops"
    table = crop.crop_frames(frames, frames_dir, crops_dir, threshold_model(), input_size=32, crop_size=24,
                             min_area_mm2=0.2, masks_dir=masks_dir, work_root=tmp_path / "work", progress=False)
    assert list(table.columns) == list(crop.CROP_COLUMNS)
    assert table["nerve_found"].tolist() == [True, True, True, False, False]
    assert table.loc[3, "reason"] == crop.NO_NERVE_REASON and table.loc[3, "crop_path"] == ""
    assert not (crops_dir / f"{frames.frame_id[3]}.png").exists()
    assert table.loc[3, "true_nerve_area_px"] == 0 and pd.isna(table.loc[3, "centre_in_true_mask"])
    assert table.loc[4, "true_nerve_area_px"] > 0 and table.loc[4, "centre_in_true_mask"] is False
    found = table[table["nerve_found"]]
    assert found["centre_in_true_mask"].all()
    assert (found["true_nerve_in_crop"] > 0.9).all()
    for row in found.itertuples():
        assert 0 <= row.x0 <= 64 - 24 and 0 <= row.y0 <= 64 - 24
        saved = cv2.imread(str(tmp_path / "work" / row.crop_path), cv2.IMREAD_GRAYSCALE)
        frame = cv2.imread(str(frames_dir / f"{row.frame_id}.png"), cv2.IMREAD_GRAYSCALE)
        np.testing.assert_array_equal(saved, frame[row.y0 : row.y0 + 24, row.x0 : row.x0 + 24])
    # the missed nerve counts against the rate; the frame with no nerve in view is not scored
    assert crop_summary.centre_hit_rate(table) == pytest.approx(3 / 4)

    funnel = crop_summary.crop_funnel(frames, table).set_index("plane")
    assert funnel.loc["all", "kept_frames"] == 5
    assert funnel.loc["all", "no_nerve_found"] == 2 and funnel.loc["all", "crops"] == 3
    assert funnel.loc["all", "no_nerve_found_true_empty"] == 1 and funnel.loc["all", "crops_true_empty"] == 0
    assert funnel.loc["transverse", "crops"] + funnel.loc["longitudinal", "crops"] == 3
    assert crop_summary.empty_truth_crop_warnings(funnel.reset_index()) == []  # no crop from an empty truth here

    # CSA per grade: a transverse frame of each found grade, means equal the single values
    by_grade = crop_summary.csa_by_grade(table).set_index("grade")
    normal = table.loc[0]
    assert by_grade.loc["normal", "n_crops"] == 1
    assert by_grade.loc["normal", "csa_mm2_mean"] == pytest.approx(normal.csa_mm2)
    assert normal.csa_mm2 == pytest.approx(normal.nerve_area_px * 0.01)


def test_crop_frames_refuses_missing_frame_before_writing(tmp_path):
    frames, frames_dir, masks_dir = write_tiny_layout(tmp_path)
    (frames_dir / f"{frames.frame_id[2]}.png").unlink()
    crops_dir = tmp_path / "crops"
    with pytest.raises(InputError) as err:
        crop.crop_frames(frames, frames_dir, crops_dir, threshold_model(), input_size=32, crop_size=24,
                         min_area_mm2=0.2, progress=False)
    assert frames.frame_id[2] in str(err.value)
    assert not crops_dir.exists()


# -- per-video no-nerve shares and their warnings ---------------------------------------------------


def crops_of(found_per_video: dict[tuple[str, str], list[bool]]) -> pd.DataFrame:
    rows = []
    for (wrist, plane), flags in found_per_video.items():
        for k, flag in enumerate(flags):
            rows.append({"frame_id": f"{wrist}_{plane}_{k:04d}", "wrist_id": wrist, "plane": plane, "nerve_found": flag})
    return pd.DataFrame(rows)


def test_no_nerve_share_per_video_and_its_warnings():
    crops = crops_of({
        ("P001_L", "transverse"): [True] * 10,
        ("P001_L", "longitudinal"): [True] * 6 + [False] * 4,   # 40 %: over 30 %
        ("P002_R", "transverse"): [False] * 5,                  # nothing found at all
        ("P002_R", "longitudinal"): [True] * 8 + [False] * 2,   # 20 %: fine
    })
    table = crop_summary.no_nerve_by_video(crops).set_index(["wrist_id", "plane"])
    assert table.loc[("P001_L", "longitudinal"), "no_nerve_found"] == 4
    assert table.loc[("P001_L", "longitudinal"), "no_nerve_share"] == pytest.approx(0.4)
    assert table.loc[("P002_R", "transverse"), "kept_frames"] == 5
    messages = crop_summary.no_nerve_warnings(table.reset_index(), max_share=0.3)
    assert len(messages) == 2
    assert any("P002_R transverse" in m and "any of its 5 kept frames" in m for m in messages)
    assert any("P001_L longitudinal" in m and "4 of 10" in m for m in messages)
    assert crop_summary.no_nerve_warnings(table.reset_index(), max_share=0.5) == [m for m in messages if "P002_R" in m]
    assert "true masks" not in " ".join(messages)  # no truth, no claim about it

    # with true masks: the no-nerve frames whose truth is empty too are named as such
    crops["true_nerve_area_px"] = 0
    crops.loc[crops["wrist_id"].eq("P002_R") & crops["plane"].eq("transverse"), "true_nerve_area_px"] = [40, 0, 0, 0, 0]
    with_truth = crop_summary.no_nerve_by_video(crops).set_index(["wrist_id", "plane"])
    assert with_truth.loc[("P002_R", "transverse"), "no_nerve_true_empty"] == 4
    warned = crop_summary.no_nerve_warnings(with_truth.reset_index(), max_share=0.5)
    assert warned == [messages[[i for i, m in enumerate(messages) if "P002_R" in m][0]]
                      + "; the true masks show no nerve in 4 of them (QC kept frames without the nerve)"]
    # every rejection confirmed by an empty truth: one summary line instead of a warning per video
    crops.loc[crops["wrist_id"].eq("P002_R") & crops["plane"].eq("transverse"), "true_nerve_area_px"] = 0
    crops.loc[crops["wrist_id"].eq("P002_R") & crops["plane"].eq("transverse"), "nerve_found"] = [True] + [False] * 4
    confirmed = crop_summary.no_nerve_warnings(crop_summary.no_nerve_by_video(crops), max_share=0.3)
    assert not any(m.startswith("P001_L") or m.startswith("P002_R") for m in confirmed)
    assert confirmed[-1].startswith("2 videos had no nerve found in over 30% of their kept frames (8 frames)")


def test_no_nerve_anywhere_stops_the_stage_naming_the_frames_tried():
    from ctslib.common.errors import StageError

    crops = crops_of({("P001_L", "transverse"): [False] * 7, ("P002_R", "longitudinal"): [False] * 3})
    with pytest.raises(StageError, match="no nerve found in any of the 10 kept frames of 2 videos"):
        crop_summary.no_nerve_warnings(crop_summary.no_nerve_by_video(crops), max_share=0.3)
    with pytest.raises(StageError, match="no kept frame to segment"):
        crop_summary.no_nerve_warnings(crop_summary.no_nerve_by_video(crops.head(0)), max_share=0.3)


# -- nerve hints ---------------------------------------------------------------------------------


def test_read_nerve_hints_maps_videos_to_pseudonymised_wrists_and_checks_rows(tmp_path):
    id_map = pd.DataFrame({"source_id": ["S7", "S9"], "participant_id": ["P001", "P002"]})
    path = tmp_path / "nerve_hints.csv"
    path.write_text("video,x,y\nS7_l_Transverse.mp4,0.25,0.5\nS9_R_longitudinal,\"0,75\",0.1\n,,\n")
    hints = read_nerve_hints(path, id_map)
    assert hints == {("P001_L", "transverse"): (0.25, 0.5), ("P002_R", "longitudinal"): (0.75, 0.1)}
    assert hint_pixels(hints, {"wrist_id": "P001_L", "plane": "transverse"}, (101, 201)) == (50.0, 50.0)
    assert hint_pixels(hints, {"wrist_id": "P003_L", "plane": "transverse"}, (10, 10)) is None

    for text, row, column, words in [
        ("video,x\nS7_L_transverse,0.2\n", None, "y", "missing ['y']"),
        ("video,x,y\nS7_L_transverse,1.5,0.5\n", 1, "x", "fraction of the frame"),
        ("video,x,y\nS7_L_transverse,0.2,0.5\nS7_L_transverse,0.3,0.5\n", 2, "video", "more than one hint"),
        ("video,x,y\nS7_left,0.2,0.5\n", 1, "video", "is not <participant_id>_<side>_<plane>"),
        ("video,x,y\nS8_L_transverse,0.2,0.5\n", 1, "video", "not in cohort.csv"),
    ]:
        path.write_text(text)
        with pytest.raises(InputError, match=re.escape(words)) as err:
            read_nerve_hints(path, id_map)
        assert err.value.column == column and err.value.row == row and "nerve_hints.csv" in str(err.value)
    assert load_hints(tmp_path / "absent.csv", tmp_path / "id_map.csv") == {}


def test_a_hint_picks_the_marked_component_instead_of_the_largest(tmp_path):
    """Two bright blobs: without a hint the larger one is cropped, with a hint near the smaller one, that one."""
    frames = frames_table(1)
    frames_dir = tmp_path / "frames"
    frames_dir.mkdir()
    image = np.full((64, 64), 20, np.uint8)
    image[disk((64, 64), 16, 16, 8) > 0] = 230   # large blob, top-left
    image[disk((64, 64), 48, 48, 4) > 0] = 230   # small blob, bottom-right
    cv2.imwrite(str(frames_dir / f"{frames.frame_id[0]}.png"), image)
    common = dict(input_size=32, crop_size=24, min_area_mm2=0.2, progress=False)
    plain = crop.crop_frames(frames, frames_dir, tmp_path / "a", threshold_model(), **common)
    assert plain.loc[0, "centre_x"] < 32 and plain.loc[0, "centre_y"] < 32
    hint = {(frames.wrist_id[0], frames.plane[0]): (47 / 63, 47 / 63)}
    hinted = crop.crop_frames(frames, frames_dir, tmp_path / "b", threshold_model(), hints=hint, **common)
    assert hinted.loc[0, "centre_x"] > 32 and hinted.loc[0, "centre_y"] > 32
    assert hinted.loc[0, "nerve_area_px"] < plain.loc[0, "nerve_area_px"]


def test_masked_frames_keeps_every_frame_with_a_mask_whatever_qc_decided():
    frames = frames_table(4)
    frames["kept"] = [True, False, False, True]
    frames["has_mask"] = [True, True, False, "1.0"]
    frames["has_png"] = [True, True, True, True]
    assert masked_frames(frames)["frame_id"].tolist() == [frames.frame_id[0], frames.frame_id[1], frames.frame_id[3]]
    frames["has_png"] = [True, False, True, True]  # a masked frame whose PNG stage 02 did not store
    assert masked_frames(frames)["frame_id"].tolist() == [frames.frame_id[0], frames.frame_id[3]]


def test_empty_truth_crop_warnings_name_the_plane_and_share():
    import pandas as pd

    funnel = pd.DataFrame({"plane": ["transverse", "longitudinal", "all"], "crops": [100, 200, 300],
                           "crops_true_empty": [5, 80, 85]})
    messages = crop_summary.empty_truth_crop_warnings(funnel, max_share=0.1)
    assert len(messages) == 1 and messages[0].startswith("80 of 200 longitudinal crops (40.0%)")
    assert len(crop_summary.empty_truth_crop_warnings(funnel, max_share=0.04)) == 2  # transverse at 5 % now too
    assert crop_summary.empty_truth_crop_warnings(funnel.assign(crops=0, crops_true_empty=0)) == []
