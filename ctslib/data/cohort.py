"""Stage 01: read and check ``cohort.csv``, pseudonymise participants, grade wrists, Table 1.

``read_cohort`` refuses bad input with an ``InputError`` naming the file, the 1-based data row
and the column, before anything is written. ``grade_cohort`` applies the NCS rule of
``ctslib.data.ncs`` to every wrist and builds the ``wrists.csv`` hand-off (docs/pipeline.md), with
participants replaced by pseudonyms P001, P002 ... assigned in sorted order of the source ids.
``table1`` and ``table1_vs_paper`` regenerate the paper's Table 1 and set it beside the
published numbers.

Plausibility bounds (``PLAUSIBLE_RANGES``) catch typing and unit errors, not disease: a DML of
80 ms or an SNCV of 500 m/s cannot be a measurement in ms or m/s. They are deliberately wide
(severe CTS gives DML near 10-15 ms, SNAP near 0 µV). A blank NCS cell means "not recordable".
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from ctslib import GRADES, PLANES, SIDES
from ctslib.common.errors import InputError, StageError
from ctslib.data.ncs import NCSLimits, UncoveredPolicy, grade_wrist
from ctslib.common.paths import DataLayout, video_stem

COHORT_COLUMNS: tuple[str, ...] = (
    "participant_id", "side", "sex", "age", "dominant_hand", "dml_ms", "sncv_ms", "snap_uv",
)
NCS_COLUMNS: tuple[str, ...] = ("dml_ms", "sncv_ms", "snap_uv")
WRISTS_COLUMNS: tuple[str, ...] = (
    "wrist_id", "participant_id", "side", "sex", "age", "dominant_hand", "dml_ms", "sncv_ms", "snap_uv",
    "grade", "grade_index", "rule", "uncovered", "combination", "bland_grade",
    "video_transverse", "video_longitudinal",
)
SEXES: tuple[str, ...] = ("M", "F")
HANDS: tuple[str, ...] = ("R", "L", "A")

CODE_WORDS: dict[str, dict[str, str]] = {
    "side": {"RIGHT": "R", "LEFT": "L"},
    "sex": {"MALE": "M", "FEMALE": "F"},
    "dominant_hand": {"RIGHT": "R", "LEFT": "L", "AMBIDEXTROUS": "A"},
}
"""Words accepted for a coded value (any letter case), beside the codes themselves: intent is unambiguous."""

_DECIMAL_COMMA = re.compile(r"^(-?\d+),(\d+)$")

PLAUSIBLE_RANGES: dict[str, tuple[float, float]] = {
    "age": (1.0, 120.0),       # years
    "dml_ms": (1.0, 20.0),     # ms; normal about 3-4, severe CTS rarely above 12
    "sncv_ms": (5.0, 100.0),   # m/s; normal about 50-65
    "snap_uv": (0.0, 200.0),   # µV; 0 may be typed for an absent response
}
"""Inclusive [low, high] of a believable value per numeric column; outside means a typing/unit error."""

PAPER_TABLE1: dict[str, float] = {
    "participants": 50, "men": 13, "women": 37,
    "age_mean": 55.9, "age_sd": 13.8, "age_min": 20, "age_max": 90,
    "wrists": 94, "normal": 30, "mild": 34, "moderate": 13, "severe": 17,
    "normal_pct": 31.9, "mild_pct": 36.2, "moderate_pct": 13.8, "severe_pct": 18.1,
}
"""The paper's Table 1 (participants, sex, age, wrists and NCS diagnoses; percentages of wrists)."""


