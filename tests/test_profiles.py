"""Profiles are data; notebooks' parameter cells carry the default profile's values."""

from __future__ import annotations

import ast
import json

import pytest

from ctslib.common.errors import InputError
from ctslib.common.paths import NOTEBOOKS_DIR, STAGES
from ctslib.report.profiles import available_profiles, load_profile


def parameters_cell(notebook: str) -> dict[str, object]:
    """Literal values of the ``parameters``-tagged cell of a notebook."""
    nb = json.loads((NOTEBOOKS_DIR / notebook).read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    tree = ast.parse("".join(cell["source"]))
    values = {}
    for node in tree.body:
        assert isinstance(node, ast.Assign), f"{notebook}: parameters cell holds only assignments"
        name = node.targets[0].id  # type: ignore[attr-defined]
        values[name] = ast.literal_eval(node.value)
    return values


def test_shipped_profiles_load() -> None:
    assert {"smoke", "default", "paper"} <= set(available_profiles())
    for name in available_profiles():
        profile = load_profile(name)
        assert set(profile.stages) <= set(STAGES)


@pytest.mark.parametrize("key", sorted(STAGES))
def test_notebook_defaults_are_the_default_profile(key: str) -> None:
    notebook = STAGES[key]
    if not (NOTEBOOKS_DIR / notebook).exists():
        pytest.fail(f"missing notebook {notebook}")
    defaults = parameters_cell(notebook)
    for name in ("DATA_DIR", "WORK_DIR", "REPORT_DIR", "SEED"):
        assert name in defaults, f"{notebook} lacks parameter {name}"
    profile = load_profile("default")
    expected = profile.parameters(key)
    for name, value in expected.items():
        if name in profile.common and name not in defaults:
            continue
        assert name in defaults, f"default profile sets {name} for {key}, {notebook} does not declare it"
        assert defaults[name] == value, f"{notebook}: {name} = {defaults[name]!r}, default profile says {value!r}"


@pytest.mark.parametrize("name", ["smoke", "paper"])
def test_other_profiles_only_set_declared_parameters(name: str) -> None:
    profile = load_profile(name)
    for key in STAGES:
        declared = parameters_cell(STAGES[key])
        undeclared = [p for p in profile.stages.get(key, {}) if p not in declared]
        assert not undeclared, f"profile {name} sets {undeclared} for stage {key}, undeclared in the notebook"


def test_bad_profile_is_refused(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("common: {seed: 1}\n")
    with pytest.raises(InputError, match="UPPER_CASE"):
        load_profile(bad)
    with pytest.raises(InputError, match="no such profile"):
        load_profile("no-such-profile")


@pytest.mark.parametrize("key", sorted(STAGES))
def test_papermill_reads_every_parameter(key: str) -> None:
    """papermill silently ignores a parameter line it cannot parse (e.g. '=' in a comment)."""
    import papermill as pm

    declared = set(pm.inspect_notebook(str(NOTEBOOKS_DIR / STAGES[key])))
    assert declared == set(parameters_cell(STAGES[key]))


def test_recipe_paper_gives_the_model_stages_the_published_recipe_under_their_own_values(tmp_path) -> None:
    from ctslib.severity.recipe import PAPER_RECIPE

    path = tmp_path / "mine.yaml"
    path.write_text('recipe: paper\nstages:\n  "04": {EPOCHS: 7, INPUT_SIZE: 64}\n')
    profile = load_profile(path)
    transverse, longitudinal = PAPER_RECIPE["transverse"], PAPER_RECIPE["longitudinal"]
    assert profile.parameters("04") == {"EPOCHS": 7, "BATCH_SIZE": transverse.batch_size,
                                        "DROPOUT": transverse.dropout, "INPUT_SIZE": 64}
    assert profile.parameters("05") == longitudinal.parameters()
    assert load_profile("paper").parameters("05")["EPOCHS"] == longitudinal.epochs
    path.write_text("recipe: published\n")
    with pytest.raises(InputError, match="recipe must be one of") as err:
        load_profile(path)
    assert err.value.column == "recipe"
