"""DICOM colour encodings scanners write: each is read and converted to the same grey a viewer shows.

Each test writes a tiny cine in the test (``dicom_files.write_dicom``) from known RGB pictures and
checks the extracted grey against the BT.601 luma of those pictures.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ctslib.common.errors import InputError
from ctslib.data.acquisition import VideoSettings
from ctslib.data.video import probe_video
from ctslib.frames.prepare import extract_video
from dicom_files import write_dicom

SETTINGS = VideoSettings(pixel_spacing_mm=(0.1, 0.1), fps=None)
N, ROWS, COLS = 3, 16, 24


def rgb_frames(seed: int = 0) -> np.ndarray:
    """Smooth colourful frames (N, ROWS, COLS, 3), different per frame."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:ROWS, :COLS]
    frames = []
    for i in range(N):
        r = 40 + 8 * xx + 10 * i
        g = 30 + 9 * yy + rng.integers(0, 20)
        b = 200 - 6 * xx
        frames.append(np.stack([r, g, b], axis=-1))
    return np.clip(np.stack(frames), 0, 255).astype(np.uint8)


def luma(rgb: np.ndarray) -> np.ndarray:
    return np.stack([cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in rgb])


def extracted(path) -> np.ndarray:
    header = probe_video(path, SETTINGS)
    return extract_video(header, target_fps=10, frame_size=ROWS).images, header


def test_rgb_dicom_is_read_as_luma(tmp_path):
    frames = rgb_frames()
    path = write_dicom(tmp_path / "rgb.dcm", frames, CineRate=10)
    images, header = extracted(path)
    assert header.photometric == "RGB"
    # frame_size == ROWS but COLS differ: compare after the same resize
    expected = np.stack([cv2.resize(f, (ROWS, ROWS), interpolation=cv2.INTER_AREA) for f in luma(frames)])
    assert np.abs(images.astype(int) - expected).max() <= 1


def test_ybr_full_dicom_is_converted_to_rgb_then_grey(tmp_path):
    from pydicom.pixels import convert_color_space

    frames = rgb_frames(1)
    ybr = np.stack([convert_color_space(f, "RGB", "YBR_FULL") for f in frames])
    path = write_dicom(tmp_path / "ybr.dcm", ybr, photometric="YBR_FULL", CineRate=10)
    images, header = extracted(path)
    assert header.photometric == "YBR_FULL"
    expected = np.stack([cv2.resize(f, (ROWS, ROWS), interpolation=cv2.INTER_AREA) for f in luma(frames)])
    assert np.abs(images.astype(int) - expected).max() <= 2  # YBR round trip: 1-2 grey levels


def test_ybr_full_422_dicom_is_upsampled_converted_and_grey(tmp_path):
    from pydicom.pixels import convert_color_space

    frames = rgb_frames(2)
    ybr = np.stack([convert_color_space(f, "RGB", "YBR_FULL") for f in frames]).astype(np.int32)
    # native 4:2:2: per pair of pixels Y1 Y2 Cb Cr, chroma averaged over the pair
    y = ybr[..., 0].reshape(N, ROWS, COLS // 2, 2)
    cb = ybr[..., 1].reshape(N, ROWS, COLS // 2, 2).mean(axis=-1).round()
    cr = ybr[..., 2].reshape(N, ROWS, COLS // 2, 2).mean(axis=-1).round()
    packed = np.stack([y[..., 0], y[..., 1], cb, cr], axis=-1).astype(np.uint8)
    path = write_dicom(tmp_path / "ybr422.dcm", frames, photometric="YBR_FULL_422", pixel_bytes=packed.tobytes(), CineRate=10)
    images, header = extracted(path)
    assert header.photometric == "YBR_FULL_422"
    expected = np.stack([cv2.resize(f, (ROWS, ROWS), interpolation=cv2.INTER_AREA) for f in luma(frames)])
    assert np.abs(images.astype(int) - expected).max() <= 3  # luma is kept per pixel; chroma shared by 2


def test_palette_colour_dicom_applies_the_palette(tmp_path):
    indices = np.stack([(np.add.outer(np.arange(ROWS), np.arange(COLS)) * (7 + i)) % 256 for i in range(N)]).astype(np.uint8)
    ramp = np.arange(256)
    palette = np.stack([ramp, 255 - ramp, (ramp * 3) % 256], axis=-1).astype(np.uint8)  # a non-grey palette
    lut16 = {c: (palette[:, k].astype(np.uint16) * 257).tobytes() for k, c in enumerate(("Red", "Green", "Blue"))}
    tags = {f"{c}PaletteColorLookupTableDescriptor": [256, 0, 16] for c in lut16}
    tags.update({f"{c}PaletteColorLookupTableData": data for c, data in lut16.items()})
    path = write_dicom(tmp_path / "palette.dcm", indices, photometric="PALETTE COLOR", CineRate=10, **tags)
    images, header = extracted(path)
    assert header.photometric == "PALETTE COLOR" and header.palette.shape == (256, 3)
    pictures = palette[indices]
    expected = np.stack([cv2.resize(f, (ROWS, ROWS), interpolation=cv2.INTER_AREA) for f in luma(pictures)])
    assert np.abs(images.astype(int) - expected).max() <= 1
    # and not the raw indices read as grey
    raw = np.stack([cv2.resize(f, (ROWS, ROWS), interpolation=cv2.INTER_AREA) for f in indices])
    assert np.abs(images.astype(int) - raw).mean() > 20


def test_palette_colour_without_a_palette_is_refused_naming_the_file(tmp_path):
    indices = np.zeros((N, ROWS, COLS), np.uint8)
    path = write_dicom(tmp_path / "S1_L_transverse.dcm", indices, photometric="PALETTE COLOR", CineRate=10)
    with pytest.raises(InputError, match=r"S1_L_transverse\.dcm.*palette"):
        probe_video(path, SETTINGS)


def test_unknown_photometric_is_refused_naming_what_is_readable(tmp_path):
    path = write_dicom(tmp_path / "v.dcm", np.zeros((N, ROWS, COLS), np.uint8), photometric="HSV", CineRate=10)
    with pytest.raises(InputError, match=r"unsupported PhotometricInterpretation 'HSV'.*PALETTE COLOR"):
        probe_video(path, SETTINGS)
