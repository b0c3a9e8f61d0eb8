"""Notebook hygiene (always) and the smoke-profile execution of every notebook (marker: notebooks)."""

from __future__ import annotations

import json

import pytest

from ctslib.common.machine import machine_line
from ctslib.common.paths import NOTEBOOKS_DIR, STAGES

NOTEBOOKS = sorted(STAGES.items())


def _load(name: str) -> dict:
    return json.loads((NOTEBOOKS_DIR / name).read_text(encoding="utf-8"))


@pytest.mark.parametrize(("key", "name"), NOTEBOOKS)
def test_notebook_is_committed_clean_with_the_skeleton(key: str, name: str) -> None:
    nb = _load(name)
    cells = nb["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), f"{name} has outputs"
    assert cells[0]["cell_type"] == "markdown" and "".join(cells[0]["source"]).startswith(f"# {key}"), \
        f"{name}: first cell must be the title '# {key} · ...'"
    assert "parameters" in code[0].get("metadata", {}).get("tags", []), f"{name}: first code cell must be tagged parameters"
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    assert "record(" in "".join("".join(c["source"]) for c in code), f"{name} records no headline numbers"


def test_notebooks_folder_holds_only_the_stages() -> None:
    assert sorted(p.name for p in NOTEBOOKS_DIR.glob("*.ipynb")) == sorted(STAGES.values())


@pytest.mark.notebooks
def test_smoke_run_executes_every_stage(smoke_run) -> None:
    smoke_run.require_ok()
    for name in STAGES.values():
        stem = name.removesuffix(".ipynb")
        assert (smoke_run.paths.report / f"{stem}.html").stat().st_size > 10_000
        assert (smoke_run.paths.report / name).exists()
        assert (smoke_run.paths.work / stem / ".stamp.json").exists()


@pytest.mark.notebooks
def test_smoke_report_index_links_the_paper_outputs(smoke_run) -> None:
    import re

    index = (smoke_run.paths.report / "index.html").read_text(encoding="utf-8")
    for name in STAGES.values():
        assert 'href="{}.html"'.format(name.removesuffix(".ipynb")) in index
    for output in ("tables/table1.csv", "figures/figure2.png", "figures/figure3.png", "tables/table2.csv", "figures/figure4.png"):
        assert (smoke_run.paths.report / output).exists(), output
        assert output in index
    assert "SYNTHETIC" in index
    # the verdict box comes first, then the table of contents; sanity flags and deviations are in the box
    assert 0 < index.index('id="verdict"') < index.index('id="contents"') < index.index('id="paper"')
    verdict = index[index.index('id="verdict"'):index.index('id="contents"')]
    assert "Sanity flags" in verdict and "Deviations from the paper" in verdict and "epochs (paper: 500)" in verdict
    assert "What this shows:" in verdict and not re.search(r"\bnan\b", index, flags=re.IGNORECASE)
    box = verdict[verdict.index('id="what-this-means"'):]
    assert "in 10" in box and "Limitations of this run" in box and "epochs (paper: 500)" in box


@pytest.mark.notebooks
def test_smoke_notebook_pages_are_offline_quiet_and_link_back(smoke_run) -> None:
    import re

    smoke_run.require_ok()
    for name in STAGES.values():
        page = (smoke_run.paths.report / name.replace(".ipynb", ".html")).read_text(encoding="utf-8")
        assert not re.findall(r"<script[^>]+src=[\"']https?://", page), name
        for noise in ("E0000", "cuInit", "absl", "TqdmWarning", "NodeDef"):
            assert noise not in page, (name, noise)
        assert 'href="index.html"' in page, name


@pytest.mark.notebooks
def test_smoke_manifest_says_what_produced_the_report(smoke_run) -> None:
    manifest = smoke_run.manifest
    assert manifest["profile"] == "smoke"
    assert manifest["data"]["source"] == "synthetic" and len(manifest["data"]["sha256"]) == 64
    assert manifest["packages"]["tensorflow"] and manifest["python"].startswith("3.11")
    assert set(manifest["stages"]) == set(STAGES)
    assert all(s["status"] == "ran" for s in manifest["stages"].values())
    assert all(s["peak_rss_mb"] > 50 for s in manifest["stages"].values())
    # effective parameters include the notebook defaults the profile does not inject
    assert {"LEARNING_RATE", "ROTATION_DEG", "DROPOUT", "EPOCHS"} <= set(manifest["effective_parameters"]["04"])
    assert manifest["effective_parameters"]["04"]["EPOCHS"] == _smoke("04")["EPOCHS"]
    assert {"avx2", "avx512f"} <= set(manifest["cpu"]["isa"]) and manifest["cpu"]["logical_cores"] >= 1
    machine = machine_line(manifest["cpu"])  # every stage time names the CPU and ISA it was measured on
    assert all(s["machine"] == machine for s in manifest["stages"].values()) and "cores" in machine
    assert manifest["tensorflow_device"].startswith(("CPU", "GPU"))
    assert len(manifest["outputs_sha256"]["tables/table2.csv"]) == 64
    assert any(k.endswith("grouped_last.keras") for k in manifest["outputs_sha256"])
    assert manifest["command"][0] == "run_all.py" and manifest["finished"][-6] in "+-"


@pytest.mark.notebooks
def test_rerun_skips_unchanged_stages(smoke_run) -> None:
    from conftest import run_all

    smoke_run.require_ok()
    proc = run_all("--profile", "smoke", "--run", "smoke-test", "--work", str(smoke_run.paths.work),
                   "--out", str(smoke_run.paths.report))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("up to date") == len(STAGES), proc.stdout
    manifest = json.loads((smoke_run.paths.report / "manifest.json").read_text(encoding="utf-8"))
    assert all(s["status"] == "skipped" and s["machine"] for s in manifest["stages"].values())  # kept from the stamp
    assert f"on {machine_line(manifest['cpu'])}." in (smoke_run.paths.report / "index.html").read_text(encoding="utf-8")


# ---------------------------------------------------------------- what each stage recorded (smoke)
def _smoke(key: str) -> dict:
    from ctslib.report.profiles import load_profile

    return load_profile("smoke").parameters(key)


@pytest.mark.notebooks
def test_smoke_stage_records_agree_with_the_profile(smoke_run) -> None:
    import pandas as pd

    synth = _smoke("00")
    n_wrists = sum(synth["GRADE_COUNTS"])
    assert smoke_run.records("00")["n_wrists"] == n_wrists
    assert smoke_run.records("00")["n_videos"] == 2 * n_wrists
    rec01 = smoke_run.records("01")
    assert rec01["n_participants"] == synth["N_PARTICIPANTS"]
    assert [rec01["grade_counts"][g] for g in ("normal", "mild", "moderate", "severe")] == synth["GRADE_COUNTS"]
    rec02 = smoke_run.records("02")
    frames = pd.read_csv(smoke_run.paths.frames_csv)
    assert rec02["n_extracted"] == len(frames) and rec02["n_kept"] == int(frames["kept"].sum())
    assert 0 < rec02["n_kept"] < rec02["n_extracted"]  # QC rejects some frames, keeps some
    expected_per_video = synth["DURATION_S"] * _smoke("02")["TARGET_FPS"]
    assert frames.groupby(["wrist_id", "plane"]).size().between(expected_per_video - 1, expected_per_video + 1).all()
    crops = pd.read_csv(smoke_run.paths.crops_csv)
    found = crops[crops["nerve_found"].astype(bool)]
    assert smoke_run.records("03")["n_crops_transverse"] == int((found["plane"] == "transverse").sum())
    rec03 = smoke_run.records("03")
    assert rec03["n_presence_rejected"] == int(crops["reason"].eq("low_presence").sum())
    assert 0 < rec03["presence_threshold"] < 1
    funnel = pd.read_csv(smoke_run.paths.tables / "crop_funnel.csv").set_index("plane")
    assert funnel.loc["all", "presence_rejected"] == rec03["n_presence_rejected"]
    assert funnel.loc["all", ["no_nerve_found", "presence_rejected", "crops"]].sum() == funnel.loc["all", "kept_frames"]
    for key, plane in (("04", "transverse"), ("05", "longitudinal")):
        history = pd.read_csv(smoke_run.paths.history_csv(plane))
        assert history.groupby("split")["epoch"].nunique().eq(_smoke(key)["EPOCHS"]).all()
        predictions = pd.read_csv(smoke_run.paths.predictions_csv(plane))
        assert set(predictions["split"]) == set(_smoke(key).get("SPLITS", ["paper", "grouped"]))
        assert smoke_run.records(key)["participants_on_both_sides"]["grouped"] == 0
    table2 = pd.read_csv(smoke_run.paths.tables / "table2.csv")
    assert len(table2) >= 2
    rec06 = smoke_run.records("06")
    overview = pd.read_csv(smoke_run.paths.tables / "sanity_overview.csv")
    assert rec06["sanity"] == {f"{r.model}/{r.split}": r.status for r in overview.itertuples()}
    assert set(overview["status"]) <= {"pass", "borderline", "FAIL"} and len(overview) >= 4  # 2 models x 2 splits
    assert rec06["sanity_borderline"] == int((overview["status"] == "borderline").sum())
    assert "On synthetic data" in rec06["verdict_sentence"]  # after a "Caution: ..." when a flag fails
    # one split for the verdict, the baseline record and the paired comparisons; every comparison paired, with n
    paired = pd.read_csv(smoke_run.paths.tables / "paired_comparisons.csv")
    assert rec06["csa_baseline_split"] == rec06["fair_split"] and set(paired["split"]) == {rec06["fair_split"]}
    assert (paired["n_wrists"] > 0).all() and (paired["n_participants"] <= paired["n_wrists"]).all()
    cnn_vs_csa = paired[(paired["first"] == "transverse CNN") & paired["second"].str.startswith("CSA")].iloc[0]
    stored = rec06["paired_transverse_cnn_minus_csa_thresholds_transverse"]
    assert stored["n_wrists"] == cnn_vs_csa["n_wrists"] and stored["difference"] == round(
        cnn_vs_csa["accuracy_first"] - cnn_vs_csa["accuracy_second"], 4)
    assert f"{stored['n_wrists']} wrists of {stored['n_participants']} participants" in rec06["verdict_sentence"]
    baseline = pd.read_csv(smoke_run.paths.tables / "csa_baseline.csv")
    fair_csa = baseline[baseline["model"].str.startswith("CSA") & (baseline["split"] == rec06["fair_split"])
                        & (baseline["metric"] == "accuracy")]
    assert rec06["csa_baseline_accuracy"] == round(fair_csa["estimate"].item(), 4)
    assert "in 10" in rec06["meaning"]["accuracy"] and "simulator decides" in rec06["meaning"]["csa"]
    warnings = json.loads((smoke_run.paths.report / "warnings.json").read_text()) if (
        smoke_run.paths.report / "warnings.json").exists() else {}
    assert len(warnings.get("06", [])) == rec06["sanity_failed"]


@pytest.mark.notebooks
def test_smoke_synthetic_videos_are_not_cut_and_the_manifest_names_the_data(smoke_run) -> None:
    rec02 = smoke_run.records("02")
    assert rec02["n_cut_to_region"] == 0 and rec02["n_text_videos"] == 0  # B-mode edge to edge, no text
    assert (smoke_run.paths.report / "figures" / "image_regions.png").exists()
    assert smoke_run.manifest["data"]["name"] == "smoke" and "dir" not in smoke_run.manifest["data"]


@pytest.mark.notebooks
def test_smoke_segmenter_choice_is_recorded_tabled_and_warned_alike(smoke_run) -> None:
    """Stage 03 says which weights cut the crops, and why, in its records, tables/segmenter and the index."""
    import pandas as pd

    from ctslib.nerve.finetune import MAX_DICE_DROP
    rec = smoke_run.records("03")
    assert rec["seg_mode"] == "finetune"  # the synthetic smoke data have masks
    kept = rec["seg_fine_tuned_kept"]
    assert kept == (rec["seg_val_score_fine_tuned"] > rec["seg_val_score_shipped"]  # ctslib.nerve.finetune.choose_weights
                    and rec["seg_val_dice_fine_tuned"] >= rec["seg_val_dice_shipped"] - MAX_DICE_DROP)
    assert rec["seg_val_participants"] >= 1 and rec["seg_val_nerve_frames"] >= 1
    assert rec["seg_selection_reason"] in rec["seg_mode_text"]
    table = pd.read_csv(smoke_run.paths.tables / "segmenter.csv")
    assert table["kept"].tolist() == ["fine-tuned" if kept else "shipped"]
    metrics = pd.read_csv(smoke_run.paths.tables / "segmentation_metrics.csv")
    used = metrics[metrics["used"].astype(bool) & (metrics["plane"] == "all")]
    assert used["model"].tolist() == ["fine-tuned" if kept else "shipped (before fine-tuning)"]
    assert rec["seg_dice_heldout"] == pytest.approx(used["dice_mean"].iloc[0])
    warnings = json.loads((smoke_run.paths.report / "warnings.json").read_text()).get("03", [])
    shipped_warnings = [w for w in warnings if w.startswith("segmenter: the shipped weights were kept")]
    assert len(shipped_warnings) == (0 if kept else 1)


@pytest.mark.notebooks
def test_smoke_realism_section_compares_with_usgra_when_present(smoke_run) -> None:
    """Notebook 00 tables synthetic vs real statistics and the domain AUC, or skips cleanly without usgra-seg."""
    import pandas as pd

    from ctslib.common.paths import USGRA_SEG_DIR

    rec = smoke_run.records("00")
    table_path = smoke_run.paths.tables / "realism.csv"
    if not (USGRA_SEG_DIR / "dataset").is_dir():
        assert "realism_domain_auc" not in rec and not table_path.exists()
        return
    table = pd.read_csv(table_path)
    assert len(table) == 13 and table[["synthetic", "real", "gap"]].notna().all().all()
    assert (smoke_run.paths.tables / "realism.md").read_text(encoding="utf-8").startswith("**Synthetic frames vs real")
    assert rec["realism_n_real"] == 244 and 0 < rec["realism_n_synthetic"] <= 300
    assert 0.5 < rec["realism_domain_auc"] <= 1.0 and rec["realism_domain_auc_sd"] >= 0
    assert (smoke_run.paths.figures / "domain_extremes.png").stat().st_size > 0
