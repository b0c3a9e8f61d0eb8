"""Keep machine paths and real participant IDs out of everything under ``reports/``.

A path can name a clinic, a patient or a user, and a report is meant to be shared. The runner
injects run-relative folders into the notebooks (``ctslib.report.runner``), and this module is the final
net: ``scrub_text`` replaces every known absolute folder (work, report, data, project, Python,
home) with a neutral placeholder, ``pseudonymise_text`` replaces real participant IDs in error
texts, and ``scrub_report`` applies both to every text file of a report folder.
"""

from __future__ import annotations

import csv
import os
import re
import site
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from ctslib.common.io import write_text

TEXT_SUFFIXES: frozenset[str] = frozenset({".html", ".ipynb", ".json", ".csv", ".md", ".txt", ".svg", ".tex", ".log"})
"""Files of a report folder that are text and may quote a path (PNG figures carry no text)."""

PARTICIPANT_TOKEN = "<participant>"
"""Stands for a cohort ID that has no pseudonym yet (stage 01 did not finish)."""

_STEM_TAIL = r"_[LRlr]_(?:[Tt]ransverse|[Ll]ongitudinal)"


def _variants(folder: str | Path) -> set[str]:
    """The folder as given, absolute and with links resolved (a traceback may show any of them)."""
    text = os.fspath(folder)
    if not text:
        return set()
    out = {text.rstrip("/") or "/", os.path.abspath(text)}
    try:
        out.add(os.path.realpath(text))
    except OSError:
        pass
    return {v for v in out if v not in ("", "/")}


def known_prefixes(
    *,
    work: Iterable[Path] = (),
    report: Iterable[Path] = (),
    data: Iterable[Path] = (),
    project: Path | None = None,
    python: Iterable[str | Path] | None = None,
    home: Path | None = None,
    shared: Iterable[tuple[Path, str]] = (),
) -> list[tuple[str, str]]:
    """(absolute prefix, placeholder) pairs, longest prefix first so the most specific one wins.

    ``python`` defaults to this interpreter's prefixes and site-packages folders; ``home`` to the
    user's home folder. ``shared``: other (folder, placeholder) pairs, such as the public usgra-seg
    images beside the checkout, which lie outside the project and would otherwise show the machine's layout.
    """
    if python is None:
        python = {sys.prefix, sys.base_prefix, sys.exec_prefix, *site.getsitepackages(), site.getusersitepackages()}
    groups: list[tuple[Iterable[str | Path], str]] = [
        (list(data), "<data>"),
        *(([folder], word) for folder, word in shared),
        (list(work), "<work>"),
        (list(report), "<report>"),
        ([project] if project else [], "<project>"),
        (python, "<python>"),
        ([home if home is not None else Path.home()], "<home>"),
    ]
    pairs: dict[str, str] = {}
    for folders, placeholder in groups:
        for folder in folders:
            for variant in _variants(folder):
                pairs.setdefault(variant, placeholder)  # an earlier (more specific) group keeps its word
    return sorted(pairs.items(), key=lambda kv: (-len(kv[0]), kv[0]))


def _escaped(word: str) -> str:
    return word.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def scrub_text(text: str, prefixes: list[tuple[str, str]], *, html: bool = False) -> str:
    """``text`` with every occurrence of a known absolute prefix replaced by its placeholder.

    A prefix matches only as a whole path component (``/home/ann`` does not touch ``/home/anna``).
    ``html``: write the placeholder escaped (``&lt;work&gt;``), so a page shows it instead of a tag.
    """
    if not prefixes or not text:
        return text
    lookup = {p: _escaped(w) if html else w for p, w in prefixes}
    pattern = re.compile("(?:" + "|".join(re.escape(p) for p, _ in prefixes) + r")(?![\w-])")
    return pattern.sub(lambda m: lookup[m.group(0)], text)


