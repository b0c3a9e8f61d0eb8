"""Stage 06 as a sequence of verbs: notebook 06 opens the stage, then calls one verb per table or figure.

``open_stage`` -> ``read_inputs`` -> ``frame_level_metrics`` -> ``sanity_flags`` -> ``paper_table2`` ->
``confusion_figures`` -> ``paper_comparison`` -> ``frame_metrics_tables`` -> ``cv_fold_tables`` ->
``seed_spread`` -> ``wrist_level`` -> ``both_planes`` -> ``leakage`` -> ``csa_thresholds`` -> ``csa_baseline``
-> ``paired_comparisons`` -> ``saliency_maps`` -> ``verdict`` -> ``what_this_means`` -> ``summary`` ->
``headlines`` (recorded by the notebook).

Each verb prints what the notebook shows and writes its table or figure; the numbers come from the
modules beside this one.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from ctslib import PLANES
from ctslib.common.display import source_subtitle
from ctslib.common.errors import StageError
from ctslib.common.io import StageNotes, clear_report_warnings, save_figure, write_table
from ctslib.common.paths import RunPaths
from ctslib.common.seed import set_determinism
from ctslib.data.acquisition import Acquisition, read_acquisition
from ctslib.frames.jobs import read_wrists
from ctslib.evaluate import plots
from ctslib.evaluate.csa import csa_baseline_cv, csa_baseline_predictions, csa_thresholds_table, wrist_csa
from ctslib.evaluate.fusion import fuse_planes, wrist_probabilities
from ctslib.evaluate.meaning import clinical_confusion, meaning_record
from ctslib.evaluate.metrics import CV_POOLED, EmptyClassWarning, accuracy_sentence, available_splits, confusion, \
    select_split, split_members
from ctslib.evaluate.paired import comparison_pairs, paired_phrase, paired_table, slug, split_words
from ctslib.evaluate.prose import fair_split, flags_sentence, leakage_sentence, seed_sentence, summary_table, \
    verdict_sentence, verdict_table
from ctslib.evaluate.readers import assert_grouped, check_grades_against_wrists, describe_source, grouped_splits, \
    read_predictions, read_split, simulator_csa
from ctslib.evaluate.tables import PAPER_RESULTS, cv_fold_metrics, cv_fold_summary, evaluate, headline, \
    leakage_table, paper_vs_reproduction, seed_variation, table2
from ctslib.severity import sanity
from ctslib.severity.inputs import read_crops

STATUS_STYLE: dict[str, str] = {sanity.FAIL: "color:#b00020;font-weight:bold",
                                sanity.BORDERLINE: "color:#8a5a00;font-weight:bold"}
"""CSS of the sanity overview's status cell: red for FAIL, amber for borderline."""


@dataclass(frozen=True)
class EvaluationStage(StageNotes):
    """Stage 06's folders, data source and the bootstrap settings every metric uses."""

    key: ClassVar[str] = "06"
    paths: RunPaths
    data_dir: Path
    acquisition: Acquisition
    seed: int
    n_boot: int
    ci: float

    @property
    def source(self) -> str:
        """"synthetic" or "real" (``acquisition.json``)."""
        return self.acquisition.source

    @property
    def source_words(self) -> str:
        """The data source in words, for tables and captions."""
        return describe_source(self.acquisition)

    @property
    def subtitle(self) -> str | None:
        """Subtitle of every figure: says when the data are synthetic."""
        return source_subtitle(self.source)

    def evaluate(self, tables: dict[str, pd.DataFrame], splits: list[str], level: str) -> pd.DataFrame:
        """Every metric with this stage's participant-bootstrap intervals (``tables.evaluate``)."""
        return evaluate(tables, splits, level=level, n_boot=self.n_boot, seed=self.seed, ci=self.ci)


@dataclass(frozen=True)
class Inputs:
    """What stages 01, 04 and 05 handed over, checked, and the splits evaluated on them."""

    wrists: pd.DataFrame
    predictions: dict[str, pd.DataFrame]
    splits: dict[str, pd.DataFrame]
    evaluated: list[str]

    @property
    def fair_split(self) -> str:
        """The split whose numbers estimate accuracy on new participants (``prose.fair_split``)."""
        return fair_split(self.evaluated)


