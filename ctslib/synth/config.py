"""The one frozen configuration of the synthetic dataset (stored beside the data to allow reuse)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

GENERATOR_VERSION = "1"
"""Bumped whenever the generator's output changes for the same configuration (forces regeneration)."""

BAD_REASONS: tuple[str, ...] = ("blur", "dropout", "misaligned", "frozen")
"""Kinds of bad frames: motion blur, probe lifted (contact lost), plane off the nerve, frozen display."""


@dataclass(frozen=True)
class SynthConfig:
    """Everything that decides the synthetic dataset; equal configs give byte-identical data.

    Attributes:
        seed: seeds every random step (cohort, anatomy, speckle, probe motion, bad segments).
        n_participants: people in the cohort (one or two wrists each).
        grade_counts: wrists per grade (normal, mild, moderate, severe); the paper's 30/34/13/17.
        duration_s: length of every video in seconds.
        source_fps: frame rate of the stored videos (pipeline extraction decimates it to 5 fps).
        frame_size: stored frames are ``frame_size`` x ``frame_size`` pixels.
        depth_mm: imaging depth over the frame height; pixel spacing = depth_mm / frame_size (square).
        bad_share: expected share of bad frames (blur, dropout, misaligned, frozen); the study's QC
            rejected 1 - 2518/11895 = 0.79 of the extracted frames.
        bad_mix: relative frequency of each bad kind, in ``BAD_REASONS`` order.
        csa_mean_mm2: mean nerve cross-sectional area at the carpal tunnel inlet per grade.
        csa_sd_mm2: spread of that area per grade (adjacent grades overlap on purpose).
        workers: processes rendering videos in parallel (results do not depend on it).
        probe: probe description written to acquisition.json.
    """

    seed: int = 2026
    n_participants: int = 50
    grade_counts: tuple[int, int, int, int] = (30, 34, 13, 17)
    duration_s: float = 12.6
    source_fps: float = 10.0
    frame_size: int = 256
    depth_mm: float = 24.0
    bad_share: float = 0.79
    bad_mix: tuple[float, float, float, float] = (0.3, 0.25, 0.3, 0.15)
    csa_mean_mm2: tuple[float, float, float, float] = (9.0, 12.0, 15.0, 19.0)
    csa_sd_mm2: tuple[float, float, float, float] = (1.3, 2.0, 2.6, 3.4)
    workers: int = 2
    probe: str = "synthetic linear 12 MHz (GE Vscan Air L3-12-like)"

    def __post_init__(self) -> None:
        for name in ("grade_counts", "bad_mix", "csa_mean_mm2", "csa_sd_mm2"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if len(self.grade_counts) != 4 or min(self.grade_counts) < 0:
            raise ValueError(f"grade_counts needs 4 non-negative counts, got {self.grade_counts}")
        n_wrists = sum(self.grade_counts)
        if not (self.n_participants <= n_wrists <= 2 * self.n_participants):
            raise ValueError(f"{n_wrists} wrists cannot come from {self.n_participants} participants (1-2 each)")
        if not 0.0 <= self.bad_share < 1.0:
            raise ValueError(f"bad_share must be in [0, 1), got {self.bad_share}")
        if self.source_fps <= 0 or self.duration_s <= 0:
            raise ValueError("source_fps and duration_s must be positive")
        if self.frame_size < 64:
            raise ValueError(f"frame_size must be at least 64 pixels, got {self.frame_size}")
        if len(self.bad_mix) != len(BAD_REASONS) or min(self.bad_mix) < 0 or sum(self.bad_mix) <= 0:
            raise ValueError(f"bad_mix needs {len(BAD_REASONS)} non-negative weights, got {self.bad_mix}")

    @property
    def pixel_spacing_mm(self) -> float:
        """Row and column spacing of the stored frames (square pixels)."""
        return self.depth_mm / self.frame_size

    @property
    def n_frames(self) -> int:
        """Source frames per video."""
        return int(round(self.duration_s * self.source_fps))

    @property
    def n_wrists(self) -> int:
        return int(sum(self.grade_counts))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form, with the generator version (what ``synth_config.json`` stores)."""
        data = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}
        data.pop("workers")  # how many processes rendered the data does not change the data
        data["generator_version"] = GENERATOR_VERSION
        return data

    @classmethod
    def from_parameters(cls, **params: Any) -> "SynthConfig":
        """Build from notebook-style UPPER_CASE parameters (e.g. ``N_PARTICIPANTS=4``); unknown keys fail."""
        names = {f.name for f in fields(cls)}
        kwargs = {}
        for key, value in params.items():
            name = key.lower()
            if name not in names:
                raise ValueError(f"unknown synthetic-data parameter {key}; known: {sorted(n.upper() for n in names)}")
            kwargs[name] = value
        return cls(**kwargs)
