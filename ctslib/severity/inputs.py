"""Nerve crops as model input: reading stage 03's ``crops.csv`` and the tf.data pipelines.

Every crop PNG is decoded once, scaled to [0, 1] float32 and cached in memory; the training set
is then reshuffled every epoch (seeded), batched, augmented and prefetched so the two CPU cores
spend their time in the model, not in file reading.

The pipelines use fixed parallelism and switch tf.data's autotuner off
(``ctslib.common.parallel.steady``, which says why).

Augmentation is the paper's only: small random rotations and horizontal flips, applied to the
training set only. Both are drawn per image from stateless random ops whose seeds come from a
seeded ``tf.data.Dataset.random`` stream, so a run is repeatable under op determinism and every
epoch sees different draws.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ctslib import GRADES, PLANES
from ctslib.common.errors import InputError, StageError
from ctslib.common.handoff import as_bool
from ctslib.common.parallel import steady

CROP_COLUMNS: tuple[str, ...] = (
    "frame_id", "wrist_id", "participant_id", "plane", "grade_index", "nerve_found", "crop_path",
)
"""Columns of stage 03's crops.csv that the model stages read."""

BORDER_MODE = 4  # cv2.BORDER_REFLECT_101
"""How a rotation fills the corners it uncovers: mirrored image content (no black corners)."""

DECODE_CALLS = min(os.cpu_count() or 1, 8)  # parallel PNG decodes (first epoch only: then cached)
AUGMENT_CALLS = 2  # batches augmented in parallel (a batch takes about 1 ms on one core)
PREFETCH_BATCHES = 2  # batches prepared ahead of the training step


# ----------------------------------------------------------------------------- crops.csv
def read_crops(crops_csv: str | Path, plane: str, work_dir: str | Path | None = None) -> pd.DataFrame:
    """The usable crops of one plane from stage 03's ``crops.csv``, with absolute ``crop_file`` paths.

    Rows without a crop (``nerve_found`` False, empty ``crop_path``: stage 03 found no nerve) are
    dropped. ``crop_path`` is relative to the run's work folder (``work_dir``, default: two levels
    above ``crops.csv``) unless absolute.

    Raises:
        InputError: a missing column, a bad grade index or a crop file that does not exist,
            naming the file, row and column.
        StageError: the plane has frames in crops.csv but not one crop (stage 03 found no nerve),
            so that the model stages never report it as a missing grade.
    """
    crops_csv = Path(crops_csv)
    if plane not in PLANES:
        raise ValueError(f"plane must be one of {PLANES}, got {plane!r}")
    if not crops_csv.exists():
        raise InputError("file not found (run notebook 03_nerve_cropping first)", file=crops_csv)
    df = pd.read_csv(crops_csv, dtype={"frame_id": str, "wrist_id": str, "participant_id": str,
                                       "plane": str, "crop_path": str}, keep_default_na=False)
    missing = [c for c in CROP_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"missing column(s) {missing}", file=crops_csv, column=missing[0])
    df.index = pd.RangeIndex(1, len(df) + 1)  # spreadsheet row numbers for messages
    df = df[df["plane"] == plane]
    grades = pd.to_numeric(df["grade_index"], errors="coerce")
    bad = ~grades.isin(range(len(GRADES)))
    if bad.any():
        row = int(df.index[bad.to_numpy()][0])
        raise InputError(f"grade_index must be 0..{len(GRADES) - 1}, got {df.loc[row, 'grade_index']!r}",
                         file=crops_csv, row=row, column="grade_index")
    df = df.assign(grade_index=grades.astype(int))
    has_crop = as_bool(df["nerve_found"]) & (df["crop_path"].str.strip() != "")
    if len(df) and not has_crop.any():
        raise StageError(
            f"{crops_csv}: stage 03 made no {plane} crop: none of the {len(df)} {plane} frames it was given has "
            "a nerve found (nerve_found is False in every row). This is not a missing grade: the segmenter found "
            "no nerve. See the crop funnel and segmentation metrics of 03_nerve_cropping (masks, a trained "
            "segmenter) and rerun from stage 03."
        )
    df = df[has_crop].copy()
    base = Path(work_dir) if work_dir is not None else crops_csv.parent.parent
    files = [Path(p) if Path(p).is_absolute() else base / p for p in df["crop_path"]]
    for row, file in zip(df.index, files):
        if not file.exists():
            raise InputError(f"crop file {file} does not exist", file=crops_csv, row=int(row), column="crop_path")
    df["crop_file"] = [str(f) for f in files]
    if df["frame_id"].duplicated().any():
        row = int(df.index[df["frame_id"].duplicated().to_numpy()][0])
        raise InputError("duplicate frame_id", file=crops_csv, row=row, column="frame_id")
    return df.reset_index(drop=True)


