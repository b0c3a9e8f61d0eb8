"""The report index and the notebook pages as a reader meets them: scannable, linked, rounded one way.

Unit tests render the index of a small report folder built here; the ``notebooks`` tests check the
session smoke report (fixture ``smoke_run``). HTML is parsed with the standard library only.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from ctslib.common.paths import RunPaths  # noqa: E402
from ctslib.report.runner import StageResult  # noqa: E402


class Page(HTMLParser):
    """Ids, links (href/src), meta tags and the text of the tables of one HTML page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.links: list[str] = []
        self.meta: list[dict[str, str | None]] = []
        self.cells: list[str] = []
        self._in_cell = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("id"):
            self.ids.append(str(found["id"]))
        for key in ("href", "src"):
            if found.get(key):
                self.links.append(str(found[key]))
        if tag == "meta":
            self.meta.append(found)
        self._in_cell = tag == "td"

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._in_cell = False

    def handle_data(self, data: str) -> None:
        if self._in_cell:
            self.cells.append(data.strip())


def broken_links(page: Path) -> list[str]:
    """Links of ``page`` that point at no file, or at an anchor its target page does not have."""
    parsed, bad = Page(page.read_text(encoding="utf-8")), []
    for link in parsed.links:
        url = urlsplit(link)
        if url.scheme == "data":
            continue
        if url.scheme or url.netloc:  # the report works offline: nothing may point outside it
            bad.append(link)
            continue
        target = page if not url.path else page.parent / unquote(url.path)
        if not target.is_file():
            bad.append(link)
        elif url.fragment and target.suffix == ".html" and url.fragment not in Page(target.read_text(encoding="utf-8")).ids:
            bad.append(link)
    return bad


def duplicates(ids: list[str]) -> set[str]:
    return {i for i in ids if ids.count(i) > 1}


def decimal_counts(cells: list[str]) -> list[str]:
    """Cells that show a count (a whole number of 2 or more) with a metric's decimals, e.g. "5922.000"."""
    return [c for c in cells if re.fullmatch(r"\d+\.000+", c) and float(c) >= 2]


# ----------------------------------------------------------------------------- the rounding rule
@pytest.mark.parametrize(("value", "name", "shown"), [
    (5922.0, "", "5922"),                    # a count stored as float
    (11895.0, "paper_all", "11\u2009895"),   # the paper's count, thin-space thousands
    (0.92, "paper: accuracy (frame split)", "0.92"),  # the paper's own digits, not 0.920
    (113.8, "generation_seconds", "113.8"),  # seconds with one decimal
    (0.9968051314353943, "seg_dice", "0.997"),
    (1.0, "accuracy", "1.000"),              # a whole metric stays a metric
    (28.6111, "transverse", "28.611"),
    (3, "n", "3"),
    (0.138433, "grouped_seconds_per_epoch", "0.138"),  # short times keep their digits
])
def test_one_rounding_rule(value, name, shown) -> None:
    from ctslib.report.index import format_cell

    assert format_cell(value, name=name) == shown


def test_nan_is_never_printed_bare() -> None:
    from ctslib.common.display import format_number
    from ctslib.report.index import format_cell, shown_record

    assert format_cell(float("nan")) == "–"
    assert format_cell(float("nan"), never_predicted=True) == "never predicted"
    assert format_number(float("nan"), nan="NaN") == "NaN"
    assert shown_record({"dice": 0.12345678, "frames": 12.0}) == '{"dice": 0.123, "frames": 12}'
    assert shown_record(0.315789, "paper_best_val_accuracy") == "0.316"  # a split's name, not the paper's value


def test_notebook_tables_use_the_rule(monkeypatch) -> None:
    from ctslib.common.display import use_display_rule

    with pd.option_context("display.float_format", None):
        use_display_rule()
        text = pd.DataFrame({"frames": [360.0, 28.611111], "dice": [0.9968051314353943, np.nan]}).to_string()
    assert "360 " in text + " " and "360.0" not in text and "0.997" in text and "0.9968" not in text


