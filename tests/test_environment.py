"""The pinned environment is described the same way for pip (requirements.txt) and conda."""

from __future__ import annotations

import re

import yaml

from ctslib.common.paths import PROJECT_ROOT


def _pins(lines: list[str]) -> dict[str, str]:
    pins = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep, f"not pinned with ==: {line!r}"
            pins[re.sub(r"[-_.]+", "-", name.lower())] = version
    return pins


def test_environment_yml_lists_exactly_the_pinned_requirements() -> None:
    requirements = _pins((PROJECT_ROOT / "requirements.txt").read_text().splitlines())
    env = yaml.safe_load((PROJECT_ROOT / "environment.yml").read_text())
    pip_block = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert _pins(pip_block) == requirements
    assert "python=3.11" in env["dependencies"]


def test_lock_file_agrees_with_top_level_pins() -> None:
    requirements = _pins((PROJECT_ROOT / "requirements.txt").read_text().splitlines())
    lock = _pins((PROJECT_ROOT / "requirements-lock.txt").read_text().splitlines())
    disagree = {n: (v, lock.get(n)) for n, v in requirements.items() if lock.get(n) != v}
    assert not disagree, f"requirements.txt vs requirements-lock.txt: {disagree}"


def test_installed_versions_match_the_pins() -> None:
    from importlib import metadata

    requirements = _pins((PROJECT_ROOT / "requirements.txt").read_text().splitlines())
    wrong = {n: (v, metadata.version(n)) for n, v in requirements.items() if metadata.version(n) != v}
    assert not wrong, f"installed differs from requirements.txt (re-run make): {wrong}"


def _onednn_in_fresh_python(value: str | None) -> str:
    """``TF_ENABLE_ONEDNN_OPTS`` and TensorFlow's own verdict in a new process that imports ctslib first."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if value is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = value
    code = ("import os, ctslib, tensorflow; from tensorflow.python.util import _pywrap_util_port as port; "
            "print(os.environ['TF_ENABLE_ONEDNN_OPTS'], port.IsMklEnabled())")
    out = subprocess.run([sys.executable, "-c", code], env={**env, "TF_CPP_MIN_LOG_LEVEL": "3"}, cwd=PROJECT_ROOT,
                         capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def test_importing_ctslib_turns_tensorflows_onednn_kernels_on_unless_the_user_said_no() -> None:
    """TensorFlow leaves oneDNN off on some x86 CPUs (an AMD EPYC here), where it halves training speed."""
    assert _onednn_in_fresh_python(None) == "1 True"
    assert _onednn_in_fresh_python("0") == "0 False"