def open_stage(data_dir: str | Path, work_dir: str | Path, report_dir: str | Path, *, seed: int, n_boot: int,
               ci: float) -> EvaluationStage:
    """Seed everything, check stages 01, 03, 04 and 05 ran, and say which data this stage evaluates.

    Raises:
        StageError: a hand-off file is missing, naming the notebook that writes it.
    """
    paths = RunPaths(Path(work_dir), Path(report_dir))
    set_determinism(seed)
    clear_report_warnings("06", paths.report)  # this run's flags replace an earlier run's
    pd.set_option("display.width", 200)
    warnings.simplefilter("always", EmptyClassWarning)  # name every grade missing from a validation set
    needed = {
        "01_cohort_ncs_labelling": [paths.wrists_csv],
        "03_nerve_cropping": [paths.crops_csv],
        **{f"{paths.model_stage(plane)}_{plane}_model": [paths.predictions_csv(plane), paths.split_csv(plane)]
           for plane in PLANES},
    }
    for notebook, files in needed.items():
        missing = [str(f) for f in files if not f.exists()]
        if missing:
            raise StageError(f"missing {missing}: run notebooks/{notebook}.ipynb first")
    stage = EvaluationStage(paths, Path(data_dir), read_acquisition(data_dir), seed, n_boot, ci)
    print("data source:", stage.source_words)
    if stage.source == "synthetic":
        print("SYNTHETIC DATA: every number below validates the pipeline, not the clinical claim.")
    return stage


def read_inputs(stage: EvaluationStage, splits: list[str]) -> Inputs:
    """Read and check every model's predictions and splits; keep the ``splits`` some model has.

    Raises:
        StageError: a "grouped" split puts a participant on both sides.
        InputError: a prediction's grade differs from its wrist's NCS grade in wrists.csv.
    """
    paths = stage.paths
    wrists = read_wrists(paths.wrists_csv)
    predictions, split_tables = {}, {}
    for plane in PLANES:
        predictions[plane] = read_predictions(paths.predictions_csv(plane))
        split_tables[plane] = read_split(paths.split_csv(plane))
        assert_grouped(split_tables[plane])
        check_grades_against_wrists(predictions[plane], wrists, paths.predictions_csv(plane))
        val = predictions[plane][predictions[plane]["subset"] == "val"]
        print(f"{plane}: splits {available_splits(val)}; grouped splits checked: {grouped_splits(split_tables[plane])}")
    evaluated = [s for s in splits if any(s in available_splits(p) for p in predictions.values())]
    print("evaluated splits:", evaluated, "| not found:", sorted(set(splits) - set(evaluated)) or "none")
    inputs = Inputs(wrists, predictions, split_tables, evaluated)
    print("estimate for new participants comes from:", inputs.fair_split)
    return inputs


def frame_level_metrics(stage: EvaluationStage, inputs: Inputs) -> pd.DataFrame:
    """Every frame-level metric with its interval, per model and evaluated split (tabled by ``frame_metrics_tables``)."""
    return stage.evaluate(inputs.predictions, inputs.evaluated, "frame")


def sanity_flags(stage: EvaluationStage, inputs: Inputs, frame_metrics: pd.DataFrame) -> pd.DataFrame:
    """Table the sanity flags of every model and split; every failure goes to the report's warnings.

    Returns the overview, one line per model and split (``styled_flags`` colours it for display).
    """
    members = {s: split_members(pd.concat(inputs.predictions.values()), s) for s in inputs.evaluated}
    flags = sanity.flag_table(inputs.predictions, members,
                              accuracy_intervals=sanity.accuracy_intervals(frame_metrics))
    overview = sanity.flag_overview(flags)
    for message in sanity.failure_messages(flags):
        stage.warn(message)
    write_table(flags, "sanity_flags", stage.paths.tables, floatfmt=".3f",
                caption="Sanity flags per model, split and check (failed = True: the check failed; value vs limit).")
    write_table(overview, "sanity_overview", stage.paths.tables, caption="Sanity flags: one line per model and split.")
    print("What this shows:", flags_sentence(overview))
    return overview