def pseudonymise_text(text: str, replacements: Mapping[str, str]) -> str:
    """``text`` with real participant IDs replaced (``{source id: pseudonym or token}``).

    An ID matches where no letter or digit touches it (``CTS01_L_transverse`` -> ``P001_L_transverse``).
    IDs of one or two characters or only digits (``7``, ``12``) are replaced only inside a video
    name ``<id>_<side>_<plane>``, where they cannot be a row number or a count.
    """
    if not text or not replacements:
        return text
    for source in sorted(replacements, key=len, reverse=True):
        if not source:
            continue
        target = replacements[source]
        escaped = re.escape(source)
        if source.isdigit() or len(source) <= 2:
            pattern = rf"(?<![A-Za-z0-9]){escaped}(?={_STEM_TAIL})"
        else:
            pattern = rf"(?<![A-Za-z0-9]){escaped}(?![A-Za-z0-9])"
        text = re.sub(pattern, target.replace("\\", r"\\"), text)
    return text


def cohort_ids(cohort_csv: Path) -> list[str]:
    """The participant IDs a ``cohort.csv`` lists, read leniently (it may be the file that failed)."""
    try:
        raw = cohort_csv.read_text(encoding="utf-8-sig", errors="replace")
    except OSError:
        return []
    lines = [line for line in raw.splitlines() if line.strip()]
    if not lines:
        return []
    delimiter = ";" if lines[0].count(";") > lines[0].count(",") else ("\t" if "\t" in lines[0] else ",")
    rows = list(csv.reader(lines, delimiter=delimiter))
    header = [h.strip().lower() for h in rows[0]]
    if "participant_id" not in header:
        return []
    col = header.index("participant_id")
    return sorted({row[col].strip() for row in rows[1:] if len(row) > col and row[col].strip()})


def id_replacements(id_map_csv: Path | None, cohort_csv: Path | None) -> dict[str, str]:
    """``{real id: pseudonym}`` from stage 01's ``id_map.csv``; cohort IDs it lacks map to ``<participant>``."""
    out: dict[str, str] = {}
    if id_map_csv is not None and id_map_csv.exists():
        with open(id_map_csv, newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                if row.get("source_id") and row.get("participant_id"):
                    out[row["source_id"].strip()] = row["participant_id"].strip()
    if cohort_csv is not None:
        for source in cohort_ids(cohort_csv):
            out.setdefault(source, PARTICIPANT_TOKEN)
    return out


def private_text(text: str, prefixes: list[tuple[str, str]], replacements: Mapping[str, str] | None = None) -> str:
    """Paths scrubbed, then (for error texts) real IDs pseudonymised."""
    return pseudonymise_text(scrub_text(text, prefixes), replacements or {})


def scrub_report(
    report: Path,
    prefixes: list[tuple[str, str]],
    *,
    replacements: Mapping[str, str] | None = None,
    pseudonymise: Iterable[str] = (),
) -> list[Path]:
    """Rewrite every text file under ``report`` without known absolute prefixes; return those changed.

    Real IDs are replaced (``replacements``) only in the files named in ``pseudonymise`` (report-
    relative, e.g. a failed stage's notebook and page): the stages pseudonymise their own outputs, and
    a blanket replacement could hit an unrelated word that equals a short ID.
    """
    if not report.is_dir():
        return []
    chosen = {Path(p).as_posix() for p in pseudonymise}
    changed = []
    for path in sorted(p for p in report.rglob("*") if p.is_file() and not p.is_symlink()):
        if path.suffix.lower() not in TEXT_SUFFIXES or path.name.startswith("."):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        html = path.suffix.lower() in (".html", ".svg")
        new = scrub_text(text, prefixes, html=html)
        if path.relative_to(report).as_posix() in chosen:
            new = pseudonymise_text(new, {k: _escaped(v) if html else v for k, v in (replacements or {}).items()})
        if new != text:
            write_text(path, new)
            changed.append(path)
    return changed
