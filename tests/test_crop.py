"""Tests of ctslib.crop: border clamping, centroid crops, the no-nerve rule, CSA, the crop loop."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pandas as pd
import pytest

from ctslib import crop
from ctslib.errors import InputError


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
    assert crop.point_in_mask(mask, 20.3, 19.6)
    assert not crop.point_in_mask(mask, 2, 2)
    assert not crop.point_in_mask(mask, 100, 3) and not crop.point_in_mask(mask, float("nan"), 3)
    assert crop.fraction_in_box(mask, 0, 0, 40) == 1.0
    assert crop.fraction_in_box(mask, 0, 0, 20) == pytest.approx((mask[:20, :20]).sum() / mask.sum())
    assert math.isnan(crop.fraction_in_box(np.zeros_like(mask), 0, 0, 10))


# -- frames.csv validation -------------------------------------------------------------------


def frames_table(n: int = 3, **overrides) -> pd.DataFrame:
    rows = []
    for i in range(n):
        plane = crop.PLANES[i % 2]
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
        crop.validate_frames(frames_table().drop(columns=["spacing_col_mm"]), file="frames.csv")
    assert err.value.column == "spacing_col_mm" and "frames.csv" in str(err.value)
    bad = frames_table()
    bad["spacing_row_mm"] = bad["spacing_row_mm"].astype(object)
    bad.loc[1, "spacing_row_mm"] = "n/a"
    with pytest.raises(InputError) as err:
        crop.validate_frames(bad, file="frames.csv")
    assert err.value.row == 2 and err.value.column == "spacing_row_mm"
    ok = crop.validate_frames(frames_table(kept="False"))
    assert ok["kept"].tolist() == [False, True, True]
    with pytest.raises(InputError):
        crop.read_frames(tmp_path / "missing.csv")


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
    assert crop.centre_hit_rate(table) == pytest.approx(3 / 4)

    funnel = crop.crop_funnel(frames, table).set_index("plane")
    assert funnel.loc["all", "kept_frames"] == 5
    assert funnel.loc["all", "no_nerve_found"] == 2 and funnel.loc["all", "crops"] == 3
    assert funnel.loc["all", "no_nerve_found_true_empty"] == 1 and funnel.loc["all", "crops_true_empty"] == 0
    assert funnel.loc["transverse", "crops"] + funnel.loc["longitudinal", "crops"] == 3

    # CSA per grade: a transverse frame of each found grade, means equal the single values
    by_grade = crop.csa_by_grade(table).set_index("grade")
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
