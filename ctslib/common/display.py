"""How numbers and figures are shown to a reader, the same on the report index and the notebook pages.

One rounding rule (``format_number``): counts as integers, seconds with one decimal, the paper's
values with the paper's own digits, every other number with 3 decimals, no bare NaN. And figure
titles that say what data a figure comes from: a saved figure travels without its page (the index,
a slide, an e-mail), so one made from synthetic data says so in its own title. Light on purpose:
stages that do not train import no TensorFlow to use it.
"""

from __future__ import annotations

import math
from typing import Any

METRIC_WORDS: tuple[str, ...] = ("accuracy", "balanced", "estimate", "ci_", "precision", "recall", "f1", "share",
                                 "rate", "gap", "kappa", "auc", "dice", "iou", "p_")
"""Names of metric columns/records: shown with 3 decimals even when a value happens to be whole (1.000)."""


def is_metric(name: str) -> bool:
    """Whether a column or record ``name`` holds a metric (a whole value is then not a count)."""
    lowered = name.lower()
    return any(lowered.startswith(w) or f"_{w}" in lowered for w in METRIC_WORDS)


def integer_text(value: float) -> str:
    """An integer with a thin-space thousands separator from 10 000 on (as in the paper's tables)."""
    return f"{int(value):,}".replace(",", "\u2009") if abs(value) >= 10000 else str(int(value))


def format_number(value: float, *, name: str = "", integer: bool = False, paper: bool = False, nan: str = "–") -> str:
    """A number for a reader, by the report's one rounding rule.

    Counts as integers ("5922", not "5922.000"); seconds from 1 s on with one decimal ("113.8");
    the paper's values (``paper``: a table column of the paper's numbers) with the paper's own digits
    ("0.92"); every other number with 3 decimals; NaN as ``nan``. A whole number of 2 or more is a
    count unless ``name`` is a metric (e.g. the frame counts beside "kept %" in the QC funnel).
    """
    if isinstance(value, float) and math.isnan(value):
        return nan
    whole = float(value).is_integer()
    if paper:
        return integer_text(value) if whole and abs(value) >= 2 else f"{value:g}"
    if integer or (isinstance(value, int) and not isinstance(value, bool)):
        return integer_text(value)
    if "seconds" in name.lower() and abs(value) >= 1:
        return f"{value:.1f}"
    if whole and abs(value) >= 2 and not is_metric(name):
        return integer_text(value)
    return f"{value:.3f}"


def shown_value(value: Any, name: str = "") -> Any:
    """``value`` with every float (also inside lists and dicts) rounded by ``format_number``, as a number."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, dict):
        return {k: shown_value(v, f"{name}_{k}" if name else str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [shown_value(v, name) for v in value]
    if isinstance(value, (int, float)):
        text = format_number(value, name=name)
        try:
            return int(text) if text.lstrip("-").isdigit() else float(text)
        except ValueError:
            return text
    return value


def use_display_rule() -> None:
    """Make pandas show floats in notebook cells by ``format_number`` (no "360.000000", no 0.9968051314353943)."""
    import pandas as pd

    pd.set_option("display.float_format", lambda v: format_number(v, nan="NaN"))

GRADCAM_READING = (
    "Bright (yellow) marks the parts of the crop that most raised the score of the grade the model predicted; "
    "no tint = no positive evidence. Heat on the median nerve supports the model; heat on skin, the retinaculum "
    "or tendon edges means it graded from other structures."
)
"""What to read from a Grad-CAM map: printed under the figure (``ctslib.evaluate.plots``) and shown on the index."""

CV_BAND_READING = "Lines: mean over the folds per epoch; band: lowest to highest fold."
"""What to read from the cross-validation training curves (``ctslib.severity.train.training_curves_figure``)."""

SYNTHETIC_TAG = "synthetic data"
"""Words every figure made from synthetic data carries in its title."""

SYNTHETIC_CAVEAT = f"{SYNTHETIC_TAG}: this checks the pipeline, not the clinical claim"
"""The synthetic-data disclaimer in a few words: a figure's subtitle, the verdict's last clause, a limitation."""

SYNTHETIC_NOTE = (
    "These results come from SYNTHETIC data (a simulated cohort and simulated ultrasound): they validate the "
    "pipeline (data flow, training, evaluation code), not the clinical claim that ultrasound CNNs grade carpal "
    "tunnel syndrome."
)
"""The synthetic-data disclaimer in full: printed by every stage on synthetic data, the index's banner and the
interpretation row of the summary table (``ctslib.evaluate.prose.interpretation``)."""


def source_subtitle(source: str) -> str | None:
    """The subtitle that says where a figure's data come from: ``SYNTHETIC_CAVEAT`` for synthetic data, else None."""
    return SYNTHETIC_CAVEAT if source == "synthetic" else None


def figure_title(title: str, source: str) -> str:
    """``title``, with "synthetic data" on a second line when ``source`` is "synthetic"."""
    return "\n".join(t for t in (title, source_subtitle(source)) if t)


def title_figure(fig: Any, title: str, source: str) -> Any:
    """Give a Matplotlib ``fig`` ``figure_title(title, source)`` and lay it out again so nothing overlaps."""
    fig.suptitle(figure_title(title, source), fontsize=11)
    if not fig.get_constrained_layout():
        fig.tight_layout()
    return fig


def shown_table(table: Any) -> Any:
    """A DataFrame to display in a cell: numbers by ``format_number`` (per column name), empty cells as a dash.

    For tables with holes (e.g. the paper's columns of the QC funnel), where pandas would print NaN;
    columns named "paper..." keep the paper's digits, as on the index.
    """
    def rule(column: str) -> Any:
        return lambda v: format_number(v, name=column, paper=column.lower().startswith("paper"))

    numbers = table.select_dtypes("number").columns
    return table.style.format({c: rule(str(c)) for c in numbers}, na_rep="–").hide(axis="index")

