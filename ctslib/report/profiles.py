"""Profiles (smoke / default / paper) are data: YAML files injected as papermill parameters.

``profiles/<name>.yaml`` has a ``common`` block (parameters every notebook may take, e.g. SEED)
and a ``stages`` block keyed by stage ("00" ... "06"). ``recipe: paper`` gives the model stages
(04, 05) the paper's epochs, batch sizes and dropout from ``ctslib.severity.recipe`` (the one place
they are written) under whatever the stage block sets itself. Notebooks never branch on a profile's
name; they only see parameter values.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from ctslib.common.errors import InputError
from ctslib.common.paths import MODEL_STAGES, PROFILES_DIR, STAGES
from ctslib.severity.recipe import PAPER_RECIPE


RUN_OPTIONS: dict[str, str] = {"DATA_DIR": "--data", "WORK_DIR": "--work", "REPORT_DIR": "--out",
                               "SKIP_BAD_INPUTS": "--skip-bad-inputs"}
"""Parameters run_all injects from its own options (never through --set)."""


def parse_overrides(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``["NAME=VALUE", ...]`` from ``run_all.py --set`` as ``{NAME: value}``, each VALUE parsed as YAML.

    ``EPOCHS=5`` gives 5, ``TEXT_BANDS=[[0, 0.08]]`` a list, ``OVERLAY_MASK=true`` True,
    ``QC_DISABLE=[misaligned]`` ``["misaligned"]``. NAME must be UPPER_CASE (notebook parameters are).
    """
    out: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise InputError(f"--set {item!r}: expected NAME=VALUE, e.g. --set EPOCHS=5")
        if not name.isupper() or not name.replace("_", "").isalnum():
            raise InputError(f"--set {item!r}: parameter names are UPPER_CASE, e.g. TEXT_BANDS")
        try:
            out[name] = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError as err:
            raise InputError(f"--set {name}: value {text!r} is not valid YAML ({err.__class__.__name__})") from None
    return out


@dataclass(frozen=True)
class Profile:
    """A named set of parameters for every stage."""

    name: str
    description: str
    common: dict[str, Any] = field(default_factory=dict)
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)

    overrides: dict[str, Any] = field(default_factory=dict)
    declared: dict[str, frozenset[str]] = field(default_factory=dict)

    def parameters(self, stage: str) -> dict[str, Any]:
        """Parameters of ``stage``: the common block, the stage's own block, then ``--set`` overrides
        of the parameters the stage's notebook declares."""
        params = {**self.common, **self.stages.get(stage, {})}
        params.update({k: v for k, v in self.overrides.items() if k in self.declared.get(stage, frozenset())})
        return params

    def with_overrides(self, overrides: dict[str, Any], declared: dict[str, frozenset[str]]) -> "Profile":
        """This profile with ``overrides`` applied to every stage whose notebook declares the name.

        Args:
            overrides: ``{NAME: value}`` (``parse_overrides``).
            declared: stage key -> parameter names its notebook's ``parameters`` cell declares.

        Raises:
            InputError: a name no stage declares (a typo would otherwise be ignored), or one of
                the names run_all sets itself (``DATA_DIR``, ``WORK_DIR``, ``REPORT_DIR``).
        """
        for name in overrides:
            if name in RUN_OPTIONS:
                raise InputError(f"--set {name}: set by run_all itself; use {RUN_OPTIONS[name]}")
            if not any(name in names for names in declared.values()):
                raise InputError(f"--set {name}: no stage declares a parameter {name}; "
                                 "see the parameters cell of notebooks/NN_*.ipynb")
        return replace(self, overrides={**self.overrides, **overrides}, declared=dict(declared))


RECIPES: tuple[str, ...] = ("paper",)
"""Values of a profile's ``recipe`` key."""


def with_recipe(stages: dict[str, dict[str, Any]], recipe: str | None, *, file: Path) -> dict[str, dict[str, Any]]:
    """``stages`` with the paper's recipe under the model stages' own values when ``recipe`` is "paper".

    Raises:
        InputError: ``recipe`` is neither None nor one of ``RECIPES``.
    """
    if recipe is None:
        return stages
    if recipe not in RECIPES:
        raise InputError(f"recipe must be one of {list(RECIPES)}, got {recipe!r}", file=file, column="recipe")
    out = dict(stages)
    for plane, key in MODEL_STAGES.items():
        out[key] = {**PAPER_RECIPE[plane].parameters(), **stages.get(key, {})}
    return out


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
        stages=with_recipe(stages, raw.get("recipe"), file=path),
    )