def test_record_prints_rounded_but_stores_full_precision(tmp_path, capsys) -> None:
    from ctslib.common.io import read_records, record

    record("seg_dice", 0.9968051314353943, tmp_path / "record.json")
    assert "record: seg_dice = 0.997" in capsys.readouterr().out
    assert read_records(tmp_path / "record.json")["seg_dice"] == 0.9968051314353943


# ----------------------------------------------------------------------------- a small report folder
STAGE = "02_frame_extraction_qc"

WARNINGS = {
    "03": [
        "P001_L transverse: no nerve found in any of its 7 kept frames (the video gives no crops)",
        "P004_R transverse: no nerve found in any of its 5 kept frames (the video gives no crops)",
        "P002_L longitudinal: no nerve found in 4 of 9 kept frames (44%, over 30%)",
    ],
    "06": ["transverse model, grouped split: sanity flags failed (never_predicted): normal never predicted"],
}


def _png(path: Path) -> None:
    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1])
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def _report(tmp_path: Path) -> tuple[RunPaths, Path]:
    """A report of one stage: a table and a figure of the same name, a 40-row table, a verdict, warnings."""
    from ctslib.common.io import write_table

    paths = RunPaths(tmp_path / "work", tmp_path / "report")
    tables = paths.report / "tables"
    write_table(pd.DataFrame({"step": ["extracted", "kept", "kept %"], "transverse": [360.0, 103.0, 28.6111],
                              "paper_all": [11895.0, 2518.0, 21.1686]}), "qc_funnel", tables, caption="QC funnel")
    write_table(pd.DataFrame({"wrist_id": [f"P{i:03d}_L" for i in range(40)], "kept_frames": np.arange(40) * 1.0,
                              "no_nerve_share": np.linspace(0, 1, 40)}), "crop_funnel_by_video", tables,
                caption="Per video")
    write_table(pd.DataFrame({"model": ["transverse CNN"], "paper: accuracy (frame split)": [0.92],
                              "ours: accuracy, grouped split (frames)": ["0.316 [0.000, 0.736]"]}), "verdict", tables,
                caption="Verdict")
    pd.DataFrame({"model": ["transverse", "longitudinal"], "split": ["grouped", "grouped"],
                  "status": ["FAIL", "borderline"], "why": ["never predicted", "interval includes the majority rate"]}
                 ).to_csv(tables / "sanity_overview.csv", index=False)
    _png(paths.report / "figures" / "qc_funnel.png")
    (paths.report / f"{STAGE}.html").write_text('<a href="index.html">back</a>', encoding="utf-8")
    (paths.report / "warnings.json").write_text(json.dumps(WARNINGS), encoding="utf-8")
    data = tmp_path / "data"
    data.mkdir()
    return paths, data


def _index(tmp_path: Path) -> Path:
    import time

    from ctslib.report.index import build_manifest, write_report

    paths, data = _report(tmp_path)
    outputs = ["tables/qc_funnel.csv", "figures/qc_funnel.png", "tables/crop_funnel_by_video.csv", "tables/verdict.csv"]
    results = [StageResult(key="02", notebook=f"{STAGE}.ipynb", status="ran", seconds=113.8, outputs=outputs),
               StageResult(key="03", notebook="03_nerve_cropping.ipynb", status="failed", error="StageError: x")]
    manifest = build_manifest(profile="smoke", parameters={}, data_dir=data, data_hash=None, results=results,
                              paths=paths, started=time.time(), git={"commit": "abc", "dirty": False})
    return write_report(paths, manifest, results)


