"""One reader per input and one schema per hand-off; run options that never leak the data path.

* ``acquisition.json`` has one reader (``ctslib.data.acquisition``); a caption's source lookup never crashes.
* Hand-off contracts (``ctslib.common.handoff``): one flag parser, one atomic PNG writer.
* Stage 04/05's reader of ``crops.csv`` says "stage 03 made no crop", never "a grade is missing".
* ``run_all.py --set NAME=VALUE`` overrides a parameter in every stage that declares it.
* ``DATA_DIR`` reaches notebooks as a link inside the work folder; the manifest records the data
  folder's name and hash, never its path.
"""

from __future__ import annotations

import json
import re
import os

import cv2
import numpy as np
import pandas as pd
import pytest

from ctslib.common import handoff
from ctslib.common.errors import InputError, StageError


# -- acquisition.json ------------------------------------------------------------------------------


def test_every_reader_of_acquisition_json_is_the_one_reader(tmp_path):
    from ctslib.common.paths import RunPaths
    from ctslib.data.acquisition import read_acquisition
    from ctslib.report.index import build_manifest

    def manifest_source() -> str:
        return build_manifest(profile="smoke", parameters={}, data_dir=tmp_path, data_hash=None, results=[],
                              paths=RunPaths(tmp_path / "w", tmp_path / "r"), started=0.0,
                              git={"commit": None, "dirty": False})["data"]["source"]

    (tmp_path / "acquisition.json").write_text(json.dumps({"source": "Synthetic", "pixel_spacing_mm": [0.1, 0.1]}))
    assert read_acquisition(tmp_path).source == "synthetic" == manifest_source()
    (tmp_path / "acquisition.json").write_text(json.dumps({"source": "simulated", "pixel_spacing_mm": [0.1, 0.1]}))
    with pytest.raises(InputError, match="'source' must be 'synthetic' or 'real'") as err:
        read_acquisition(tmp_path)
    assert err.value.column == "source"
    assert manifest_source() == "unknown"  # the manifest is written even when a stage stopped on the file
    (tmp_path / "acquisition.json").unlink()
    assert manifest_source() == "unknown"


def test_acquisition_json_is_opened_by_its_reader_only():
    """Every stage, the validator and the report call ``read_acquisition``; no module reads the file itself
    or hands the reader on under another name."""
    from ctslib.common.paths import PROJECT_ROOT

    library = PROJECT_ROOT / "ctslib"
    sources = {p.relative_to(PROJECT_ROOT).as_posix(): p.read_text(encoding="utf-8") for p in library.rglob("*.py")}
    notebooks = {p.relative_to(PROJECT_ROOT).as_posix(): "".join(
        "".join(c["source"]) for c in json.loads(p.read_text(encoding="utf-8"))["cells"] if c["cell_type"] == "code")
        for p in (PROJECT_ROOT / "notebooks").glob("*.ipynb")}
    touching = {name for name, text in {**sources, **notebooks}.items() if "acquisition_json" in text}
    # the reader; the validator, which names the file in its messages; the generator, which writes it
    assert touching - {"ctslib/common/paths.py"} == {"ctslib/data/acquisition.py", "ctslib/data/checks.py",
                                                     "ctslib/synth/dataset.py"}
    callers = {name for name, text in {**sources, **notebooks}.items() if "read_acquisition(" in text}
    assert {"ctslib/frames/stage.py", "ctslib/severity/stage.py", "ctslib/report/index.py", "ctslib/data/checks.py",
            "ctslib/nerve/stage.py", "ctslib/evaluate/stage.py", "notebooks/01_cohort_ncs_labelling.ipynb"} <= callers
    for name, text in {**sources, **notebooks}.items():  # no wrapper, no second name, no re-export
        if name != "ctslib/data/acquisition.py":
            assert "def read_acquisition" not in text and "read_acquisition as" not in text, name
            assert '"read_acquisition"' not in text and "source_of" not in text and "data_source(" not in text, name


@pytest.mark.parametrize("bands", ["top", [[0.2]], [[0.5, 0.1]], [[0, 2]]])
def test_bad_text_bands_in_acquisition_json_name_the_key(tmp_path, bands):
    from ctslib.data.acquisition import read_acquisition

    (tmp_path / "acquisition.json").write_text(json.dumps({"source": "real", "pixel_spacing_mm": 0.1, "text_bands": bands}))
    with pytest.raises(InputError) as err:
        read_acquisition(tmp_path)
    assert err.value.column == "text_bands" and "acquisition.json" in str(err.value)


# -- hand-off contracts ---------------------------------------------------------------------------


def test_prediction_columns_are_defined_once():
    from ctslib.common.paths import PROJECT_ROOT

    defining = sorted(p.relative_to(PROJECT_ROOT).as_posix() for p in (PROJECT_ROOT / "ctslib").rglob("*.py")
                      if re.search(r"^(PREDICTION_COLUMNS|PROB_COLUMNS)\b[^=]*=", p.read_text(encoding="utf-8"), re.M))
    assert defining == ["ctslib/common/handoff.py"]
    assert handoff.PREDICTION_COLUMNS[-4:] == ("p_normal", "p_mild", "p_moderate", "p_severe")


def test_one_flag_parser_reads_what_spreadsheets_write():
    values = pd.Series(["True", "true", "1", "1.0", " yes ", "False", "0", "0.0", "", "no"])
    assert handoff.as_bool(values).tolist() == [True] * 5 + [False] * 5