def styled_flags(overview: pd.DataFrame) -> Any:
    """The sanity overview with its status coloured (``STATUS_STYLE``), for display."""
    return overview.style.map(lambda v: STATUS_STYLE.get(v, ""), subset=["status"])


def paper_table2(stage: EvaluationStage, inputs: Inputs, *, split: str) -> pd.DataFrame:
    """The paper's Table 2 on ``split``'s validation set."""
    t2 = write_table(table2(inputs.predictions, split=split), "table2", stage.paths.tables, floatfmt=".3f",
                     caption=f"Table 2. Validation results on the '{split}' split ({stage.source_words}).")
    print("What this shows:", accuracy_sentence(inputs.predictions, [split, inputs.fair_split]))
    return t2


def confusion_figures(stage: EvaluationStage, inputs: Inputs, *, split: str) -> list[Path]:
    """The paper's Figure 4 (confusion matrices on ``split``) and the same on the fair split."""
    fair = inputs.fair_split
    matrices: dict[str, dict[str, Any]] = {split: {}, fair: {}}
    for plane, table in inputs.predictions.items():
        for name in (split, fair):
            rows = select_split(table, name)
            matrices[name][f"{plane.capitalize()} model"] = confusion(rows["y_true"], rows["y_pred"])
    fair_words = "grouped CV, folds pooled" if fair == CV_POOLED else "participant-grouped split"
    figures = [
        (matrices[split], f"Figure 4. Confusion matrices, '{split}' split", "figure4"),
        (matrices[fair], f"Confusion matrices, '{fair}' ({fair_words})", "figure4_cv"),
    ]
    return [save_figure(plots.confusion_matrices_figure(m, suptitle=title, subtitle=stage.subtitle), name,
                        stage.paths.figures) for m, title, name in figures]


def paper_comparison(stage: EvaluationStage, inputs: Inputs, *, split: str) -> pd.DataFrame:
    """The published results beside this run's (``tables.PAPER_RESULTS``)."""
    pvr = write_table(paper_vs_reproduction(inputs.predictions, stage.source_words, split=split),
                      "paper_vs_reproduction", stage.paths.tables, floatfmt=".3f",
                      caption="Published results (paper) beside this run's; data source in the last column.")
    published = " and ".join(f"{PAPER_RESULTS[plane]['accuracy']:.2f} ({plane})" for plane in PLANES)
    print("What this shows:", accuracy_sentence(inputs.predictions, [split]),
          f"The paper reported {published} on its frame split.")
    return pvr


def frame_metrics_tables(stage: EvaluationStage, inputs: Inputs, frame_metrics: pd.DataFrame) -> pd.DataFrame:
    """Table every frame-level metric with its interval; returns the headline table."""
    ci = f"{stage.ci:.0%}"
    write_table(frame_metrics, "metrics_frame_level", stage.paths.tables, floatfmt=".3f",
                caption=f"Frame-level metrics, {ci} participant-bootstrap intervals ({stage.n_boot} resamples).")
    frame_headline = write_table(headline(frame_metrics), "metrics_frame_headline", stage.paths.tables,
                                 caption=f"Frame level, estimate [{ci} CI]; n = validation frames.")
    print("What this shows:", accuracy_sentence(inputs.predictions, inputs.evaluated))
    return frame_headline


def cv_fold_tables(stage: EvaluationStage, inputs: Inputs) -> pd.DataFrame | None:
    """Each grouped CV fold on its own and the mean ± SD over folds; None without CV folds."""
    cv_folds = cv_fold_metrics(inputs.predictions)
    if not len(cv_folds):
        print("no grouped CV folds in the predictions (stage 04/05 ran without them)")
        return None
    write_table(cv_folds, "metrics_cv_folds", stage.paths.tables, floatfmt=".3f",
                caption="Each grouped CV fold on its own (no intervals: see the pooled 'cv' rows).")
    fold_summary = write_table(cv_fold_summary(cv_folds), "metrics_cv_fold_summary", stage.paths.tables, floatfmt=".3f",
                               caption="Grouped CV: mean and SD over folds (each fold's validation participants differ).")
    for _, row in fold_summary.iterrows():
        print(f"What this shows: {row['model']} accuracy {row['accuracy_mean']:.3f} ± {row['accuracy_sd']:.3f} "
              f"over {int(row['folds'])} folds (mean ± SD)")
    return fold_summary


