"""The package's shape, checked from its source: layers follow the study, no circles, modules of one concern.

``ctslib``'s packages are ordered like the study (docs/architecture.md): a module may import from its
own package or from a lower layer, never from a later stage. These tests read every module with
``ast`` (nothing is imported), so they cost a second and name the offending file and line.
"""

from __future__ import annotations

import ast
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ctslib"

LAYERS: tuple[str, ...] = ("common", "data", "synth", "frames", "nerve", "severity", "evaluate", "report")
"""Subpackages, lowest first: the study's flow (data -> frames -> nerve -> severity models -> evaluation -> report)."""

MAX_LINES = 500
WHOLE_MARK = "one concern"
"""A module above ``MAX_LINES`` must say in its docstring why it reads better whole, using these words."""


def module_name(path: Path) -> str:
    """``ctslib/nerve/crop.py`` -> ``ctslib.nerve.crop``; a package's ``__init__`` -> the package."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> list[tuple[str, int]]:
    """Every ``ctslib`` module that ``path`` imports (at any depth of the file), with its line."""
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "ctslib":
            for alias in node.names:  # `from ctslib.nerve import crop` imports the module ctslib.nerve.crop
                candidate = f"{node.module}.{alias.name}"
                found.append((candidate if resolves(candidate) else node.module, node.lineno))
        elif isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "ctslib"]
    return found


def resolves(dotted: str) -> bool:
    """Whether ``dotted`` names a module or package of ``ctslib``."""
    relative = Path(*dotted.split(".")[1:])
    return (PACKAGE / relative).with_suffix(".py").is_file() or (PACKAGE / relative / "__init__.py").is_file()


def layer(module: str) -> int | None:
    """Position of a module's subpackage in ``LAYERS``; None for the root package ``ctslib``."""
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def import_graph() -> dict[str, list[tuple[str, int]]]:
    """Module -> the ctslib modules it imports (self-imports of a package's own ``__init__`` left out)."""
    graph: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for path in sorted(PACKAGE.rglob("*.py")):
        source = module_name(path)
        graph[source] += [(target, line) for target, line in imported_modules(path) if target != source]
    return dict(graph)


