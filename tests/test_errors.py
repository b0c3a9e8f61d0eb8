"""Tests of ctslib.common.errors: messages name the user's own file, also when a run reaches it through a link."""

from __future__ import annotations

import json
import os
import pickle

import pytest

from ctslib.data.acquisition import read_acquisition
from ctslib.common.errors import InputError, shown_path
from ctslib.common.paths import data_layout
from ctslib.report.runner import DATA_LINK, data_parameter


def test_error_inside_a_run_names_the_users_data_folder_not_the_work_link(tmp_path, monkeypatch):
    tmp_path = tmp_path.resolve()  # a system temp folder may itself lie behind a link
    data = tmp_path / "Clinic data" / "DATA"
    data.mkdir(parents=True)
    (data / "acquisition.json").write_text(json.dumps({"source": "real", "pixel_spacing_mm": [0.01, 0.01]}))
    work = tmp_path / "work" / "run1"
    injected = data_parameter(data, work, synthetic=False)  # what run_all gives the notebooks as DATA_DIR
    link = work / DATA_LINK
    if not link.is_symlink():
        pytest.skip("links cannot be made here: notebooks get the data folder's own path")
    monkeypatch.chdir(os.path.join(os.path.dirname(__file__), "..", "notebooks"))  # papermill's working folder
    with pytest.raises(InputError) as caught:
        read_acquisition(data_layout(injected))
    message = str(caught.value)
    assert message.startswith(f"{data / 'acquisition.json'}, column 'pixel_spacing_mm': implausible pixel spacing")
    assert DATA_LINK not in message and str(work) not in message
    assert caught.value.file.endswith(f"{DATA_LINK}/acquisition.json")  # the attribute keeps the path as given
    assert str(pickle.loads(pickle.dumps(caught.value))) == message     # the same across worker processes


def test_paths_without_a_link_are_shown_as_given(tmp_path):
    assert shown_path("cohort.csv") == "cohort.csv"
    plain = tmp_path.resolve() / "DATA" / "cohort.csv"
    assert shown_path(str(plain)) == str(plain)
    assert str(InputError("bad", file=plain, row=2)) == f"{plain}, row 2: bad"