def read_crop_array(files: Sequence[str | Path], input_size: int) -> np.ndarray:
    """Crop PNGs as one float32 array (N, size, size, 1) in [0, 1] (for baselines and Grad-CAM).

    Uses the same decode-and-resize as the tf.data pipeline, so both see identical pixels.
    """
    import tensorflow as tf

    return np.stack([_decode(tf.constant(str(f)), input_size).numpy() for f in files]) if len(files) else (
        np.zeros((0, input_size, input_size, 1), np.float32))


# ----------------------------------------------------------------------------- tf.data
def _decode(path, input_size: int):
    """Read one 8-bit grayscale PNG -> (size, size, 1) float32 in [0, 1]; resize (area) if needed."""
    import tensorflow as tf

    image = tf.io.decode_png(tf.io.read_file(path), channels=1)
    image = tf.image.convert_image_dtype(image, tf.float32)  # uint8 / 255
    if input_size is not None:
        same = tf.logical_and(tf.shape(image)[0] == input_size, tf.shape(image)[1] == input_size)
        image = tf.cond(same, lambda: image,
                        lambda: tf.image.resize(image, (input_size, input_size), method="area"))
        image = tf.ensure_shape(image, (input_size, input_size, 1))
    return image


def rotate_images(images: np.ndarray, angles_rad: np.ndarray) -> np.ndarray:
    """Rotate each image (N, H, W, 1) about its centre by its angle (radians), bilinear, reflected borders.

    OpenCV's ``warpAffine`` does this about four times faster on a CPU than TensorFlow's
    ``ImageProjectiveTransformV3``; the angles are drawn in TensorFlow, so runs stay repeatable.
    """
    import cv2

    out = np.empty_like(images)
    height, width = images.shape[1:3]
    centre = ((width - 1) / 2.0, (height - 1) / 2.0)
    for i, angle in enumerate(np.degrees(np.asarray(angles_rad, dtype=np.float64))):
        matrix = cv2.getRotationMatrix2D(centre, float(angle), 1.0)
        out[i, :, :, 0] = cv2.warpAffine(images[i, :, :, 0], matrix, (width, height),
                                         flags=cv2.INTER_LINEAR, borderMode=BORDER_MODE)
    return out


def augment_batch(images, seed, *, rotation_deg: float, horizontal_flip: bool):
    """Randomly rotate (uniform in +-``rotation_deg``) and horizontally flip a batch (N, H, W, 1).

    ``seed`` is a shape-(2,) integer tensor; the draws are a pure function of it.
    """
    import tensorflow as tf

    n = tf.shape(images)[0]
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=2)
    if horizontal_flip:
        flip = tf.random.stateless_uniform((n,), seed=seeds[0]) < 0.5
        images = tf.where(flip[:, None, None, None], tf.reverse(images, axis=[2]), images)
    if rotation_deg and rotation_deg > 0:
        limit = math.radians(float(rotation_deg))
        angles = tf.random.stateless_uniform((n,), seed=seeds[1], minval=-limit, maxval=limit)
        rotated = tf.numpy_function(rotate_images, [images, angles], tf.float32, stateful=False)
        images = tf.ensure_shape(rotated, images.shape)
    return images


