"""ctslib.common.machine: the line that names what a time was measured on."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctslib.common.machine import cpu_info, machine_line

ZEN3 = {"model": "AMD EPYC", "family": "25", "usable_cores": 2,
        "isa": {"avx": True, "avx2": True, "avx512f": False}, "onednn_max_cpu_isa": None}


@pytest.mark.parametrize(("change", "expected"), [
    ({}, "AMD EPYC (CPU family 25), 2 cores, AVX2 (no AVX-512)"),
    ({"family": "26", "isa": {"avx2": True, "avx512f": True}}, "AMD EPYC (CPU family 26), 2 cores, AVX-512"),
    ({"family": "26", "isa": {"avx2": True, "avx512f": True}, "onednn_max_cpu_isa": "AVX2"},
     "AMD EPYC (CPU family 26), 2 cores, AVX-512, oneDNN capped at AVX2 (ONEDNN_MAX_CPU_ISA)"),
    ({"model": "Apple M2", "family": None, "usable_cores": 8, "isa": {"neon": True}}, "Apple M2, 8 cores, NEON"),
    ({"model": None, "family": None, "isa": {}}, "unknown CPU, 2 cores, ISA unknown"),
])
def test_machine_line_names_cpu_family_cores_isa_and_cap(change, expected) -> None:
    assert machine_line({**ZEN3, **change}) == expected


def test_cpu_info_reads_this_machine_and_the_cap(monkeypatch) -> None:
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    info = cpu_info()
    assert info["onednn_max_cpu_isa"] == "AVX2" and info["usable_cores"] >= 1
    assert machine_line(info).endswith("oneDNN capped at AVX2 (ONEDNN_MAX_CPU_ISA)")
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        pytest.skip("no /proc/cpuinfo (not Linux)")
    text = cpuinfo.read_text(encoding="utf-8")
    if "cpu family" in text:  # x86 Linux: the family line is read
        assert info["family"] and f"(CPU family {info['family']})" in machine_line(info)
    assert (", AVX-512" in machine_line(info)) == ("avx512f" in text)  # what grep -c avx512f /proc/cpuinfo says
