"""Notebook kernels: the environment they start in, the one papermill call, and their terminal output.

A kernel's own stderr is the terminal's. What its libraries write there before any cell output
exists (TensorFlow's C++ start-up lines, which ignore ``TF_CPP_MIN_LOG_LEVEL``; ipykernel's own log)
would print around every stage's line, so it goes through a filter (``TERMINAL_NOISE``) that drops
that chatter and passes everything else: C++ warnings and errors, Python warnings, tracebacks.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from ctslib.report.pages import NOISE_TEXT

KERNEL_ENV: dict[str, str] = {
    "TF_CPP_MIN_LOG_LEVEL": "3",  # TensorFlow's C++ log: errors too (the CPU-only cuInit "error" is noise)
    "GLOG_minloglevel": "3",  # glog-style C++ logging of XLA
    "GRPC_VERBOSITY": "ERROR",
    "TQDM_DISABLE": "1",  # progress bars belong in a terminal, not in a report
}
"""Environment of every notebook kernel: keeps library chatter out of the executed notebooks. Lines that
TensorFlow writes before its logging starts ("before absl::InitializeLog()") ignore these settings;
``export_html`` removes them from the pages and ``forward_lines`` from the terminal."""

TERMINAL_NOISE = re.compile(
    r"^\s*(?:I\d{4} \d\d:\d\d:\d\d|WARNING: All log messages before absl|"
    r"\[IPKernelApp\] WARNING \| Kernel is running over TCP without encryption|"
    rf"\[IPKernelApp\] ERROR \| KeyboardInterrupt caught in kernel|.*(?:{NOISE_TEXT}))"
)
"""A line a notebook kernel writes straight to the terminal that says nothing about the study: C++ info
lines that TensorFlow writes before its logging starts (they ignore ``TF_CPP_MIN_LOG_LEVEL``), the
start-up notes of ``NOISE_TEXT``, ipykernel's note on its local TCP transport and the interrupt that
jupyter_client sends every kernel at shutdown. C++ warnings and errors, Python warnings and
tracebacks are not matched: they still reach the terminal."""


def forward_lines(stream: IO[bytes], sink: IO[str]) -> threading.Thread:
    """Copy ``stream`` to ``sink`` line by line, without ``TERMINAL_NOISE``, in a daemon thread (started)."""
    def copy() -> None:
        try:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", errors="replace")
                if not TERMINAL_NOISE.match(line):
                    sink.write(line)
                    sink.flush()
        except (OSError, ValueError):  # the stream was closed under us: the kernel is gone
            pass

    thread = threading.Thread(target=copy, name="kernel-stderr", daemon=True)
    thread.start()
    return thread


@functools.cache
def quiet_kernel_manager() -> type:
    """jupyter_client's kernel manager, with the kernel's own stderr sent through ``forward_lines``."""
    from jupyter_client import AsyncKernelManager

    class QuietKernelManager(AsyncKernelManager):
        _stderr_thread: threading.Thread | None = None

        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
            kw["stderr"] = subprocess.PIPE
            await super()._async_launch_kernel(kernel_cmd, **kw)
            self._stderr_thread = forward_lines(self.provisioner.process.stderr, sys.stderr)

        async def _async_cleanup_resources(self, restart: bool = False) -> None:
            if self._stderr_thread is not None:  # the kernel has exited: let its last lines reach the terminal
                self._stderr_thread.join(timeout=5)
            await super()._async_cleanup_resources(restart=restart)

    return QuietKernelManager


@contextlib.contextmanager
def kernel_environment(extra: dict[str, str] | None = None) -> Iterator[None]:
    """Set ``KERNEL_ENV`` (plus ``extra``) for kernels started inside the block; restore afterwards."""
    wanted = {**KERNEL_ENV, **(extra or {})}
    before = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_notebook(notebook: Path, executed: Path, params: dict[str, Any], *, cwd: Path, kernel: str = "python3",
                 progress: bool = True) -> None:
    """Execute ``notebook`` into ``executed`` with papermill: kernel in ``KERNEL_ENV``, started in ``cwd``, its
    terminal output without start-up noise (``quiet_kernel_manager``).

    Raises papermill's ``PapermillExecutionError`` when a cell fails.
    """
    import papermill as pm

    with kernel_environment():
        pm.execute_notebook(
            str(notebook),
            str(executed),
            parameters=params,
            kernel_name=kernel,
            cwd=str(cwd),
            progress_bar=progress,
            request_save_on_cell_execute=True,
            kernel_manager_class=quiet_kernel_manager(),
        )
