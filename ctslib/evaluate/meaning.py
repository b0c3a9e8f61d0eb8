"""The "What this means" box: the run's numbers in plain words for a clinical reader.

Every sentence is built from the recorded numbers (accuracies, confusions, the simulator's CSA
settings, the manifest's deviations from the paper), so it changes when they change. Stage 06
records the parts it knows (``meaning_record``); the index adds the run's deviations from the
paper, which only the finished manifest knows (``meaning_box``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ctslib import GRADES
from ctslib.common.display import SYNTHETIC_CAVEAT

__all__ = ["TREATMENT_LINE", "in_ten", "accuracy_words", "clinical_confusion", "confusion_words", "csa_words",
           "real_data_words", "run_limitations", "meaning_record", "meaning_box"]

TREATMENT_LINE = GRADES.index("moderate")
"""First grade on the far side of the line where management usually changes: normal and mild are mostly
treated conservatively, moderate and severe are often referred for surgery. A confusion across this
line is the clinically relevant one; mild called normal (or severe called moderate) matters less."""


def in_ten(accuracy: float) -> str:
    """``about 6 in 10`` (accuracy rounded to a whole number of wrists in ten)."""
    return f"about {int(np.floor(accuracy * 10 + 0.5))} in 10"  # half up: 0.25 -> 3, not numpy's half-to-even 2


def _count(accuracy: float, n: int) -> str:
    """``21 of 84 wrists, 0.250``: the count a reader can check, then the accuracy with the report's 3 decimals."""
    return f"{int(round(accuracy * n))} of {n} wrists, {accuracy:.3f}"


def accuracy_words(accuracies: Mapping[str, tuple[float, int]], split_text: str) -> str:
    """Each model's and baseline's accuracy as "about N in 10 wrists" on participants it never saw.

    Args:
        accuracies: name -> (wrist-level accuracy, wrists graded), models first, baselines last.
        split_text: which split the numbers come from, in words.
    """
    shown = [(name, acc, n) for name, (acc, n) in accuracies.items() if np.isfinite(acc)]
    if not shown:
        return "No wrist-level accuracy was recorded for new participants."
    parts = [f"the {name} graded {in_ten(acc)} wrists correctly ({_count(acc, n)})" if i == 0
             else f"the {name} {in_ten(acc)} ({_count(acc, n)})" for i, (name, acc, n) in enumerate(shown)]
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"On participants whose wrists no model or cut-off had seen ({split_text.replace('(', '- ').replace(')', '')}), {listed}."


def clinical_confusion(y_true: Sequence[int], y_pred: Sequence[int]) -> tuple[str, str, float, int, int] | None:
    """The commonest confusion across ``TREATMENT_LINE``, as a share of its true grade.

    Returns (true grade, predicted grade, share, count, frames of the true grade), or None when no
    row crosses the line. Ties go to the larger grade distance, then to the more severe true grade.
    """
    y_true, y_pred = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    best = None
    for t in range(len(GRADES)):
        total = int((y_true == t).sum())
        for p in range(len(GRADES)):
            if total == 0 or (t >= TREATMENT_LINE) == (p >= TREATMENT_LINE):
                continue
            count = int(((y_true == t) & (y_pred == p)).sum())
            key = (count / total, abs(t - p), t)
            if count and (best is None or key > best[0]):
                best = (key, (GRADES[t], GRADES[p], count / total, count, total))
    return best[1] if best else None


def confusion_words(name: str, found: tuple[str, str, float, int, int] | None, unit: str = "frames") -> str:
    """``transverse CNN: 36 % of severe frames (9 of 25) were called mild``."""
    if found is None:
        return f"{name}: no {unit} were graded across the mild | moderate line."
    true, pred, share, count, total = found
    direction = "under-grading" if GRADES.index(pred) < GRADES.index(true) else "over-grading"
    return (f"{name}: {share:.0%} of {true} {unit} ({count} of {total}) were called {pred} "
            f"({direction} across the mild | moderate line)")


def csa_words(source: str, csa_accuracy: float | None, csa_means: Sequence[float] | None = None,
              csa_sds: Sequence[float] | None = None) -> str:
    """What decides the CSA baseline's strength: the simulator's settings (synthetic) or the segmenter (real)."""
    result = f" (here {in_ten(csa_accuracy)} wrists)" if csa_accuracy is not None and np.isfinite(csa_accuracy) else ""
    if source == "synthetic" and csa_means is not None:
        means = " / ".join(f"{m:g}" for m in csa_means)
        sds = f" (SD {' / '.join(f'{s:g}' for s in csa_sds)})" if csa_sds is not None else ""
        return (f"On synthetic data the simulator decides how informative CSA is: it draws each wrist's nerve area "
                f"with means {means} mm²{sds} for {' / '.join(GRADES)}. How well the CSA cut-off does{result} "
                "reflects those settings, not how informative CSA is in patients.")
    return (f"The CSA baseline{result} uses the nerve area measured on this package's own segmentation masks, "
            "not a sonographer's tracing, with cut-offs fitted on the training participants only.")


def real_data_words(source: str, half_width: float | None) -> str:
    """What running on real recordings would and would not show (or, on real data, what this run shows)."""
    width = (f" With this many participants an accuracy is only known to about ±{half_width:.2f}."
             if half_width is not None and np.isfinite(half_width) else "")
    wont = ("It would not show how the models do at other centres, on other devices or with other operators, "
            "nor whether grading this way helps patients.")
    if source == "synthetic":
        return ("On real recordings the same pipeline would show how well these CNNs and a CSA cut-off grade new "
                "patients of that clinic and device, and how much the paper's random frame split overstates it. "
                + wont + width)
    return ("These are real recordings: the grouped numbers estimate how well the models grade new patients of "
            "this clinic and device. " + wont.replace("It would not", "They do not") + width)


def run_limitations(*, seeds: int, n_participants: int | None, source: str) -> list[str]:
    """Limitations stage 06 can see itself (the manifest adds the recipe's deviations from the paper)."""
    out = []
    if seeds <= 1:
        out.append("one training seed per split: how much the results move with another seed is not measured")
    if n_participants:
        out.append(f"{n_participants} participants: every interval is wide")
    if source == "synthetic":
        out.append(SYNTHETIC_CAVEAT)
    return out


def meaning_record(
    *,
    source: str,
    split_text: str,
    accuracies: Mapping[str, tuple[float, int]],
    confusions: Mapping[str, tuple[str, str, float, int, int] | None],
    csa_accuracy: float | None,
    csa_means: Sequence[float] | None = None,
    csa_sds: Sequence[float] | None = None,
    half_width: float | None = None,
    seeds: int = 1,
    n_participants: int | None = None,
) -> dict[str, Any]:
    """Everything the box shows that stage 06 knows, JSON-able (recorded as ``meaning``)."""
    return {
        "accuracy": accuracy_words(accuracies, split_text),
        "confusions": [confusion_words(name, found) for name, found in confusions.items()],
        "csa": csa_words(source, csa_accuracy, csa_means, csa_sds),
        "real_data": real_data_words(source, half_width),
        "limitations": run_limitations(seeds=seeds, n_participants=n_participants, source=source),
    }


def meaning_box(record: Mapping[str, Any] | None, deviations: Sequence[str]) -> dict[str, Any] | None:
    """The recorded box with the manifest's deviations from the paper added to its limitations."""
    if not record:
        return None
    return {**record, "limitations": [*record.get("limitations", []), *deviations]}
