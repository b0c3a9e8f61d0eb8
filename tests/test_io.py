"""Atomic outputs, tables, records and hashing."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ctslib.common.errors import InputError
from ctslib.common.io import atomic_path, read_records, record, sha256_json, sha256_tree, write_csv, write_table


def test_atomic_path_leaves_nothing_when_the_block_fails(tmp_path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half written")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_write_table_writes_csv_and_markdown(tmp_path) -> None:
    df = pd.DataFrame({"grade": ["normal", "mild"], "n": [30, 34], "share": [0.319149, 0.361702]})
    write_table(df, "table1", tmp_path, caption="Table 1")
    assert pd.read_csv(tmp_path / "table1.csv").equals(df.round(6))
    md = (tmp_path / "table1.md").read_text()
    assert md.startswith("**Table 1**") and "| normal" in md and "0.319" in md


def test_write_csv_is_byte_stable(tmp_path) -> None:
    df = pd.DataFrame({"x": np.linspace(0, 1, 7)})
    a = write_csv(df, tmp_path / "a.csv").read_bytes()
    b = write_csv(df.copy(), tmp_path / "b.csv").read_bytes()
    assert a == b


def test_record_accumulates_json(tmp_path) -> None:
    path = tmp_path / "record.json"
    record("n_wrists", np.int64(94), path, show=False)
    record("accuracy", np.float32(0.5), path, show=False)
    assert read_records(path) == {"n_wrists": 94, "accuracy": 0.5}
    assert json.loads(path.read_text())["n_wrists"] == 94


def test_hashes_change_with_content(tmp_path) -> None:
    (tmp_path / "a.txt").write_text("1")
    first = sha256_tree(tmp_path)
    (tmp_path / "a.txt").write_text("2")
    assert sha256_tree(tmp_path) != first
    assert sha256_json({"a": 1, "b": 2}) == sha256_json({"b": 2, "a": 1})


def test_input_error_names_file_row_column() -> None:
    err = InputError("DML must be a number", file="cohort.csv", row=3, column="dml_ms")
    assert str(err) == "cohort.csv, row 3, column 'dml_ms': DML must be a number"


def test_atomic_outputs_follow_the_umask(tmp_path) -> None:
    import os

    mask = os.umask(0o022)
    os.umask(mask)
    path = write_csv(pd.DataFrame({"a": [1]}), tmp_path / "x.csv")
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


def test_every_stage_object_records_and_warns_under_its_own_key(tmp_path, capsys):
    from ctslib.common.paths import RunPaths
    from ctslib.evaluate.stage import EvaluationStage
    from ctslib.frames.stage import FrameStage
    from ctslib.nerve.stage import NerveStage
    from ctslib.severity.stage import ModelStage

    paths = RunPaths(tmp_path / "work", tmp_path / "report")
    (tmp_path / "report").mkdir()
    stages = {"02": FrameStage(paths, None, None), "03": NerveStage(paths, None, "synthetic"),
              "05": ModelStage("longitudinal", paths, "synthetic", "CPU"),
              "06": EvaluationStage(paths, tmp_path, None, 0, 10, 0.95)}
    for key, stage in stages.items():
        stage.record("n_things", int(key))
        stage.warn(f"stage {key} saw something")
    for key in stages:
        assert read_records(paths.records(key)) == {"n_things": int(key)}
    warned = json.loads((tmp_path / "report" / "warnings.json").read_text())
    assert warned == {key: [f"stage {key} saw something"] for key in stages}
    assert "WARNING (stage 05): stage 05 saw something" in capsys.readouterr().out
