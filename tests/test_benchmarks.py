"""The benchmark helpers count what they claim, and bench_train prints its ratios (no timing asserted)."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))

import hardware  # noqa: E402
from conftest import requires_usgra  # noqa: E402

from ctslib.common.machine import cpu_info, machine_line  # noqa: E402


def test_forward_flops_counts_convolutions_and_dense_layers_by_hand():
    import keras

    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)        # 8*8 outputs x 4 filters x 3*3*1 MACs
    x = keras.layers.MaxPooling2D()(x)                           # not counted
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(2)(x)                           # 64 inputs x 2 units
    model = keras.Model(inputs, outputs)
    expected = 2 * (8 * 8 * 4 * 9) + 2 * (4 * 4 * 4 * 2)
    assert hardware.forward_flops(model) == expected
    assert hardware.train_step_flops(model) == 3 * expected


def test_isa_line_reports_the_avx512_count_and_a_cap(monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    line = hardware.isa_line()
    assert f"grep -c avx512f /proc/cpuinfo = {hardware.avx512f_count()}" in line
    assert line.startswith(f"CPU: {machine_line(cpu_info())};")  # the line run_all records for each stage
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert hardware.isa_in_force().startswith("AVX2 (ONEDNN_MAX_CPU_ISA cap")


def test_matmul_gflops_is_a_positive_rate():
    assert hardware.matmul_gflops(n=128, repeats=2) > 0


def test_bench_train_prints_throughput_gflops_and_ratios(capsys):
    import bench_train

    assert bench_train.main(["--planes", "transverse", "--size", "32", "--images", "40", "--epochs", "2",
                             "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert "grep -c avx512f /proc/cpuinfo" in out
    ratio = [line for line in out.splitlines() if line.startswith("RATIO transverse")]
    assert len(ratio) == 1 and "x wall-clock" in ratio[0] and "of matmul peak" in ratio[0]
    assert "GFLOP/s" in out


def test_bench_backend_prints_the_backend_its_peak_and_each_models_rate(capsys):
    import bench_backend

    assert bench_backend.main(["--planes", "longitudinal", "--size", "32", "--images", "40", "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert "grep -c avx512f /proc/cpuinfo" in out and "TF_ENABLE_ONEDNN_OPTS=" in out
    assert "backend: tensorflow" in out and "matmul 2048x2048 on this backend" in out
    line = [row for row in out.splitlines() if row.startswith("longitudinal: plain fit")]
    assert len(line) == 1 and "% of matmul peak" in line[0] and "1 steady epoch of 40 images" in line[0]


def test_bench_pipeline_names_the_machine_of_every_stage_time(tmp_path, capsys):
    import json

    import bench_pipeline

    zen3 = {"model": "AMD EPYC", "family": "25", "usable_cores": 2, "isa": {"avx2": True, "avx512f": False}}
    zen5 = {**zen3, "family": "26", "isa": {"avx2": True, "avx512f": True}}
    stage = {"status": "ran", "seconds": 1.0, "peak_rss_mb": 100.0}  # each entry adds its notebook
    manifest = {"profile": "smoke", "data": {"source": "synthetic"}, "cpu": zen3, "stages": {
        "00": {**stage, "notebook": "00_a.ipynb", "machine": machine_line(zen3)},
        "01": {**stage, "notebook": "01_b.ipynb", "status": "earlier run", "machine": machine_line(zen5)},
        "02": {**stage, "notebook": "02_c.ipynb", "status": "earlier run"}}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    bench_pipeline.print_manifest(tmp_path)
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line[:2].isdigit()}
    assert rows["00_a"].endswith("same") and rows["01_b"].endswith("AMD EPYC (CPU family 26), 2 cores, AVX-512")
    assert "not recorded" in rows["02_c"]


def test_bench_pipeline_compares_two_runs_stage_by_stage_and_refuses_mixed_machines():
    import bench_pipeline

    zen4 = {"model": "AMD EPYC", "family": "25", "usable_cores": 2, "isa": {"avx2": True, "avx512f": True}}
    line = machine_line(zen4)

    def manifest(seconds: dict[str, float], wall: float, machine: str = line) -> dict:
        return {"cpu": zen4, "wall_seconds": wall, "stages": {
            key: {"notebook": f"{key}_stage.ipynb", "seconds": s, "machine": machine} for key, s in seconds.items()}}

    old, new = manifest({"00": 40.0, "03": 300.0}, 360.0), manifest({"00": 40.0, "03": 100.0}, 150.0)
    out = bench_pipeline.compare_manifests(old, new)
    rows = {row.split()[0]: row.split() for row in out}
    assert rows["03_stage"][-1] == "3.00" and rows["00_stage"][-1] == "1.00"
    assert rows["wall_seconds"][-1] == "2.40" and out[-1] == f"both runs on: {line}"
    elsewhere = manifest({"00": 40.0, "03": 100.0}, 150.0, machine="AMD EPYC (CPU family 23), 2 cores, AVX2 (no AVX-512)")
    assert bench_pipeline.compare_manifests(old, elsewhere)[-1].startswith("NOT COMPARABLE")


@requires_usgra
def test_bench_sim_to_real_prints_every_realism_statistic_and_the_domain_auc(capsys):
    import bench_sim_to_real
    from ctslib.synth.realism import MEANINGS

    assert bench_sim_to_real.main(["--participants", "2", "--duration", "1.0", "--frames", "12"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("CPU: ")
    assert "usgra-seg images" in out and "domain classifier AUC" in out
    for statistic in MEANINGS:
        assert statistic in out
