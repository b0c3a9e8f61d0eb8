"""run_all's planning, parameter checks and stamps (the notebook execution itself is in test_notebooks)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

import run_all
from ctslib.common.errors import StageError
from ctslib.report.runner import compute_stamp, stage_parameters


def _notebook(path, source: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell("print(EPOCHS)")]
    nbformat.write(nb, path)


def test_stage_parameters_pass_declared_and_refuse_typos(tmp_path) -> None:
    nb = tmp_path / "04_x.ipynb"
    _notebook(nb, "DATA_DIR = 'a'\nWORK_DIR = 'b'\nREPORT_DIR = 'c'\nSEED = 1\nEPOCHS = 2\n")
    injected = {"DATA_DIR": "/d", "WORK_DIR": "/w", "REPORT_DIR": "/r", "SKIP_BAD_INPUTS": True}
    params = stage_parameters("04", nb, {"SEED": 7, "EPOCHS": 3, "UNUSED_COMMON": 1}, ["SEED", "UNUSED_COMMON"], injected)
    assert params == {"SEED": 7, "EPOCHS": 3, "DATA_DIR": "/d", "WORK_DIR": "/w", "REPORT_DIR": "/r"}
    with pytest.raises(StageError, match="EPOCH"):
        stage_parameters("04", nb, {"EPOCH": 3}, ["SEED"], injected)


def test_stamp_changes_with_parameters_notebook_and_upstream(tmp_path) -> None:
    nb = tmp_path / "n.ipynb"
    _notebook(nb, "EPOCHS = 2\n")
    base = compute_stamp(nb, {"EPOCHS": 2}, {"03": "abc"}, "data", "lib")
    assert base == compute_stamp(nb, {"EPOCHS": 2}, {"03": "abc"}, "data", "lib")
    assert base != compute_stamp(nb, {"EPOCHS": 3}, {"03": "abc"}, "data", "lib")
    assert base != compute_stamp(nb, {"EPOCHS": 2}, {"03": "abd"}, "data", "lib")
    assert base != compute_stamp(nb, {"EPOCHS": 2}, {"03": "abc"}, "data2", "lib")
    _notebook(nb, "EPOCHS = 5\n")
    assert base != compute_stamp(nb, {"EPOCHS": 2}, {"03": "abc"}, "data", "lib")


@pytest.mark.parametrize(
    ("argv", "synthetic", "stages", "forced"),
    [
        ([], True, ["00", "01", "02", "03", "04", "05", "06"], set()),
        (["--data", "x"], False, ["01", "02", "03", "04", "05", "06"], set()),
        (["--only", "04"], True, ["04"], {"04"}),
        (["--from", "05"], True, ["05", "06"], {"05", "06"}),
        (["--force"], False, ["01", "02", "03", "04", "05", "06"], {"01", "02", "03", "04", "05", "06"}),
    ],
)
def test_plan_stages(argv, synthetic, stages, forced) -> None:
    args = run_all.parse_args(argv)
    assert run_all.plan_stages(args, synthetic) == (stages, forced)


def test_only_generator_with_real_data_is_refused() -> None:
    with pytest.raises(StageError, match="nothing to run"):
        run_all.plan_stages(run_all.parse_args(["--only", "00"]), synthetic=False)


def _executed_notebook(path: Path) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("print('x')")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stderr", text=(
            "E0000 00:00:1796183970.197637    5424 cuda_platform.cc:52] failed call to cuInit: INTERNAL\n"
            "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
            "I0000 00:00:17961839 port.cc:153] oneDNN custom operations are on.\n"
            "\r  0%|          | 0/10 [00:00<?, ?it/s]\r100%|##########| 10/10 [00:01<00:00,  9.9it/s]\n"
            "UserWarning: a warning the reader should see\n")),
        nbformat.v4.new_output("stream", name="stderr", text="W0000 00:00:1 cpu_feature_guard.cc] NodeDef mentions\n"),
        nbformat.v4.new_output("stream", name="stdout", text="result 0.9\n"),
    ]
    nb.cells = [nbformat.v4.new_markdown_cell("# Title with $x^2$"), cell]
    nbformat.write(nb, path)
    return path


def test_exported_page_is_offline_quiet_and_links_back(tmp_path) -> None:
    import re

    from ctslib.report.pages import export_html

    page = tmp_path / "01_x.html"
    export_html(_executed_notebook(tmp_path / "01_x.ipynb"), page)
    text = page.read_text(encoding="utf-8")
    assert not re.findall(r"<script[^>]+src=[\"']https?://", text)  # no CDN: require.js / MathJax / Mermaid
    assert "cdn.jsdelivr" not in text and "mathjax" not in text.lower()
    for noise in ("E0000", "cuInit", "absl", "oneDNN", "NodeDef", "it/s"):
        assert noise not in text
    assert "a warning the reader should see" in text and "result 0.9" in text
    assert text.count('href="index.html"') >= 1


def test_kernel_environment_is_set_inside_and_restored_after(monkeypatch) -> None:
    import os

    from ctslib.report.kernel import KERNEL_ENV, kernel_environment

    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    with kernel_environment():
        assert all(os.environ[k] == v for k, v in KERNEL_ENV.items())
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0" and "TQDM_DISABLE" not in os.environ


def test_deviations_name_the_shrunk_input_and_no_epoch_or_dropout_line_for_the_paper_recipe() -> None:
    from ctslib.report.profiles import load_profile
    from ctslib.report.index import deviations

    effective = {"03": {"CROP_SIZE": 128},
                 "04": {"INPUT_SIZE": 64, "EPOCHS": 40, "BATCH_SIZE": 30, "DROPOUT": [0.6, 0.6, 0.0]},
                 "05": {"INPUT_SIZE": 128, "EPOCHS": 400, "BATCH_SIZE": 20, "DROPOUT": [0.6]}}
    lines = deviations(effective)
    assert "transverse model: nerve-centred 128 px crops shrunk to 64 px as input (paper: crop size not stated)" in lines
    assert "longitudinal model: 128 px nerve-centred crops as input (paper: crop size not stated)" in lines
    assert "transverse model: 40 epochs (paper: 500)" in lines
    assert not any(line.startswith("longitudinal model") and ("epochs" in line or "dropout" in line) for line in lines)
    assert any("shrunk to 64 px" in line for line in deviations(load_profile("default").stages))


def test_the_terminal_shows_a_kernels_warnings_but_not_its_start_up_noise(tmp_path, capfd) -> None:
    """The kernel's own stderr is the terminal's; ``run_notebook`` filters it, never silences it."""
    import re

    from ctslib.report.kernel import run_notebook

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    lines = [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "I0000 00:00:1796411071.980723    1729 port.cc:153] oneDNN custom operations are on.",
        "E0000 00:00:1796411071.980800    1729 kernel.cc:1] a C++ error of the study's model",
        "model.py:3: UserWarning: a Python warning printed straight to the terminal",
    ]
    writes = "".join(f"os.write(2, {(line + chr(10)).encode()!r})\n" for line in lines)
    nb.cells = [nbformat.v4.new_code_cell("X = 1", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(f"import os\n{writes}print(X)")]
    nbformat.write(nb, tmp_path / "noise.ipynb")
    run_notebook(tmp_path / "noise.ipynb", tmp_path / "out.ipynb", {"X": 2}, cwd=tmp_path, progress=False)
    err = capfd.readouterr().err
    assert lines[2] in err and lines[3] in err
    assert not re.search("IPKernelApp|absl|oneDNN", err), err  # ipykernel's TCP note comes from the real kernel
    outputs = [o for c in nbformat.read(tmp_path / "out.ipynb", as_version=4).cells for o in c.get("outputs", [])]
    assert [o.get("text") for o in outputs] == ["2\n"]  # the injected parameter reached the kernel