def seed_spread(stage: EvaluationStage, inputs: Inputs, frame_metrics: pd.DataFrame) -> pd.DataFrame:
    """Training variance over seeds beside the bootstrap's sampling variance (a table when several seeds ran)."""
    variation = seed_variation(inputs.predictions, inputs.evaluated, frame_metrics=frame_metrics)
    if len(variation):
        write_table(variation, "seed_variation", stage.paths.tables, floatfmt=".3f",
                    caption="Training variance (seed SD) beside sampling variance (bootstrap CI of the study seed).")
    print("What this shows:", seed_sentence(variation, frame_metrics))
    return variation


@dataclass(frozen=True)
class WristLevel:
    """Wrist-level predictions and metrics of each plane, and of both planes fused when asked."""

    tables: dict[str, pd.DataFrame]
    metrics: pd.DataFrame
    fused: pd.DataFrame | None = None
    fused_metrics: pd.DataFrame | None = None

    @property
    def all_metrics(self) -> pd.DataFrame:
        """Each plane's wrist metrics, then the fused ones."""
        return self.metrics if self.fused_metrics is None else pd.concat([self.metrics, self.fused_metrics])


def wrist_level(stage: EvaluationStage, inputs: Inputs) -> WristLevel:
    """Table each plane's wrist-level metrics (mean softmax over a wrist's validation frames)."""
    tables = {plane: wrist_probabilities(table, stage.paths.predictions_csv(plane))
              for plane, table in inputs.predictions.items()}
    metrics = write_table(stage.evaluate(tables, inputs.evaluated, "wrist"), "metrics_wrist_level", stage.paths.tables,
                          floatfmt=".3f",
                          caption="Wrist-level metrics (mean softmax over a wrist's validation frames); n = wrists.")
    print("What this shows:",
          accuracy_sentence(tables, inputs.evaluated).replace("Accuracy", "Wrist-level accuracy", 1))
    return WristLevel(tables, metrics)


def both_planes(stage: EvaluationStage, inputs: Inputs, wrists: WristLevel) -> WristLevel:
    """Add the wrists graded by the mean of both planes' probabilities, tabled."""
    fused = fuse_planes(wrists.tables["transverse"], wrists.tables["longitudinal"])
    for split in inputs.evaluated:
        per_plane = {p: len(select_split(w, split)) for p, w in wrists.tables.items()}
        print(f"{split}: {len(select_split(fused, split))} wrists validated in both planes "
              f"(transverse {per_plane['transverse']}, longitudinal {per_plane['longitudinal']})")
    fused_metrics = write_table(stage.evaluate({"both planes": fused}, inputs.evaluated, "wrist"), "metrics_wrist_fused",
                                stage.paths.tables, floatfmt=".3f",
                                caption="Wrists graded by the mean of both planes' probabilities; n = wrists.")
    return WristLevel(wrists.tables, wrists.metrics, fused, fused_metrics)


def leakage(stage: EvaluationStage, inputs: Inputs, frame_metrics: pd.DataFrame) -> pd.DataFrame:
    """Table and draw the leakage gap: frame-split minus grouped-split accuracy, with chance and majority rates."""
    gap = leakage_table(inputs.predictions, inputs.splits, n_boot=stage.n_boot, seed=stage.seed, ci=stage.ci)
    text = leakage_sentence(gap, stage.ci)
    write_table(gap, "leakage", stage.paths.tables, floatfmt=".3f", caption="Leakage gap. " + text)
    majority = {(plane, split): sanity.majority_rate(select_split(table, split)["y_true"])
                for plane, table in inputs.predictions.items() for split in inputs.evaluated
                if len(select_split(table, split))}
    save_figure(plots.leakage_figure(frame_metrics, gap, ci=stage.ci, majority=majority, subtitle=stage.subtitle),
                "leakage", stage.paths.figures)
    print("What this shows:", text)
    return gap


@dataclass(frozen=True)
class CsaBaseline:
    """The clinical baseline: validation wrists graded by CSA thresholds, per split it was fitted on."""

    name: str
    plane: str
    by_split: dict[str, pd.DataFrame]
    thresholds: list[float]
    fold_thresholds: pd.DataFrame | None = None


