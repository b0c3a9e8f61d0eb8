"""Shared fixtures: the session-wide smoke run of every notebook, and real-data skips."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ctslib.common.paths import PROJECT_ROOT, USGRA_SEG_DIR, RunPaths


@dataclass(frozen=True)
class SmokeRun:
    """One ``run_all.py --profile smoke`` into temporary folders, shared by the notebook tests."""

    paths: RunPaths
    returncode: int
    log: str

    def require_ok(self) -> None:
        if self.returncode != 0:
            pytest.fail(f"smoke run failed (exit {self.returncode}); log tail:\n{self.log[-4000:]}")

    def records(self, key: str) -> dict[str, Any]:
        self.require_ok()
        path = self.paths.records(key)
        assert path.exists(), f"stage {key} recorded nothing ({path})"
        return json.loads(path.read_text(encoding="utf-8"))

    @property
    def manifest(self) -> dict[str, Any]:
        self.require_ok()
        return json.loads(self.paths.manifest.read_text(encoding="utf-8"))


def run_all(*args: str, timeout: int = 1500) -> subprocess.CompletedProcess[str]:
    """Run ``run_all.py`` with this interpreter; output captured as text."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "run_all.py"), "--no-progress", *args],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout, env=env, check=False,
    )


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> SmokeRun:
    """Execute every notebook once on the smoke profile (synthetic smoke data cached in data/)."""
    root = tmp_path_factory.mktemp("smoke")
    paths = RunPaths(work=root / "work", report=root / "report")
    proc = run_all("--profile", "smoke", "--run", "smoke-test", "--work", str(paths.work), "--out", str(paths.report))
    return SmokeRun(paths=paths, returncode=proc.returncode, log=proc.stdout + proc.stderr)


requires_usgra = pytest.mark.skipif(
    not (USGRA_SEG_DIR / "dataset").is_dir(), reason=f"real usgra-seg data not found at {USGRA_SEG_DIR}"
)
