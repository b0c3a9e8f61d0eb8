"""Profiles (smoke / default / paper) are data: YAML files injected as papermill parameters.

``profiles/<name>.yaml`` has a ``common`` block (parameters every notebook may take, e.g. SEED)
and a ``stages`` block keyed by stage ("00" ... "06"). Notebooks never branch on a profile's name;
they only see parameter values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ctslib.errors import InputError
from ctslib.paths import PROFILES_DIR, STAGES


@dataclass(frozen=True)
class Profile:
    """A named set of parameters for every stage."""

    name: str
    description: str
    common: dict[str, Any] = field(default_factory=dict)
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)

    def parameters(self, stage: str) -> dict[str, Any]:
        """Parameters of ``stage``: the common block overridden by the stage's own block."""
        return {**self.common, **self.stages.get(stage, {})}


def available_profiles() -> list[str]:
    """Names of the profiles shipped in ``profiles/``."""
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def load_profile(name_or_path: str | Path) -> Profile:
    """Load a shipped profile by name, or any profile YAML by path."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = PROFILES_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        raise InputError(f"no such profile; shipped profiles: {', '.join(available_profiles())}", file=path)
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    stages = {str(k).zfill(2): dict(v or {}) for k, v in (raw.get("stages") or {}).items()}
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        raise InputError(f"unknown stage keys {unknown}; known: {sorted(STAGES)}", file=path, column="stages")
    for block, params in [("common", raw.get("common") or {}), *stages.items()]:
        bad = [k for k in params if not str(k).isupper()]
        if bad:
            raise InputError(f"parameter names must be UPPER_CASE, got {bad}", file=path, column=str(block))
    return Profile(
        name=raw.get("name", path.stem),
        description=raw.get("description", ""),
        common=dict(raw.get("common") or {}),
        stages=stages,
    )