def make_dataset(
    files: Sequence[str | Path],
    labels: Sequence[int] | np.ndarray,
    *,
    input_size: int,
    batch_size: int,
    training: bool,
    seed: int,
    rotation_deg: float = 0.0,
    horizontal_flip: bool = False,
):
    """A batched ``tf.data.Dataset`` of (image, one-hot grade) from crop PNG files.

    Decode once and cache; for ``training`` also reshuffle every epoch (seeded) and augment
    (rotation + horizontal flip); always prefetch. Validation/prediction datasets keep file order.

    Args:
        files: crop PNG paths (8-bit grayscale).
        labels: grade index per file (0 normal ... 3 severe).
        input_size: model input side; crops of another size are resized (area interpolation).
        batch_size: images per batch (the paper: 30 transverse, 20 longitudinal).
        training: shuffle + augment (training set) or not (validation / prediction).
        seed: seeds the shuffle order and the augmentation draws.
        rotation_deg: maximum absolute rotation in degrees (0 = none).
        horizontal_flip: flip half of the images left-right.
    """
    import tensorflow as tf

    labels = np.asarray(labels, dtype=np.int64)
    if len(files) != len(labels):
        raise ValueError(f"{len(files)} files but {len(labels)} labels")
    onehot = np.eye(len(GRADES), dtype=np.float32)[labels] if len(labels) else np.zeros((0, len(GRADES)), np.float32)
    ds = tf.data.Dataset.from_tensor_slices(([str(f) for f in files], onehot))
    ds = ds.map(lambda f, y: (_decode(f, input_size), y), num_parallel_calls=DECODE_CALLS).cache()
    if training:
        ds = ds.shuffle(max(len(files), 1), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if training and ((rotation_deg and rotation_deg > 0) or horizontal_flip):
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip((ds, seeds)).map(
            lambda xy, s: (augment_batch(xy[0], s, rotation_deg=rotation_deg, horizontal_flip=horizontal_flip), xy[1]),
            num_parallel_calls=AUGMENT_CALLS,
        )
    return steady(ds.prefetch(PREFETCH_BATCHES))


# ----------------------------------------------------------------------------- toy data
def write_toy_crops(
    work_dir: str | Path,
    *,
    plane: str = "transverse",
    participants_per_grade: int = 3,
    frames_per_wrist: int = 6,
    crop_size: int = 32,
    seed: int = 0,
) -> Path:
    """Write a small, learnable crop set in stage 03's layout (for tests and benchmarks only).

    Each participant has one wrist of one grade; its crops show a bright ellipse whose size grows
    with the grade (a caricature of a swollen nerve) on speckle noise. Not a simulation of
    ultrasound: ``ctslib.synth`` makes the study's synthetic data.

    Returns:
        The ``crops.csv`` path (``<work_dir>/03_nerve_cropping/crops.csv``).
    """
    import cv2

    from ctslib.common.io import write_csv
    from ctslib.common.paths import RunPaths
    from ctslib.common.seed import rng

    paths = RunPaths(Path(work_dir), Path(work_dir) / "_report")
    paths.crops_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    yy, xx = np.mgrid[0:crop_size, 0:crop_size]
    centre = (crop_size - 1) / 2
    for grade_index, grade in enumerate(GRADES):
        for p in range(participants_per_grade):
            participant = f"P{grade_index * participants_per_grade + p + 1:03d}"
            wrist = f"{participant}_L"
            for k in range(frames_per_wrist):
                gen = rng(seed, wrist, plane, k)
                radius = crop_size * (0.12 + 0.07 * grade_index) * gen.uniform(0.9, 1.1)
                dx, dy = gen.uniform(-1.5, 1.5, size=2)
                inside = ((xx - centre - dx) / radius) ** 2 + ((yy - centre - dy) / (0.7 * radius)) ** 2 <= 1
                image = 0.25 + 0.1 * gen.standard_normal((crop_size, crop_size)) + 0.45 * inside
                png = (np.clip(image, 0, 1) * 255).astype(np.uint8)
                frame_id = f"{wrist}_{plane}_{k:04d}"
                file = paths.crops_dir / f"{frame_id}.png"
                cv2.imwrite(str(file), png)
                rows.append({
                    "frame_id": frame_id, "wrist_id": wrist, "participant_id": participant, "plane": plane,
                    "grade": grade, "grade_index": grade_index, "x0": 0, "y0": 0, "crop_size": crop_size,
                    "centre_x": centre, "centre_y": centre, "nerve_found": True, "csa_mm2": float(inside.sum()),
                    "crop_path": file.relative_to(paths.work).as_posix(),
                })
    return write_csv(pd.DataFrame(rows), paths.crops_csv)