def csa_thresholds(stage: EvaluationStage, inputs: Inputs, *, plane: str, split: str, method: str,
                   max_candidates: int) -> CsaBaseline:
    """Fit the CSA thresholds on ``split``'s training participants (tabled), and on the fair split's if it differs.

    With grouped CV each fold gets thresholds fitted on its own training participants
    (``fold_thresholds``), so the baseline, like the CNNs, predicts every wrist once.
    """
    crops = read_crops(stage.paths.crops_csv, plane, stage.paths.work)
    per_wrist = wrist_csa(crops, plane, stage.paths.crops_csv)
    options = {"method": method, "max_candidates": max_candidates}
    val, thresholds, train = csa_baseline_predictions(per_wrist, inputs.splits[plane], split=split, **options)
    write_table(csa_thresholds_table(thresholds, train), "csa_thresholds", stage.paths.tables, floatfmt=".2f",
                caption=f"CSA thresholds (mm²) chosen on {len(train)} training wrists ({method}).")
    by_split, fold_thresholds, fair = {split: val}, None, inputs.fair_split
    if fair == CV_POOLED:
        by_split[fair], fold_thresholds = csa_baseline_cv(per_wrist, inputs.splits[plane], **options)
    elif fair not in by_split:  # the verdict compares on the fair split: the baseline needs it too
        by_split[fair] = csa_baseline_predictions(per_wrist, inputs.splits[plane], split=fair, **options)[0]
    return CsaBaseline(f"CSA thresholds ({plane})", plane, by_split, [float(t) for t in thresholds], fold_thresholds)


def csa_baseline(stage: EvaluationStage, wrists: WristLevel, csa: CsaBaseline) -> pd.DataFrame:
    """Table the CSA baseline beside the CNNs, each split on the validation wrists the baseline grades."""
    cnn_wrists = {f"{csa.plane} CNN": wrists.tables[csa.plane],
                  **({"both-plane CNN": wrists.fused} if wrists.fused is not None else {})}
    parts = []
    for split, baseline in csa.by_split.items():
        same = {csa.name: baseline, **{name: select_split(table, split).merge(baseline[["wrist_id"]], on="wrist_id")
                                       for name, table in cnn_wrists.items()}}
        parts.append(stage.evaluate(same, [split], "wrist"))
    return write_table(pd.concat(parts, ignore_index=True), "csa_baseline", stage.paths.tables, floatfmt=".3f",
                       caption=f"CSA-threshold baseline and the CNNs on the same validation wrists "
                               f"({', '.join(csa.by_split)}); for the difference with its paired interval see "
                               "paired_comparisons.")


def fair_arms(inputs: Inputs, wrists: WristLevel, csa: CsaBaseline) -> dict[str, pd.DataFrame]:
    """Each CNN's and the baseline's graded wrists on the fair split: the arms of the paired comparisons."""
    fair = inputs.fair_split
    arms = {f"{plane} CNN": select_split(wrists.tables[plane], fair) for plane in PLANES}
    if wrists.fused is not None:
        arms["both-plane CNN"] = select_split(wrists.fused, fair)
    arms[csa.name] = csa.by_split[fair]
    return arms


def paired_comparisons(stage: EvaluationStage, inputs: Inputs, arms: dict[str, pd.DataFrame],
                       csa: CsaBaseline) -> pd.DataFrame:
    """Table every CNN minus the baseline, and plane minus plane, with paired participant-bootstrap intervals."""
    fair = inputs.fair_split
    paired = paired_table(arms, comparison_pairs([n for n in arms if n != csa.name], [csa.name]), split=fair,
                          n_boot=stage.n_boot, seed=stage.seed, ci=stage.ci)
    write_table(paired, "paired_comparisons", stage.paths.tables, floatfmt=".3f",
                caption=f"Paired comparisons on {split_words(fair)}: accuracy of the first minus the second on "
                        f"the wrists both grade, {stage.ci:.0%} paired participant-bootstrap interval ({stage.n_boot} "
                        "resamples, the same participants for both); n = wrists and participants graded by both.")
    for _, row in paired.iterrows():
        print("What this shows:", paired_phrase(row), "->", row["reading"])
    return paired


