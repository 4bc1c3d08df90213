"""The layering of docs/architecture.md, checked on the source: which package may import which, and short functions.

models ← synthetic ← engine ← app, and training beside app (it uses models, synthetic and engine).
Inside ``app/`` the same kind of layers between its parts (``APP_FORBIDDEN``), and no folder of ``app/`` holds
more than ``MAX_MODULES_PER_FOLDER`` modules side by side.
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
#: The parts of ``app/`` (a sub-package, or a top-level module) and the parts each must not import.
#: ``base`` is the small shared modules (errors, size, redact, startup, demo); ``core`` the stage contract, timer,
#: stats, CPU stages and overlay; ``pipeline`` the runner that wires sources, stages and outputs; ``cli`` is
#: ``python -m app``. Nothing but the CLI imports the window, and nothing imports the benches or the CLI.
APP_PARTS = ("base", "core", "sources", "outputs", "gpu", "pipeline", "display", "bench", "cli")
APP_FORBIDDEN: dict[str, set[str]] = {
    "base": {"core", "sources", "outputs", "gpu", "pipeline", "display", "bench", "cli"},
    "core": {"sources", "outputs", "gpu", "pipeline", "display", "bench", "cli"},
    "sources": {"outputs", "gpu", "pipeline", "display", "bench", "cli"},
    "outputs": {"sources", "gpu", "pipeline", "display", "bench", "cli"},
    "gpu": {"sources", "outputs", "pipeline", "display", "bench", "cli"},
    "pipeline": {"display", "bench", "cli"},
    "display": {"sources", "gpu", "pipeline", "bench", "cli"},
    "bench": {"display", "cli"},
    "cli": {"bench"},
}
APP_TOP_LEVEL = {"__init__": "base", "errors": "base", "size": "base", "redact": "base", "startup": "base", "demo": "base",
                 "pipeline": "pipeline", "display": "display", "__main__": "cli"}  # fmt: skip
MAX_MODULES_PER_FOLDER = 15
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


def imported_modules(path: Path, root: Path = REPO) -> set[str]:
    """Every dotted module name a module imports (relative imports resolved; ``from app import x`` gives ``app.x``)."""
    package = ".".join(path.relative_to(root).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def app_part(module: str) -> str | None:
    """The part of ``app`` a dotted module name belongs to (``None``: not a module of ``app``, or ``app`` itself)."""
    parts = module.split(".")
    if parts[0] != "app" or len(parts) < 2:
        return None
    if parts[1] in APP_TOP_LEVEL:
        return APP_TOP_LEVEL[parts[1]]
    return parts[1] if parts[1] in APP_PARTS else None


def app_module_part(path: Path) -> str | None:
    """The part of ``app`` a module file belongs to (``None``: not placed; see the test below)."""
    relative = path.relative_to(REPO / "app")
    return APP_TOP_LEVEL.get(relative.stem) if len(relative.parts) == 1 else relative.parts[0]


def test_every_app_module_has_a_part() -> None:
    """A new module of ``app/`` must be placed in a part (a new top-level module goes into ``APP_TOP_LEVEL``)."""
    relatives = [path.relative_to(REPO / "app") for path in modules("app")]
    top_level = [r.as_posix() for r in relatives if len(r.parts) == 1 and r.stem not in APP_TOP_LEVEL]
    nested = [r.as_posix() for r in relatives if len(r.parts) > 1 and r.parts[0] not in APP_PARTS]
    assert top_level + nested == []


@pytest.mark.parametrize("part", APP_PARTS)
def test_app_parts_import_only_below_them(part: str) -> None:
    """The layers inside ``app/`` (docs/architecture.md): base ← core ← sources, outputs, gpu ← pipeline ← the CLI."""
    offenders = {}
    for path in modules("app"):
        if app_module_part(path) != part:
            continue
        bad = sorted({app_part(m) for m in imported_modules(path)} & APP_FORBIDDEN[part])
        if bad:
            offenders[str(path.relative_to(REPO))] = bad
    assert offenders == {}, f"app part {part!r} must not import {sorted(APP_FORBIDDEN[part])}"


def test_the_app_import_check_sees_every_form(tmp_path: Path) -> None:
    module = tmp_path / "app" / "core" / "m.py"
    module.parent.mkdir(parents=True)
    lazy = "def f():\n    from ..outputs import sinks\n    import app.bench.live\n    from . import stage\n"
    module.write_text("from app import display\n\n" + lazy)
    found = imported_modules(module, root=tmp_path)
    assert {app_part(m) for m in found} - {None} == {"display", "outputs", "bench", "core"}


def test_no_app_folder_holds_more_than_the_limit() -> None:
    folders = {path.parent for path in modules("app")}
    crowded = {str(f.relative_to(REPO)): n for f in folders if (n := len(list(f.glob("*.py")))) > MAX_MODULES_PER_FOLDER}
    assert crowded == {}, f"more than {MAX_MODULES_PER_FOLDER} modules side by side"


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