# --------------------------------------------------------------------------- reading / checks
def read_cohort(path: str | Path) -> pd.DataFrame:
    """Read ``cohort.csv`` and check every cell; raise ``InputError`` at the first problem.

    Returns one row per wrist with the columns ``COHORT_COLUMNS`` (codes upper-cased, numbers as
    floats, blank NCS values as NaN); extra columns are dropped.
    """
    path = Path(path)
    raw = read_raw_cohort(path)
    for row in blank_rows(raw):
        raise blank_row_error(path, row)
    cohort = pd.DataFrame({
        "participant_id": [check_participant_id(v, path, i + 1) for i, v in enumerate(raw["participant_id"])],
        "side": parse_codes(raw["side"], SIDES, path, "side"),
        "sex": parse_codes(raw["sex"], SEXES, path, "sex"),
        "age": parse_numbers(raw["age"], path, "age", allow_blank=False),
        "dominant_hand": parse_codes(raw["dominant_hand"], HANDS, path, "dominant_hand"),
        **{c: parse_numbers(raw[c], path, c, allow_blank=True) for c in NCS_COLUMNS},
    })
    check_wrists_unique(cohort, path)
    check_participants_consistent(cohort, path)
    return cohort


def read_raw_cohort(path: str | Path) -> pd.DataFrame:
    """``cohort.csv`` as stripped text cells in ``COHORT_COLUMNS`` order; file-level checks only.

    Accepted variants (each described by ``cohort_notes``): a semicolon-separated file (Excel in
    locales with a decimal comma), whose numbers may then use a decimal comma; a UTF-8 byte-order
    mark; blank rows at the end of the file.

    Raises:
        InputError: file missing or unreadable, a column missing, or no data rows.
    """
    return _read_raw(Path(path))[0]


def _separator(path: Path) -> str:
    """';' when the header line has more semicolons than commas (Excel's CSV in decimal-comma locales), else ','."""
    try:
        with open(path, encoding="utf-8-sig") as handle:
            header = next((line for line in handle if line.strip()), "")
    except UnicodeDecodeError:
        return ","
    return ";" if header.count(";") > header.count(",") else ","


def _read_raw(path: Path) -> tuple[pd.DataFrame, list[str]]:
    """``read_raw_cohort`` and the notes on the variants it accepted."""
    if not path.is_file():
        raise InputError("cohort file not found", file=path)
    sep = _separator(path)
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True, sep=sep, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"not a readable CSV file ({exc})", file=path) from exc
    raw.columns = [str(c).strip() for c in raw.columns]
    for column in COHORT_COLUMNS:
        if column not in raw.columns:
            raise InputError(f"missing column; expected {', '.join(COHORT_COLUMNS)}", file=path, column=column)
    raw = raw.loc[:, list(COHORT_COLUMNS)].apply(lambda col: col.str.strip())
    notes = []
    if sep == ";":
        notes.append("semicolon-separated (as Excel writes CSV where the decimal mark is a comma): read with ';' between cells")
    blank = (raw == "").all(axis=1).to_numpy()
    trailing = len(blank) - int(np.flatnonzero(~blank)[-1]) - 1 if (~blank).any() else len(blank)
    if trailing:
        raw = raw.iloc[: len(raw) - trailing]
        notes.append(f"{trailing} blank row(s) at the end of the file ignored")
    if raw.empty:
        raise InputError("no wrists (the file has a header but no data rows)", file=path)
    if sep == ";":
        numeric = ["age", *NCS_COLUMNS]
        converted = {c: int(raw[c].str.fullmatch(_DECIMAL_COMMA).sum()) for c in numeric}
        for column in numeric:
            raw[column] = raw[column].str.replace(_DECIMAL_COMMA, r"\1.\2", regex=True)
        used = [f"{c} ({n})" for c, n in converted.items() if n]
        if used:
            notes.append(f"decimal commas read as decimal points in {', '.join(used)}")
    return raw.reset_index(drop=True), notes