def saliency_maps(stage: EvaluationStage, inputs: Inputs, *, split: str, per_grade: int) -> int:
    """Draw Grad-CAM maps of a few seeded validation crops per grade and model; returns how many."""
    import keras

    from ctslib.severity import gradcam

    examples = []
    for plane in PLANES:
        model_path = stage.paths.model_file(plane, split, "last")  # the model behind predictions.csv
        if not model_path.exists():
            print(f"no {model_path.name} for {plane}: skipped")
            continue
        model = keras.models.load_model(model_path, compile=False)
        chosen = gradcam.pick_examples(inputs.predictions[plane], split, per_grade, stage.seed, plane)
        examples += gradcam.saliency_examples(model, plane, chosen,
                                              read_crops(stage.paths.crops_csv, plane, stage.paths.work))
        print(f"{plane}: last conv layer '{gradcam.last_conv_layer(model)}', {len(chosen)} crops")
    if examples:
        save_figure(plots.gradcam_figure(examples, subtitle=stage.subtitle), "gradcam", stage.paths.figures)
    empty_maps = sum(e.cam.max() == 0 for e in examples)
    print(f"What this shows: {len(examples) - empty_maps} of {len(examples)} maps show positive evidence"
          + (f"; {empty_maps} are empty (the predicted grade's score does not rise with any region of the crop)"
             if empty_maps else ""))
    return len(examples)


def verdict(stage: EvaluationStage, *, frame_metrics: pd.DataFrame, wrists: WristLevel, csa_metrics: pd.DataFrame,
            flags: pd.DataFrame, paired: pd.DataFrame) -> str:
    """Table the verdict (paper vs ours vs new participants, and the baseline); returns its sentence."""
    table = verdict_table(frame_metrics, wrist_metrics=wrists.all_metrics, csa_metrics=csa_metrics)
    sentence = verdict_sentence(frame_metrics, source=stage.source, wrist_metrics=wrists.all_metrics,
                                csa_metrics=csa_metrics, flags=flags, paired=paired)
    write_table(table, "verdict", stage.paths.tables, caption=f"Verdict ({stage.ci:.0%} intervals). {sentence}")
    print("What this shows:", sentence)
    return sentence


def what_this_means(stage: EvaluationStage, inputs: Inputs, *, arms: dict[str, pd.DataFrame], csa: CsaBaseline,
                    wrists: WristLevel, variation: pd.DataFrame) -> dict[str, Any]:
    """The "What this means" box in plain words (``meaning.meaning_record``), from the fair split's numbers."""
    fair = inputs.fair_split
    metrics = wrists.all_metrics
    fair_wrists = metrics[(metrics["split"] == fair) & (metrics["metric"] == "accuracy")]
    csa_means, csa_sds = simulator_csa(stage.data_dir) if stage.source == "synthetic" else (None, None)
    baseline = arms[csa.name]
    return meaning_record(
        source=stage.source, split_text=split_words(fair),
        accuracies={name: (float((t["y_true"] == t["y_pred"]).mean()), len(t)) for name, t in arms.items()},
        confusions={f"{plane} CNN": clinical_confusion(select_split(table, fair)["y_true"],
                                                       select_split(table, fair)["y_pred"])
                    for plane, table in inputs.predictions.items()},
        csa_accuracy=float((baseline["y_true"] == baseline["y_pred"]).mean()),
        csa_means=csa_means, csa_sds=csa_sds,
        half_width=float(((fair_wrists["ci_high"] - fair_wrists["ci_low"]) / 2).max()) if len(fair_wrists) else None,
        seeds=int(variation["seeds"].max()) if len(variation) else 1,
        n_participants=int(inputs.wrists["participant_id"].nunique()))


def meaning_markdown(meaning: dict[str, Any]) -> str:
    """The "What this means" box as Markdown for the notebook."""
    lines = [meaning["accuracy"], *meaning["confusions"], meaning["csa"], meaning["real_data"]]
    return ("**What this means**\n\n" + "\n".join(f"- {line}" for line in lines)
            + "\n\n*Limitations of this run:* " + "; ".join(meaning["limitations"])
            + " (the index adds the recipe's deviations from the paper).")


