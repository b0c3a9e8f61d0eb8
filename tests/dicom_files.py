"""Test helper: tiny DICOM cine files written with pydicom (shared by the video and validate tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_dicom(path: Path, frames: np.ndarray, *, pixel_data: bool = True, photometric: str | None = None,
                pixel_bytes: bytes | None = None, **tags) -> Path:
    """A minimal multi-frame ultrasound DICOM file with a patient name that must never leak.

    ``frames`` (N, rows, cols[, 3]) sets the size; ``photometric`` overrides the interpretation
    (default MONOCHROME2 or RGB) and ``pixel_bytes`` the stored pixel data (e.g. YBR_FULL_422's
    sub-sampled bytes, which are not ``frames.tobytes()``).
    """
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, UltrasoundMultiFrameImageStorage, generate_uid
    from pydicom import Dataset

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UltrasoundMultiFrameImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = UltrasoundMultiFrameImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "SECRET-4711"
    ds.PatientBirthDate = "19700101"
    ds.Modality = "US"
    n, rows, cols = frames.shape[:3]
    ds.NumberOfFrames = n
    ds.Rows, ds.Columns = rows, cols
    color = frames.ndim == 4
    ds.SamplesPerPixel = 3 if color else 1
    ds.PhotometricInterpretation = photometric or ("RGB" if color else "MONOCHROME2")
    if color:
        ds.PlanarConfiguration = 0
    bits = 16 if frames.dtype == np.uint16 else 8
    ds.BitsAllocated = bits
    ds.BitsStored = tags.pop("BitsStored", bits)
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    for key, value in tags.items():
        setattr(ds, key, value)
    if pixel_data:
        ds.PixelData = pixel_bytes if pixel_bytes is not None else np.ascontiguousarray(frames).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path