def cohort_notes(path: str | Path) -> list[str]:
    """One line per accepted variant in ``cohort.csv`` (separator, decimal commas, blank rows, code words).

    ``ctslib.data.validate`` prints each as a NOTE; stage 01 prints them too. Empty for a plain file.
    """
    raw, notes = _read_raw(Path(path))
    for column, words in CODE_WORDS.items():
        used = sorted({v for v in raw[column] if v.upper() in words}, key=str.lower)
        if used:
            mapped = ", ".join(f"{v!r} -> {words[v.upper()]}" for v in used)
            notes.append(f"column '{column}': words read as codes ({mapped})")
    return notes


def blank_rows(raw: pd.DataFrame) -> list[int]:
    """1-based data rows of ``read_raw_cohort``'s table whose every cell is empty (between wrists)."""
    return [int(i) + 1 for i in np.flatnonzero((raw == "").all(axis=1).to_numpy())]


def blank_row_error(path: Path, row: int) -> InputError:
    """One error for a wholly blank row between wrists (not one per empty cell).

    Refused, unlike blank rows at the end: a gap between wrists may be a wrist whose values were lost.
    """
    return InputError("blank row between wrists (every cell empty): delete the row, or fill in the wrist it stood for",
                      file=path, row=row)


def check_participant_id(value: str, path: Path, row: int) -> str:
    if not value:
        raise InputError("participant_id is blank", file=path, row=row, column="participant_id")
    return value


def code_of(value: str, column: str) -> str:
    """A coded cell upper-cased, with an accepted word (``CODE_WORDS``) replaced by its code."""
    code = str(value).strip().upper()
    return CODE_WORDS.get(column, {}).get(code, code)


def parse_codes(values: pd.Series, allowed: Iterable[str], path: Path, column: str) -> list[str]:
    allowed = tuple(allowed)
    out = []
    for i, value in enumerate(values):
        code = code_of(value, column)
        if code not in allowed:
            raise InputError(f"unknown value {value!r}; allowed: {', '.join(allowed)}", file=path, row=i + 1, column=column)
        out.append(code)
    return out


def parse_numbers(values: pd.Series, path: Path, column: str, *, allow_blank: bool) -> list[float]:
    low, high = PLAUSIBLE_RANGES[column]
    out = []
    for i, value in enumerate(values):
        where = {"file": path, "row": i + 1, "column": column}
        if value == "":
            if not allow_blank:
                raise InputError("value is blank", **where)
            out.append(math.nan)
            continue
        try:
            number = float(value)
        except ValueError:
            raise InputError(f"not a number: {value!r}", **where) from None
        if not math.isfinite(number):
            raise InputError(f"not a finite number: {value!r}", **where)
        if number < 0:
            raise InputError(f"negative value {number:g}", **where)
        if not low <= number <= high:
            raise InputError(f"implausible value {number:g} (plausible range {low:g}-{high:g}; check the unit)", **where)
        out.append(number)
    return out


def check_wrists_unique(cohort: pd.DataFrame, path: Path) -> None:
    duplicated = cohort.duplicated(["participant_id", "side"], keep="first")
    if duplicated.any():
        i = int(np.flatnonzero(duplicated.to_numpy())[0])
        first = int(np.flatnonzero(
            ((cohort["participant_id"] == cohort.at[i, "participant_id"]) & (cohort["side"] == cohort.at[i, "side"])).to_numpy()
        )[0])
        raise InputError(
            f"wrist {cohort.at[i, 'participant_id']} {cohort.at[i, 'side']} listed twice (also row {first + 1})",
            file=path, row=i + 1, column="side",
        )


def check_participants_consistent(cohort: pd.DataFrame, path: Path) -> None:
    """Sex, age and dominant hand must agree on every row of a participant.

    Rows are named by ``cohort``'s index (0-based position in the file's data rows), so a
    table with some rows left out (blank ones) still names the right row.
    """
    for column in ("sex", "age", "dominant_hand"):
        first = cohort.groupby("participant_id", sort=False)[column].transform("first")
        differs = (cohort[column] != first).to_numpy()
        if differs.any():
            i = int(np.flatnonzero(differs)[0])
            raise InputError(
                f"participant {cohort['participant_id'].iat[i]} has {column} {cohort[column].iat[i]!r} here "
                f"but {first.iat[i]!r} on another row",
                file=path, row=int(cohort.index[i]) + 1, column=column,
            )