def test_index_is_scannable_and_self_consistent(tmp_path) -> None:
    index = _index(tmp_path)
    text = index.read_text(encoding="utf-8")
    page = Page(text)
    assert any(m.get("name") == "viewport" and "width=device-width" in str(m.get("content")) for m in page.meta)
    assert not duplicates(page.ids), duplicates(page.ids)
    assert {"table-qc_funnel", "figure-qc_funnel"} <= set(page.ids)
    assert broken_links(index) == []
    # the failed stage has no page: nothing links to one
    assert "03_nerve_cropping.html" not in text
    # contents right after the verdict, before the warnings
    assert text.index('id="verdict"') < text.index('id="contents"') < text.index('id="warnings"') < text.index('id="stages"')
    # wide tables scroll inside their own box
    assert text.count('<div class="scroll">') >= 4 and ".scroll{overflow-x:auto" in text


def test_index_shows_integers_as_integers_and_the_papers_digits(tmp_path) -> None:
    page = Page(_index(tmp_path).read_text(encoding="utf-8"))
    assert not decimal_counts(page.cells)
    assert {"360", "103", "28.611", "11\u2009895", "21.1686", "0.92", "113.8"} <= set(page.cells)
    assert "0.920" not in page.cells


def test_long_tables_are_folded_with_their_row_count(tmp_path) -> None:
    text = _index(tmp_path).read_text(encoding="utf-8")
    long_part = text[text.index('id="table-crop_funnel_by_video"'):]
    assert long_part.index("<details") < long_part.index("<table")
    assert "40 rows" in long_part[:long_part.index("<table")]
    short_part = text[text.index('id="table-qc_funnel"'):text.index('id="figure-qc_funnel"')]
    assert "<details" not in short_part


def test_warnings_are_one_folded_amber_block_grouped_by_kind(tmp_path) -> None:
    text = _index(tmp_path).read_text(encoding="utf-8")
    assert text.count('class="warnings"') == 1 and '<details class="warnings" id="warnings">' in text
    block = text[text.index('id="warnings"'):text.index('id="stages"')]
    assert "2 wrist(s) lost their transverse plane" in block
    assert "1 model/split result(s) failed a sanity flag" in block
    assert all(m.split(":")[0] in block for messages in WARNINGS.values() for m in messages)  # none hidden
    assert 'class="bad"' not in block


def test_unknown_warnings_are_kept_not_dropped() -> None:
    from ctslib.report.index import warning_groups

    groups = warning_groups({"04": ["something nobody foresaw"], "03": WARNINGS["03"]})
    assert [g["kind"] for g in groups] == ["lost_plane", "few_nerves", "other-04"]
    assert groups[-1]["messages"] == ["something nobody foresaw"]


def test_borderline_flags_are_amber(tmp_path) -> None:
    text = _index(tmp_path).read_text(encoding="utf-8")
    assert '<td class="borderline">borderline</td>' in text and ".borderline{" in text
    assert '<td class="bad">FAIL</td>' in text


# ----------------------------------------------------------------------------- notebook pages
def _notebook_with_figure(report: Path, saved: bool) -> Path:
    import base64

    import nbformat

    from ctslib.common.io import FIGURE_FILE_KEY

    png = report / "figures" / "qc_funnel.png"
    _png(png)
    data = base64.b64encode(png.read_bytes()).decode()
    if not saved:
        png.unlink()
    cell = nbformat.v4.new_code_cell("save_figure(fig, 'qc_funnel', paths.figures)")
    cell.outputs = [
        nbformat.v4.new_output("display_data", data={"image/png": data, "text/plain": "<Image>"},
                               metadata={FIGURE_FILE_KEY: "figures/qc_funnel.png"}),
        nbformat.v4.new_output("stream", name="stderr", text=(
            "/venv/site-packages/tqdm/auto.py:21: TqdmWarning: IProgress not found.\n"
            "  from .autonotebook import tqdm as notebook_tqdm\n")),
    ]
    nb = nbformat.v4.new_notebook()
    nb.cells = [cell]
    path = report / "02_x.ipynb"
    nbformat.write(nb, path)
    return path