def summary(stage: EvaluationStage, *, frame_metrics: pd.DataFrame, leakage_gap: pd.DataFrame, wrists: WristLevel,
            csa_metrics: pd.DataFrame, paired: pd.DataFrame) -> pd.DataFrame:
    """Table the headline numbers, ending with what they can support."""
    return write_table(summary_table(frame_metrics, source=stage.source, source_description=stage.source_words,
                                     leakage=leakage_gap, wrist_metrics=wrists.all_metrics, csa_metrics=csa_metrics,
                                     paired=paired),
                       "summary", stage.paths.tables, caption="Summary of the evaluation.")


HEADLINE_METRICS: tuple[str, ...] = ("accuracy", "balanced_accuracy", "kappa_quadratic")
"""Frame-level metrics recorded as ``<metric>_<model>_<split>``."""


def headlines(stage: EvaluationStage, inputs: Inputs, *, frame_metrics: pd.DataFrame, wrists: WristLevel,
              leakage_gap: pd.DataFrame, csa: CsaBaseline, csa_metrics: pd.DataFrame, paired: pd.DataFrame,
              n_examples: int, verdict_text: str, meaning: dict[str, Any], flags: pd.DataFrame) -> dict[str, Any]:
    """The stage's headline numbers, in the order they are recorded (read by the report index and the tests)."""
    fair = inputs.fair_split
    out: dict[str, Any] = {"data_source": stage.source, "n_bootstrap": stage.n_boot}
    for _, row in frame_metrics[frame_metrics["metric"].isin(HEADLINE_METRICS)].iterrows():
        out[f"{row['metric']}_{row['model']}_{row['split']}"] = round(row["estimate"], 4)
    for _, row in wrists.metrics[wrists.metrics["metric"] == "accuracy"].iterrows():
        out[f"wrist_accuracy_{row['model']}_{row['split']}"] = round(row["estimate"], 4)
    if wrists.fused_metrics is not None:
        for _, row in wrists.fused_metrics[wrists.fused_metrics["metric"] == "accuracy"].iterrows():
            out[f"wrist_accuracy_fused_{row['split']}"] = round(row["estimate"], 4)
    for _, row in leakage_gap.iterrows():
        out[f"leakage_gap_{row['model']}"] = round(row["gap"], 4)
    fair_csa = csa_metrics[(csa_metrics["model"] == csa.name) & (csa_metrics["split"] == fair)].set_index("metric")
    out["csa_baseline_split"] = fair  # the split of csa_baseline_accuracy, the verdict and the summary
    out["csa_baseline_accuracy"] = round(fair_csa.loc["accuracy", "estimate"], 4)
    out["csa_baseline_balanced_accuracy"] = round(fair_csa.loc["balanced_accuracy", "estimate"], 4)
    for _, row in paired.iterrows():
        out[f"paired_{slug(row['first'])}_minus_{slug(row['second'])}"] = {
            "split": fair, "difference": round(row["difference"], 4),
            "ci": [round(row["ci_low"], 4), round(row["ci_high"], 4)], "n_wrists": int(row["n_wrists"]),
            "n_participants": int(row["n_participants"])}
    out["csa_thresholds_mm2"] = [round(t, 3) for t in csa.thresholds]
    baseline_rows = csa_metrics["model"].str.startswith("CSA") & csa_metrics["metric"].isin(["accuracy", "balanced_accuracy"])
    for _, row in csa_metrics[baseline_rows].iterrows():
        out[f"csa_baseline_{row['metric']}_{row['split']}"] = round(row["estimate"], 4)
    out.update(gradcam_examples=n_examples, verdict_sentence=verdict_text, meaning=meaning,
               sanity={f"{r['model']}/{r['split']}": r["status"] for _, r in flags.iterrows()},
               sanity_failed=int((flags["status"] == sanity.FAIL).sum()),
               sanity_borderline=int((flags["status"] == sanity.BORDERLINE).sum()))
    for plane, table in inputs.predictions.items():
        out[f"cv_participants_{plane}"] = (int(select_split(table, CV_POOLED)["participant_id"].nunique())
                                           if CV_POOLED in inputs.evaluated else 0)
    out.update(participants_total=int(inputs.wrists["participant_id"].nunique()), fair_split=fair)
    return out