# --------------------------------------------------------------------------- pseudonyms
def pseudonym_map(source_ids: Iterable[str]) -> pd.DataFrame:
    """Pseudonyms P001, P002 ... for the distinct source ids, in sorted order of the source id.

    Returns columns ``participant_id`` (pseudonym) and ``source_id``; the pseudonym carries only
    a rank, never any part of the source id. Private: write it only to ``RunPaths.id_map_csv``.
    """
    ids = sorted({str(s) for s in source_ids})
    width = max(3, len(str(len(ids))))
    return pd.DataFrame({"participant_id": [f"P{i + 1:0{width}d}" for i in range(len(ids))], "source_id": ids})


# --------------------------------------------------------------------------- grading
def grade_cohort(
    cohort: pd.DataFrame,
    limits: NCSLimits = NCSLimits(),
    policy: UncoveredPolicy = "bland",
    *,
    layout: DataLayout | None = None,
    id_map: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The ``wrists.csv`` table: one graded, pseudonymised row per wrist, sorted by ``wrist_id``.

    Args:
        cohort: output of ``read_cohort``.
        limits: NCS reference limits (a study decision, set in the notebook).
        policy: what to do with NCS patterns the paper's rule does not cover ("bland", "exclude",
            "error"); excluded wrists stay in the table with an empty grade.
        layout: data folder whose ``videos/`` is searched for each wrist's two videos; the
            ``video_<plane>`` columns hold file names relative to ``videos/`` ("" when missing).
            The names embed the *source* id, so never copy these columns into a report.
        id_map: pseudonym table (default ``pseudonym_map(cohort.participant_id)``).

    Raises:
        StageError: ``policy="error"`` and a wrist has an uncovered pattern (names the wrist).
    """
    id_map = pseudonym_map(cohort["participant_id"]) if id_map is None else id_map
    pseudonym = dict(zip(id_map["source_id"], id_map["participant_id"]))
    rows = []
    for i, wrist in enumerate(cohort.itertuples(index=False)):
        pid = pseudonym[str(wrist.participant_id)]
        wrist_id = f"{pid}_{wrist.side}"
        try:
            g = grade_wrist(float(wrist.dml_ms), float(wrist.sncv_ms), float(wrist.snap_uv), limits, policy)
        except ValueError as exc:
            raise StageError(
                f"wrist {wrist_id} (cohort.csv row {i + 1}): {exc}. Set NCS_UNCOVERED_POLICY to 'bland' or 'exclude'."
            ) from None
        videos = {f"video_{plane}": _video_name(layout, str(wrist.participant_id), wrist.side, plane) for plane in PLANES}
        rows.append({
            "wrist_id": wrist_id, "participant_id": pid, "side": wrist.side, "sex": wrist.sex,
            "age": wrist.age, "dominant_hand": wrist.dominant_hand,
            "dml_ms": wrist.dml_ms, "sncv_ms": wrist.sncv_ms, "snap_uv": wrist.snap_uv,
            "grade": g.grade, "grade_index": GRADES.index(g.grade) if g.grade is not None else None,
            "rule": g.rule, "uncovered": g.uncovered, "combination": g.combination, "bland_grade": g.bland_grade,
            **videos,
        })
    wrists = pd.DataFrame(rows, columns=list(WRISTS_COLUMNS))
    wrists["grade_index"] = wrists["grade_index"].astype("Int64")
    wrists["uncovered"] = wrists["uncovered"].astype(bool)
    return wrists.sort_values("wrist_id", kind="stable").reset_index(drop=True)


def _video_name(layout: DataLayout | None, source_id: str, side: str, plane: str) -> str:
    if layout is None:
        return ""
    found = layout.find_video(video_stem(source_id, side, plane))
    return found.name if found is not None else ""


def rule_table(limits: NCSLimits = NCSLimits()) -> pd.DataFrame:
    """All 12 (DML band x SNCV x SNAP) patterns with measurable values: the paper's grade or the Bland fallback.

    Built by grading one representative wrist per pattern, so the table always shows what the
    code does. A sensory response that is *absent* (not just reduced) raises Bland's grade to 4
    when DML is at most the severe limit; this table shows the present-but-reduced case.
    """
    dml = {"normal": limits.dml_normal_max_ms - 0.5,
           "prolonged": (limits.dml_normal_max_ms + limits.dml_severe_above_ms) / 2,
           "severe": limits.dml_severe_above_ms + 1.0}
    rows = []
    for band in ("normal", "prolonged", "severe"):
        for sncv_low in (False, True):
            for snap_low in (False, True):
                sncv = limits.sncv_min_ms + (-5.0 if sncv_low else 5.0)
                snap = limits.snap_min_uv + (-5.0 if snap_low else 5.0)
                g = grade_wrist(dml[band], sncv, snap, limits, "bland")
                rows.append({"pattern": g.combination,
                             "paper_rule": "not covered" if g.uncovered else g.grade,
                             "bland_grade": g.bland_grade,
                             "grade_with_bland_policy": g.grade})
    return pd.DataFrame(rows)


def uncovered_table(wrists: pd.DataFrame) -> pd.DataFrame:
    """Every uncovered NCS pattern found: pattern, number of wrists, how it was resolved, which wrists."""
    columns = ["pattern", "wrists", "bland_grade", "resolved_as", "wrist_ids"]
    hits = wrists[wrists["uncovered"]]
    if hits.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for (pattern, rule, bland), group in hits.groupby(["combination", "rule", "bland_grade"], sort=True):
        grade = group["grade"].iloc[0]
        resolved = "excluded (no grade)" if pd.isna(grade) else f"{grade} (Bland grade {bland})"
        rows.append({"pattern": pattern, "wrists": len(group), "bland_grade": int(bland),
                     "resolved_as": resolved, "wrist_ids": ", ".join(group["wrist_id"])})
    return pd.DataFrame(rows, columns=columns)


# --------------------------------------------------------------------------- Table 1
def cohort_summary(wrists: pd.DataFrame) -> dict[str, float]:
    """The numbers of Table 1: participants, sex, age (per participant, sample SD), hands, grades.

    Percentages are of all wrists (as in the paper); wrists without a grade (excluded uncovered
    patterns) are counted as ``not_graded``.
    """
    people = wrists.drop_duplicates("participant_id")
    n_wrists = len(wrists)
    per_person = wrists.groupby("participant_id").size()
    summary: dict[str, float] = {
        "participants": len(people),
        "men": int((people["sex"] == "M").sum()),
        "women": int((people["sex"] == "F").sum()),
        "age_mean": float(people["age"].mean()),
        "age_sd": float(people["age"].std(ddof=1)) if len(people) > 1 else math.nan,
        "age_min": float(people["age"].min()),
        "age_max": float(people["age"].max()),
        "right_handed": int((people["dominant_hand"] == "R").sum()),
        "left_handed": int((people["dominant_hand"] == "L").sum()),
        "ambidextrous": int((people["dominant_hand"] == "A").sum()),
        "wrists": n_wrists,
        "bilateral": int((per_person == 2).sum()),
        "unilateral": int((per_person == 1).sum()),
        "not_graded": int(wrists["grade"].isna().sum()),
    }
    for grade in GRADES:
        count = int((wrists["grade"] == grade).sum())
        summary[grade] = count
        summary[f"{grade}_pct"] = 100.0 * count / n_wrists if n_wrists else math.nan
    return summary


def table1(wrists: pd.DataFrame) -> pd.DataFrame:
    """Table 1 as the paper lays it out: characteristic and value, formatted for reading."""
    s = cohort_summary(wrists)
    n_people = s["participants"]

    def count_pct(n: int, total: int) -> str:
        return f"{n} ({100.0 * n / total:.1f} %)" if total else str(n)

    rows = [
        ("Participants, n", f"{n_people}"),
        ("Age, years, mean ± SD (range)", f"{s['age_mean']:.1f} ± {s['age_sd']:.1f} ({s['age_min']:g}–{s['age_max']:g})"),
        ("Sex, men", count_pct(s["men"], n_people)),
        ("Sex, women", count_pct(s["women"], n_people)),
        ("Dominant hand, right", count_pct(s["right_handed"], n_people)),
        ("Dominant hand, left", count_pct(s["left_handed"], n_people)),
        ("Dominant hand, ambidextrous", count_pct(s["ambidextrous"], n_people)),
        ("Wrists, n", f"{s['wrists']} ({s['bilateral']} participants bilateral, {s['unilateral']} unilateral)"),
        *[(f"NCS diagnosis, {grade}", count_pct(s[grade], s["wrists"])) for grade in GRADES],
    ]
    if s["not_graded"]:
        rows.append(("NCS diagnosis, not graded (uncovered pattern excluded)", count_pct(s["not_graded"], s["wrists"])))
    return pd.DataFrame(rows, columns=["characteristic", "value"])


def table1_vs_paper(wrists: pd.DataFrame, paper: dict[str, float] = PAPER_TABLE1) -> pd.DataFrame:
    """The paper's Table 1 numbers beside ours, rounded as the paper rounds them."""
    ours = cohort_summary(wrists)
    rows = []
    for key, published in paper.items():
        decimals = 1 if key.endswith(("_pct", "_mean", "_sd")) else 0
        value = round(float(ours[key]), decimals) if not math.isnan(ours[key]) else math.nan
        rows.append({"quantity": key, "paper": float(published), "ours": value,
                     "match": bool(math.isclose(value, float(published), abs_tol=1e-9))})
    return pd.DataFrame(rows, columns=["quantity", "paper", "ours", "match"])