def test_pages_link_saved_figures_and_share_one_style_sheet(tmp_path) -> None:
    from ctslib.report.pages import export_html

    report = tmp_path / "report"
    executed = _notebook_with_figure(report, saved=True)
    export_html(executed, report / "02_x.html")
    page = (report / "02_x.html").read_text(encoding="utf-8")
    assert "data:image/png" not in page and 'src="figures/qc_funnel.png"' in page
    assert 'href="notebook.css"' in page and "jp-OutputArea" not in page.split("</head>")[0]  # lab style not inlined
    assert (report / "notebook.css").stat().st_size > 50_000  # JupyterLab's style, written once
    assert len(page) < 20_000
    assert "image/png" not in executed.read_text(encoding="utf-8")  # the .ipynb copy links the file too
    assert "autonotebook" not in page and "TqdmWarning" not in page
    assert set(broken_links(report / "02_x.html")) == {"index.html"}  # the index is written after the stages


def test_a_figure_without_its_file_stays_embedded(tmp_path) -> None:
    from ctslib.report.pages import export_html

    report = tmp_path / "report"
    executed = _notebook_with_figure(report, saved=False)
    export_html(executed, report / "02_x.html")
    assert "data:image/png" in (report / "02_x.html").read_text(encoding="utf-8")


# ----------------------------------------------------------------------------- figures
def test_synthetic_figures_say_so_in_their_title() -> None:
    from ctslib.common.display import SYNTHETIC_TAG, title_figure

    fig, _ = plt.subplots()
    assert SYNTHETIC_TAG in title_figure(fig, "QC funnel", "synthetic").get_suptitle()
    fig2, _ = plt.subplots()
    assert title_figure(fig2, "QC funnel", "real").get_suptitle() == "QC funnel"
    plt.close("all")


def test_cv_curves_are_a_mean_and_a_band_not_one_line_per_fold() -> None:
    from matplotlib.collections import PolyCollection

    from ctslib.severity.train import training_curves_figure

    rows = [{"split": f"cv{k}", "epoch": e, "accuracy": 0.5 + 0.01 * e + 0.02 * k, "val_accuracy": 0.4 + 0.01 * k,
             "loss": 1.0 - 0.01 * e, "val_loss": 1.2 + 0.01 * k} for k in range(10) for e in range(1, 6)]
    fig = training_curves_figure(pd.DataFrame(rows), title="CV")
    for ax in fig.axes:
        assert len(ax.get_lines()) == 2 and len(ax.get_legend().get_texts()) == 2
        assert sum(isinstance(c, PolyCollection) for c in ax.collections) == 2
    accuracy = fig.axes[0].get_lines()[0].get_ydata()
    assert np.allclose(accuracy, [0.5 + 0.01 * e + 0.09 for e in range(1, 6)])  # mean over the 10 folds
    plt.close(fig)


def test_crop_examples_name_their_marks() -> None:
    from ctslib.nerve.crop_figures import crop_legend_handles

    labels = [h.get_label() for h in crop_legend_handles(with_truth=True)]
    assert labels == ["predicted nerve outline", "true nerve outline (mask)", "crop box", "crop centre"]
    assert "true nerve outline (mask)" not in [h.get_label() for h in crop_legend_handles(with_truth=False)]


def test_montage_labels_wrists_with_the_tables_pseudonyms() -> None:
    from ctslib.synth.summary import Example, plot_montage, shown_video

    assert shown_video("S001_L_transverse", {"S001": "P001"}) == "P001_L_transverse"
    frame = np.zeros((8, 8), np.uint8)
    fig = plot_montage([Example("mild", "transverse", "S007_R_transverse", 3, frame, frame)], 0.1, {"S007": "P007"})
    titles = [ax.get_title() for ax in fig.axes]
    assert any("P007_R_transverse" in t for t in titles) and not any("S007" in t for t in titles)
    plt.close(fig)


