"""The one reader of ``DATA/acquisition.json`` (every stage, the validator and the report ask it).

``acquisition.json`` describes the scanner: where the container lacks them, the pixel spacing and
frame rate; the data source ("synthetic" or "real", which decides how reports word the results);
and, because burned-in text sits at the same place in every export of a scanner, optional
``text_bands`` to black out before any frame is saved. Per-video overrides win over the globals.

Rules (docs/pipeline.md): ``source`` is required and must be "synthetic" or "real" (any letter
case); ``pixel_spacing_mm`` is required ([row, col] or one number = isotropic) and must lie in
``PLAUSIBLE_SPACING_MM`` (a NOTE outside ``TYPICAL_SPACING_MM``); ``fps`` and ``probe``
are optional; unknown top-level keys are free metadata; unknown per-video keys are errors (a
misspelt override would otherwise be silently ignored).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ctslib.common.errors import InputError
from ctslib.common.paths import DataLayout, canonical_stem, data_layout

SOURCES: tuple[str, ...] = ("synthetic", "real")
"""Allowed values of ``source``."""

ACQUISITION_OVERRIDE_KEYS: tuple[str, ...] = ("pixel_spacing_mm", "fps", "text_bands")
"""Keys a per-video entry of ``videos`` may set."""

PLAUSIBLE_SPACING_MM: tuple[float, float] = (0.02, 0.5)
"""Pixel spacings (mm per pixel) outside this range are refused: wrist ultrasound with a small-parts
probe stores about 0.03-0.3 mm per pixel (a 20-50 mm depth over 150-1000 rows); 0.01 looks like a
value typed in cm. CSA and ``MIN_NERVE_AREA_MM2`` scale with the square of it."""

TYPICAL_SPACING_MM: tuple[float, float] = (0.03, 0.3)
"""Inside the plausible range but outside this one: accepted with a NOTE (``spacing_notes``)."""

TextBands = tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class VideoSettings:
    """Fallback acquisition settings of one video (after per-video overrides)."""

    pixel_spacing_mm: tuple[float, float]
    fps: float | None
    text_bands: TextBands = ()


@dataclass(frozen=True)
class Acquisition:
    """The validated content of ``acquisition.json``."""

    source: str
    probe: str
    pixel_spacing_mm: tuple[float, float]
    fps: float | None
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    text_bands: TextBands = ()

    @property
    def is_synthetic(self) -> bool:
        """True for generated data: results then validate the pipeline, not the clinical claim."""
        return self.source == "synthetic"

    def for_video(self, stem: str) -> VideoSettings:
        """Settings of the video ``stem``: the per-video override where given, else the global value."""
        override = self.overrides.get(canonical_stem(stem), {})
        return VideoSettings(
            pixel_spacing_mm=override.get("pixel_spacing_mm", self.pixel_spacing_mm),
            fps=override.get("fps", self.fps),
            text_bands=override.get("text_bands", self.text_bands),
        )


def _spacing(value: Any, *, file: Path | str | None, column: str) -> tuple[float, float]:
    """``[row, col]`` spacing in mm (a single number means isotropic), positive and finite."""
    values = [value, value] if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    if not isinstance(values, (list, tuple)) or len(values) != 2:
        raise InputError(f"must be [row_mm, col_mm] (two numbers), got {value!r}", file=file, column=column)
    try:
        out = (float(values[0]), float(values[1]))
    except (TypeError, ValueError):
        raise InputError(f"must be two numbers, got {value!r}", file=file, column=column) from None
    if not all(math.isfinite(v) and v > 0 for v in out):
        raise InputError(f"spacings must be positive, got {value!r}", file=file, column=column)
    low, high = PLAUSIBLE_SPACING_MM
    odd = [v for v in out if not low <= v <= high]
    if odd:
        raise InputError(f"implausible pixel spacing {odd[0]:g} mm (wrist ultrasound: plausible {low:g}-{high:g} mm per "
                         f"pixel, typically {TYPICAL_SPACING_MM[0]:g}-{TYPICAL_SPACING_MM[1]:g}); check the unit "
                         "(mm, not cm or µm)", file=file, column=column)
    return out


def spacing_notes(acquisition: "Acquisition") -> list[tuple[str, str]]:
    """``(column, note)`` for every spacing that is plausible but outside ``TYPICAL_SPACING_MM`` (near the edge)."""
    low, high = TYPICAL_SPACING_MM
    entries = [("pixel_spacing_mm", acquisition.pixel_spacing_mm)]
    entries += [(f"videos.{stem}.pixel_spacing_mm", o["pixel_spacing_mm"]) for stem, o in acquisition.overrides.items()
                if "pixel_spacing_mm" in o]
    return [(column, f"pixel spacing {min(v) if min(v) < low else max(v):g} mm is unusual for wrist ultrasound "
                     f"(typically {low:g}-{high:g} mm per pixel); accepted: check the unit")
            for column, v in entries if min(v) < low or max(v) > high]


def _fps(value: Any, *, file: Path | str | None, column: str) -> float | None:
    """A positive frame rate, or None when the value is null."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise InputError(f"must be a positive number of frames per second or null, got {value!r}", file=file, column=column)
    return float(value)