def test_write_png_is_atomic(tmp_path):
    image = np.arange(64, dtype=np.uint8).reshape(8, 8)
    handoff.write_png(tmp_path / "a.png", image)
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "a.png"), cv2.IMREAD_GRAYSCALE), image)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]  # no temporary left
    with pytest.raises(OSError):
        handoff.write_png(tmp_path / "d.png", np.zeros((0, 0), np.uint8))
    assert not (tmp_path / "d.png").exists()


def test_zero_crops_of_a_plane_point_at_stage_03_not_at_a_grade(tmp_path):
    from ctslib.severity.inputs import read_crops, write_toy_crops

    csv = write_toy_crops(tmp_path, plane="transverse", participants_per_grade=1, frames_per_wrist=2, crop_size=16)
    table = pd.read_csv(csv)
    table["nerve_found"], table["crop_path"] = False, ""
    table.to_csv(csv, index=False)
    with pytest.raises(StageError) as err:
        read_crops(csv, "transverse")
    message = str(err.value)
    assert f"none of the {len(table)} transverse frames" in message and "stage 03" in message
    assert "not a missing grade" in message
    assert read_crops(csv, "longitudinal").empty  # a plane without rows stays empty, as before


# -- run_all.py --set -----------------------------------------------------------------------------


def test_set_parses_yaml_values_and_applies_where_declared():
    from ctslib.report.profiles import load_profile, parse_overrides

    overrides = parse_overrides(["TEXT_BANDS=[[0, 0.08]]", "QC_DISABLE=[misaligned]", "OVERLAY_MASK=true", "EPOCHS=5"])
    assert overrides == {"TEXT_BANDS": [[0, 0.08]], "QC_DISABLE": ["misaligned"], "OVERLAY_MASK": True, "EPOCHS": 5}
    declared = {"02": frozenset({"TEXT_BANDS", "QC_DISABLE", "OVERLAY_MASK", "SEED"}), "04": frozenset({"EPOCHS", "SEED"})}
    profile = load_profile("smoke").with_overrides(overrides, declared)
    assert profile.parameters("02")["TEXT_BANDS"] == [[0, 0.08]] and "EPOCHS" not in profile.parameters("02")
    assert profile.parameters("04")["EPOCHS"] == 5 and "TEXT_BANDS" not in profile.parameters("04")
    assert load_profile("smoke").parameters("04")["EPOCHS"] == 2  # the profile itself is unchanged


@pytest.mark.parametrize(
    ("item", "text"),
    [("EPOCHS", "expected NAME=VALUE"), ("epochs=3", "UPPER_CASE"), ("TEXT_BANDS=[[0, 0.1]", "not valid YAML")],
)
def test_set_refuses_what_it_cannot_read(item, text):
    from ctslib.report.profiles import parse_overrides

    with pytest.raises(InputError, match=text):
        parse_overrides([item])


def test_set_refuses_names_no_stage_declares_and_run_options():
    import run_all
    from ctslib.report.profiles import load_profile

    declared = run_all.declared_by_stage()
    assert "TEXT_BANDS" in declared["02"] and "QC_DISABLE" in declared["02"]
    with pytest.raises(InputError, match="no stage declares a parameter TEXT_BAND"):
        load_profile("smoke").with_overrides({"TEXT_BAND": []}, declared)
    with pytest.raises(InputError, match="--set DATA_DIR: set by run_all itself; use --data"):
        load_profile("smoke").with_overrides({"DATA_DIR": "/x"}, declared)
    args = run_all.parse_args(["--set", "EPOCHS=3", "--set", "TEXT_BANDS=[]"])
    assert args.overrides == ["EPOCHS=3", "TEXT_BANDS=[]"]


# -- no data path in notebooks or the manifest ----------------------------------------------------


def test_data_dir_reaches_notebooks_through_a_link_in_the_work_folder(tmp_path):
    from ctslib.common.paths import data_layout
    from ctslib.report.runner import DATA_LINK, KERNEL_DIR, data_parameter

    data = tmp_path / "Clinic_Doe_Jane" / "DATA"
    (data / "videos").mkdir(parents=True)
    work = tmp_path / "work"
    value = data_parameter(data, work, synthetic=False)
    assert "Clinic_Doe_Jane" not in value and not os.path.isabs(value)
    link = work / KERNEL_DIR / DATA_LINK  # the kernel starts in <work>/.run
    assert link.is_symlink() and (work / KERNEL_DIR / value).resolve() == data.resolve()
    assert "Clinic_Doe_Jane" not in str(data_layout(work / KERNEL_DIR / value).videos_dir)
    other = tmp_path / "other"
    other.mkdir()
    data_parameter(other, work, synthetic=False)  # a second --data into the same work folder re-points the link
    assert link.resolve() == other.resolve()


def test_manifest_records_the_data_folder_name_and_hash_not_its_path(tmp_path):
    from ctslib.common.paths import RunPaths
    from ctslib.report.index import build_manifest

    data = tmp_path / "private" / "Clinic_Doe_Jane" / "study_data"
    data.mkdir(parents=True)
    (data / "acquisition.json").write_text(json.dumps({"source": "real", "pixel_spacing_mm": 0.1}))
    paths = RunPaths(work=tmp_path / "w", report=tmp_path / "r")
    manifest = build_manifest(profile="smoke", parameters={}, data_dir=data, data_hash="ab" * 32, results=[],
                              paths=paths, started=0.0, git={"commit": None, "dirty": False})
    assert manifest["data"]["name"] == "study_data" and manifest["data"]["sha256"] == "ab" * 32
    assert "Clinic_Doe_Jane" not in json.dumps(manifest)
