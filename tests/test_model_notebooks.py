"""Notebooks 04 and 05 run one shared flow (ctslib.severity.stage): their code cannot drift apart.

Only the parameters cell may differ (the two models' published numbers); every other code cell
must be the same once the plane's name is written as ``<plane>``.
"""

from __future__ import annotations

import json
import re

import pytest

from ctslib.common.paths import NOTEBOOKS_DIR, STAGES

MODEL_NOTEBOOKS = {"transverse": STAGES["04"], "longitudinal": STAGES["05"]}


def code_cells(name: str) -> list[str]:
    cells = json.loads((NOTEBOOKS_DIR / name).read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def normalised(source: str, plane: str) -> str:
    return re.sub(rf"\b{plane}\b", "<plane>", source, flags=re.IGNORECASE)


def parameter_names(source: str) -> list[str]:
    return re.findall(r"^([A-Z_][A-Z0-9_]*)\s*=", source, flags=re.MULTILINE)


def test_model_notebooks_share_every_code_cell_after_the_parameters():
    transverse, longitudinal = (code_cells(MODEL_NOTEBOOKS[p]) for p in ("transverse", "longitudinal"))
    assert len(transverse) == len(longitudinal) > 1
    for i, (a, b) in enumerate(zip(transverse[1:], longitudinal[1:]), start=2):
        assert normalised(a, "transverse") == normalised(b, "longitudinal"), f"code cell {i} differs between 04 and 05"
    assert 'PLANE = "transverse"' in transverse[1] and 'PLANE = "longitudinal"' in longitudinal[1]


def test_model_notebooks_declare_the_same_parameters_in_the_same_order():
    transverse, longitudinal = (code_cells(MODEL_NOTEBOOKS[p])[0] for p in ("transverse", "longitudinal"))
    assert parameter_names(transverse) == parameter_names(longitudinal)
    assert {"WORKERS", "GPUS_PER_TASK", "FAST_PATH"} <= set(parameter_names(transverse))


@pytest.mark.parametrize("plane", ["transverse", "longitudinal"])
def test_normalising_finds_a_changed_cell(plane):
    """The comparison above is not vacuous: a cell edited in one notebook only is caught."""
    cells = code_cells(MODEL_NOTEBOOKS[plane])
    edited = cells[2].replace("counts", "counts.T")
    assert edited != cells[2] and normalised(edited, plane) != normalised(cells[2], plane)