def find_cycle(graph: dict[str, list[tuple[str, int]]]) -> list[str] | None:
    """One import circle as a list of modules (first = last), or None (depth-first search)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target, _ in graph.get(node, []):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_every_module_lives_in_a_layer_and_the_root_holds_only_the_package_constants():
    stray = [module_name(p) for p in PACKAGE.glob("*.py") if p.name != "__init__.py"]
    assert stray == [], f"modules outside the layered subpackages: {stray}"
    packages = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())
    assert packages == sorted(LAYERS)


def test_no_module_imports_a_later_stage():
    upward = [f"{module} line {line} imports {target}"
              for module, targets in import_graph().items() for target, line in targets
              if layer(module) is not None and layer(target) is not None and layer(target) > layer(module)]
    assert upward == []


def test_the_import_graph_has_no_circle():
    assert find_cycle(import_graph()) is None


def test_the_cycle_finder_finds_a_planted_circle():
    graph = {"a": [("b", 1)], "b": [("c", 1)], "c": [("a", 1)], "d": []}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": [("b", 1)], "b": []}) is None


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: module_name(p))
def test_a_long_module_says_why_it_reads_better_whole(path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    if lines > MAX_LINES:
        docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        assert WHOLE_MARK in docstring.lower(), f"{module_name(path)} has {lines} lines and no stated reason"


def test_every_package_declares_its_modules_and_star_imports_nothing():
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        tree = ast.parse(init.read_text(encoding="utf-8"))
        stars = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and any(a.name == "*" for a in n.names)]
        assert stars == [], f"{init.parent.name}/__init__.py star-imports at lines {stars}"
        declared = next((ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                         and any(getattr(t, "id", None) == "__all__" for t in n.targets)), None)
        assert declared is not None, f"{init.parent.name}/__init__.py has no __all__"
        modules = sorted(p.stem for p in init.parent.glob("*.py") if p.name != "__init__.py")
        assert sorted(declared) == modules, f"{init.parent.name}: __all__ {sorted(declared)} != modules {modules}"


def test_every_imported_ctslib_module_is_a_tracked_file_of_the_package():
    """An import of a module the checkout lacks (say, a file a .gitignore pattern kept out) fails here by name."""
    missing = [f"{module_name(path)} line {node.lineno} imports {node.module}"
               for path in sorted(PACKAGE.rglob("*.py"))
               for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
               if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "ctslib"
               and node.module != "ctslib" and not resolves(node.module)]
    assert missing == []
    tracked = subprocess.run(["git", "ls-files", "ctslib"], cwd=PACKAGE.parent, capture_output=True, text=True)
    if tracked.returncode == 0 and tracked.stdout:  # a git checkout: every module must be tracked
        untracked = sorted(str(p.relative_to(PACKAGE.parent)) for p in PACKAGE.rglob("*.py")
                           if str(p.relative_to(PACKAGE.parent)) not in set(tracked.stdout.split()))
        assert untracked == []


DOCUMENTS = ("README.md", "DEVELOPERS.md", "docs/*.md", "benchmarks/README.md", "notebooks/*.ipynb", "profiles/*.yaml")
"""Texts a reader follows to the code: every ``ctslib`` name they give must exist."""


def top_level_names(module: str) -> set[str]:
    """Names a module defines at its top level (functions, classes, assignments, imports)."""
    relative = Path(*module.split(".")[1:])
    path = (PACKAGE / relative).with_suffix(".py")
    path = path if path.is_file() else PACKAGE / relative / "__init__.py"
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def dangling_reference(reference: str) -> str | None:
    """Why ``ctslib.x.y[.name]`` or ``ctslib/x/y.py`` names nothing, or None when it resolves."""
    if reference.endswith(".py"):
        return None if (PACKAGE.parent / reference).is_file() else "no such file"
    parts = reference.split(".")
    for end in range(len(parts), 0, -1):
        if resolves(".".join(parts[:end])):
            rest = parts[end:]
            if rest and rest[0] not in top_level_names(".".join(parts[:end])):
                return f"{'.'.join(parts[:end])} defines no {rest[0]!r}"
            return None
    return "no such module"


def test_every_ctslib_name_the_documents_give_exists():
    import re

    pattern = re.compile(r"ctslib/[a-z_/]+\.py|ctslib(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
    # inside backticks the package name is often left out: `nerve.stage.cut_crops` (checked where
    # `nerve.stage` is a module; `frames.csv` is a file name, not code)
    short = re.compile(rf"`((?:{'|'.join(LAYERS)})(?:\.[A-Za-z_][A-Za-z0-9_]*)+)")
    problems = []
    for document in sorted(p for glob in DOCUMENTS for p in PACKAGE.parent.glob(glob)):
        text = document.read_text(encoding="utf-8")
        references = set(pattern.findall(text)) | {f"ctslib.{name}" for name in short.findall(text)
                                                   if resolves("ctslib." + ".".join(name.split(".")[:2]))}
        for reference in sorted(references):
            why = dangling_reference(reference.rstrip("."))
            if why:
                problems.append(f"{document.relative_to(PACKAGE.parent)}: {reference}: {why}")
    assert not problems, "\n".join(problems)


def test_a_dangling_document_reference_is_caught():
    assert dangling_reference("ctslib.nerve.crop.crop_frames") is None
    assert dangling_reference("ctslib.nerve.crop") is None and dangling_reference("ctslib/nerve/crop.py") is None
    assert dangling_reference("ctslib.nerve.stage.crop_frames") == "ctslib.nerve.stage defines no 'crop_frames'"
    assert dangling_reference("ctslib.data.validate.no_such_check") == "ctslib.data.validate defines no 'no_such_check'"
    assert dangling_reference("ctslib.segment") == "ctslib defines no 'segment'"
    assert dangling_reference("ctslib/segment.py") == "no such file"
