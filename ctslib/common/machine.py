"""What a time was measured on: the CPU, its cores and the SIMD level TensorFlow's kernels may use.

Every speed figure the package records (stage times in the manifest and the report index) carries
``machine_line``: the same code took 9 minutes on one 2-core machine and 52 on another, so a time
without its machine says nothing.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

__all__ = ["cpu_info", "machine_line"]


def cpu_info() -> dict[str, Any]:
    """CPU model and family, core count and the SIMD extensions that decide TensorFlow's speed (Linux;
    else what is known). The family tells apart CPUs sold under one name ("AMD EPYC": 25 is Zen 3, 26 Zen 5)."""
    model, family, flags = platform.processor() or None, None, set()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model in (None, "", "x86_64"):
                model = value.strip()
            elif key.strip() == "cpu family" and family is None:
                family = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    wanted = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "neon")
    return {"model": model, "family": family, "logical_cores": os.cpu_count(),
            "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "isa": {f: f in flags for f in wanted} if flags else {},
            "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),
            "tf_enable_onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS")}


def machine_line(cpu: dict[str, Any]) -> str:
    """One line naming what a time was measured on: CPU model and family, usable cores, the SIMD level
    TensorFlow's oneDNN kernels may use (a ``ONEDNN_MAX_CPU_ISA`` cap named as such), e.g.
    ``AMD EPYC (CPU family 25), 2 cores, AVX2 (no AVX-512)``."""
    isa = cpu.get("isa") or {}
    native = ("AVX-512" if isa.get("avx512f") else "AVX2 (no AVX-512)" if isa.get("avx2")
              else "NEON" if isa.get("neon") else "below AVX2" if isa else "ISA unknown")
    family = f" (CPU family {cpu['family']})" if cpu.get("family") else ""
    cap = cpu.get("onednn_max_cpu_isa")
    capped = f", oneDNN capped at {cap} (ONEDNN_MAX_CPU_ISA)" if cap else ""
    return f"{cpu.get('model') or 'unknown CPU'}{family}, {cpu.get('usable_cores')} cores, {native}{capped}"