def test_gradcam_uses_a_colour_blind_safe_map_with_a_labelled_bar_and_a_caption() -> None:
    from ctslib.severity.gradcam import SaliencyExample
    from ctslib.evaluate.plots import GRADCAM_CAPTION, GRADCAM_CMAP, gradcam_figure

    example = SaliencyExample(model="transverse", frame_id="f1", image=np.zeros((8, 8)),
                              cam=np.linspace(0, 1, 64).reshape(8, 8), y_true=1, y_pred=1, probability=0.8)
    fig = gradcam_figure([example], subtitle="synthetic data")
    overlays = [im for ax in fig.axes for im in ax.get_images()][1::2]
    assert overlays and all(im.get_cmap().name == GRADCAM_CMAP != "jet" for im in overlays)
    bar = fig.axes[-1]
    assert "evidence" in bar.get_ylabel()
    assert any(GRADCAM_CAPTION == t.get_text() for t in fig.texts)
    plt.close(fig)


# ----------------------------------------------------------------------------- the smoke report
@pytest.mark.notebooks
def test_smoke_report_pages_resolve_and_read_well(smoke_run) -> None:
    smoke_run.require_ok()
    report = smoke_run.paths.report
    pages = sorted(report.glob("*.html"))
    assert len(pages) == 8
    for page in pages:
        parsed = Page(page.read_text(encoding="utf-8"))
        assert any(m.get("name") == "viewport" for m in parsed.meta), page.name
        assert not duplicates(parsed.ids), (page.name, duplicates(parsed.ids))
        assert broken_links(page) == [], page.name
    index = Page((report / "index.html").read_text(encoding="utf-8"))
    assert not decimal_counts(index.cells)


@pytest.mark.notebooks
def test_smoke_report_stores_images_and_style_once(smoke_run) -> None:
    smoke_run.require_ok()
    report = smoke_run.paths.report
    for page in sorted(report.glob("0*.html")):
        text = page.read_text(encoding="utf-8")
        head = text.split("</head>")[0]
        assert 'href="notebook.css"' in head and "jp-OutputArea" not in head and len(head) < 40_000, page.name
        assert "autonotebook" not in text, page.name
        assert not re.search(r"\b0\.\d{7,}\b", text), (page.name, re.search(r"\b0\.\d{7,}\b", text))
    for name in ("synthetic_montage", "qc_funnel", "crop_examples", "figure4"):
        assert any(f'src="figures/{name}.png"' in p.read_text(encoding="utf-8") for p in report.glob("0*.html")), name
    for notebook in report.glob("0*.ipynb"):
        for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
            for out in cell.get("outputs", []):
                if "ctslib_figure" in out.get("metadata", {}):
                    assert "image/png" not in out["data"], notebook.name  # linked, not a second copy


def test_tables_with_holes_show_a_dash_not_nan() -> None:
    from ctslib.common.display import shown_table

    html = shown_table(pd.DataFrame({"step": ["extracted", "kept %"], "transverse": [360.0, 28.6111],
                                     "paper_all": [np.nan, 21.1686]})).to_html()
    assert "NaN" not in html and "nan" not in html and "–" in html
    assert ">360<" in html and ">28.611<" in html and ">21.1686<" in html  # the paper's digits, as on the index


def test_verdict_lead_keeps_the_opening_and_the_csa_comparison_and_folds_the_rest():
    from ctslib.report.index import lead_and_rest

    text = ("Caution: 1 of 4 results fail a flag. On synthetic data the CNN scores 0.921 [0.800, 0.950]. "
            "Against the CSA baseline: -0.130 [-0.240, -0.010]. These are synthetic data.")
    lead, rest = lead_and_rest(text)
    assert lead == ("Caution: 1 of 4 results fail a flag. On synthetic data the CNN scores 0.921 [0.800, 0.950]. "
                    "Against the CSA baseline: -0.130 [-0.240, -0.010].")  # the clinical comparison stays in view
    assert rest == "These are synthetic data."
    assert lead_and_rest("One sentence only.") == ("One sentence only.", "")
    assert lead_and_rest(None) == ("", "")