def parse_text_bands(value: Any, *, file: Path | str | None = None, column: str = "text_bands") -> TextBands:
    """``[[top, bottom], ...]`` height fractions with ``0 <= top < bottom <= 1`` (``[]`` = none)."""
    if value is None:
        return ()
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise InputError(f"must be a list of [top, bottom] height fractions, got {value!r}", file=file, column=column)
    bands = []
    for band in value:
        if not isinstance(band, Sequence) or isinstance(band, str) or len(band) != 2:
            raise InputError(f"each band is [top, bottom] (two fractions of the height), got {band!r}", file=file, column=column)
        try:
            top, bottom = float(band[0]), float(band[1])
        except (TypeError, ValueError):
            raise InputError(f"each band is [top, bottom] (two numbers), got {band!r}", file=file, column=column) from None
        if not 0.0 <= top < bottom <= 1.0:
            raise InputError(f"a band needs 0 <= top < bottom <= 1, got {band!r}", file=file, column=column)
        bands.append((top, bottom))
    return tuple(bands)


def parse_acquisition(raw: Any, *, file: Path | str | None = None) -> Acquisition:
    """Validate the parsed JSON of ``acquisition.json`` (pure; see ``read_acquisition``)."""
    if not isinstance(raw, Mapping):
        raise InputError("must be a JSON object", file=file)
    source = raw.get("source")
    if not isinstance(source, str) or not source.strip():
        raise InputError('needs "source" (e.g. "real" or "synthetic")', file=file, column="source")
    if source.strip().lower() not in SOURCES:
        raise InputError(f"'source' must be 'synthetic' or 'real', got {source!r}", file=file, column="source")
    if "pixel_spacing_mm" not in raw:
        raise InputError('needs "pixel_spacing_mm": [row_mm, col_mm]', file=file, column="pixel_spacing_mm")
    spacing = _spacing(raw["pixel_spacing_mm"], file=file, column="pixel_spacing_mm")
    fps = _fps(raw.get("fps"), file=file, column="fps")
    probe = raw.get("probe") or ""
    if not isinstance(probe, str):
        raise InputError(f"must be text, got {probe!r}", file=file, column="probe")
    text_bands = parse_text_bands(raw.get("text_bands"), file=file)
    videos = raw.get("videos") or {}
    if not isinstance(videos, Mapping):
        raise InputError("must be an object {video stem: {...}}", file=file, column="videos")
    overrides: dict[str, dict[str, Any]] = {}
    for stem, entry in videos.items():
        column = f"videos.{stem}"
        if not isinstance(entry, Mapping):
            raise InputError("must be an object", file=file, column=column)
        unknown = sorted(set(entry) - set(ACQUISITION_OVERRIDE_KEYS))
        if unknown:
            raise InputError(f"unknown keys {unknown}; allowed: {list(ACQUISITION_OVERRIDE_KEYS)}", file=file, column=column)
        parsed: dict[str, Any] = {}
        if "pixel_spacing_mm" in entry:
            parsed["pixel_spacing_mm"] = _spacing(entry["pixel_spacing_mm"], file=file, column=f"{column}.pixel_spacing_mm")
        if "fps" in entry:
            parsed["fps"] = _fps(entry["fps"], file=file, column=f"{column}.fps")
        if "text_bands" in entry:
            parsed["text_bands"] = parse_text_bands(entry["text_bands"], file=file, column=f"{column}.text_bands")
        overrides[canonical_stem(str(stem))] = parsed
    return Acquisition(
        source=source.strip().lower(), probe=probe, pixel_spacing_mm=spacing, fps=fps, overrides=overrides, text_bands=text_bands
    )


def read_acquisition(layout: DataLayout | str | Path) -> Acquisition:
    """Read and validate ``DATA/acquisition.json`` (InputError naming the file when it is bad).

    ``layout``: the data folder's ``DataLayout`` or its path.
    """
    if not isinstance(layout, DataLayout):
        layout = data_layout(layout)
    path = layout.acquisition_json
    if not path.exists():
        raise InputError("missing: every data folder needs acquisition.json (see docs/pipeline.md)", file=path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise InputError(f"is not valid JSON ({err.msg}, line {err.lineno})", file=path) from None
    except UnicodeDecodeError:
        raise InputError("is not UTF-8 text", file=path) from None
    return parse_acquisition(raw, file=path)