# --------------------------------------------------------------------------- figure
def plot_ncs_by_grade(wrists: pd.DataFrame, limits: NCSLimits = NCSLimits()):
    """Strip plots of DML, SNCV and SNAP by NCS grade, with the grading limits as dashed lines.

    Wrists whose value is not recordable do not appear in that panel; uncovered patterns are marked.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    graded = wrists[wrists["grade"].notna()].assign(pattern=lambda d: np.where(d["uncovered"], "uncovered", "covered"))
    panels = [("dml_ms", "DML (ms)", [limits.dml_normal_max_ms, limits.dml_severe_above_ms]),
              ("sncv_ms", "SNCV (m/s)", [limits.sncv_min_ms]),
              ("snap_uv", "SNAP (µV)", [limits.snap_min_uv])]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    for ax, (column, label, lines) in zip(axes, panels):
        sns.stripplot(data=graded, x="grade", y=column, hue="pattern", order=list(GRADES),
                      hue_order=["covered", "uncovered"], palette=["0.35", "tab:red"], size=4, jitter=0.2,
                      ax=ax, legend=column == "snap_uv")
        for y in lines:
            ax.axhline(y, color="tab:blue", linestyle="--", linewidth=1)
        absent = int(graded[column].isna().sum())
        name = label.split(" (")[0]
        ax.set(xlabel="NCS grade", ylabel=label, title=f"{name}: {absent} not recordable, not shown" if absent else name)
    handles, _ = axes[-1].get_legend_handles_labels()
    limit = plt.Line2D([], [], color="tab:blue", linestyle="--", linewidth=1)
    axes[-1].legend(handles[:2] + [limit], ["pattern in the paper's rule", "uncovered pattern (policy)", "grading limit"],
                    fontsize=7, loc="best")
    fig.tight_layout()
    return fig
