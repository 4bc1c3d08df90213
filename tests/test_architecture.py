"""The layering of docs/architecture.md, checked on the source: which package may import which, and short functions.

models ← synthetic ← engine ← app, and training beside app (it uses models, synthetic and engine).
Imports are read with ``ast`` from every module, including imports inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("models", "synthetic", "engine", "app", "training")
#: Project packages each package must not import.
FORBIDDEN: dict[str, set[str]] = {
    "models": {"synthetic", "engine", "app", "training"},
    "synthetic": {"engine", "app", "training"},
    "engine": {"app", "training"},
    "app": {"training"},
    "training": {"app"},
}
MAX_FUNCTION_LINES = 120
#: Known long functions, each with the work that removes it. Add nothing here.
LONG_FUNCTIONS_BEING_SPLIT: set[str] = set()  # none left: training/train.py::_train is split into named steps


def modules(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


def project_imports(path: Path) -> set[str]:
    """The top-level project packages a module imports (absolute imports; relative ones stay in the package)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found.update(name.split(".")[0] for name in names if name.split(".")[0] in PACKAGES)
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_package_imports_follow_the_layers(package: str) -> None:
    assert modules(package), f"no modules found in {package}/"
    offenders = {
        str(path.relative_to(REPO)): sorted(project_imports(path) & FORBIDDEN[package]) for path in modules(package)
    }
    assert {k: v for k, v in offenders.items() if v} == {}, f"{package}/ must not import {sorted(FORBIDDEN[package])}"


def test_the_import_check_sees_lazy_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import os\n\ndef f():\n    from training.train import main\n    import engine.paths\n")
    assert project_imports(module) == {"training", "engine"}


def test_no_function_is_longer_than_the_limit() -> None:
    long = set()
    for path in sorted(REPO.rglob("*.py")):
        relative = path.relative_to(REPO)
        if any(part.startswith(".") for part in relative.parts):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES:
                    long.add(f"{relative.as_posix()}::{node.name}")
    assert long - LONG_FUNCTIONS_BEING_SPLIT == set(), f"functions over {MAX_FUNCTION_LINES} lines"
