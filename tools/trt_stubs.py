"""Prepare the TensorRT 10.13 type stubs from PyPI (``tensorrt-stubs``) for mypy and the contract test.

``tensorrt-stubs`` 10.13.0.35.1 installs ``tensorrt/__init__.pyi`` and ``tensorrt_bindings/tensorrt.pyi``
(generated from the pybind11 bindings) but (a) depends on ``tensorrt``, which cannot be installed
without NVIDIA's index, so it is installed with ``pip install --no-deps``; (b) has no ``py.typed``
and lives in site-packages, so mypy skips it; (c) has a few signatures that are not valid Python
(a parameter named ``in``; a parameter without a default after one with a default).
``python -m tools.trt_stubs DIR`` copies the stubs into ``DIR`` (mypy's ``mypy_path``), repairing
(c) on the copy only: parameter ``in`` becomes ``in_``, and a parameter that follows a defaulted one
gets ``= ...``. Names, parameter names otherwise, and types are left as published.

The contract test (``tests/test_tensorrt_contract.py``) needs only the stubs' *surface*: every class,
its members and the parameter names of each overload. That is committed as ``tools/tensorrt_surface.json``
so that the README's test command needs nothing beyond ``requirements-dev.txt``:
``python -m tools.trt_stubs --surface tools/tensorrt_surface.json`` regenerates it from the installed
stubs, and ``--check-surface`` (run by ``.ci/run``) fails when the committed file differs from them.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import re
from pathlib import Path

STUB_FILES = (("tensorrt", "__init__.pyi"), ("tensorrt_bindings", "__init__.pyi"), ("tensorrt_bindings", "tensorrt.pyi"))
STUBS_VERSION = "10.13.0.35.1"
INSTALL_HINT = f"pip install --no-deps tensorrt-stubs=={STUBS_VERSION}"
#: The committed surface of the stubs (what the contract test reads).
SURFACE_FILE = Path(__file__).with_name("tensorrt_surface.json")

#: ``{class: {member: [parameter names of each overload]}}``; module-level names under ``""``.
Surface = dict[str, dict[str, list[list[str]]]]


def installed_stub(package: str, name: str) -> Path:
    """The installed stub file ``<package>/<name>``; ``FileNotFoundError`` with the install command if missing."""
    spec = importlib.util.find_spec(package)
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        if (Path(location) / name).is_file():
            return Path(location) / name
    raise FileNotFoundError(f"TensorRT type stub {package}/{name} is not installed: {INSTALL_HINT}")


def _split_params(text: str) -> list[str]:
    """Split a parameter list at top-level commas (brackets in annotations kept together)."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char in "([{"
        depth -= char in ")]}"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current] if current.strip() else parts


def _repair_signature(line: str) -> str:
    match = re.match(r"^(\s*def \w+\()(.*)(\)\s*->.*)$", line)
    if match is None:
        return line
    head, params, tail = match.groups()
    fixed, seen_default = [], False
    for param in _split_params(params):
        name = param.strip()
        if name.startswith("in:"):
            param = param.replace("in:", "in_:", 1)
        if "=" in param:
            seen_default = True
        elif seen_default and not name.startswith("*"):
            param = f"{param} = ..."
        fixed.append(param)
    return head + ",".join(fixed) + tail


def repaired(text: str, origin: str = "<stub>") -> str:
    """``text`` with its invalid signatures repaired; raises ``SyntaxError`` if something else is wrong."""
    lines = text.splitlines()
    for _ in range(100):
        try:
            ast.parse("\n".join(lines), filename=origin)
            return "\n".join(lines) + "\n"
        except SyntaxError as error:
            index = (error.lineno or 1) - 1
            fixed = _repair_signature(lines[index])
            if fixed == lines[index]:
                raise SyntaxError(f"{origin}:{error.lineno}: cannot repair: {lines[index].strip()}") from error
            lines[index] = fixed
    raise SyntaxError(f"{origin}: too many invalid lines")


def repaired_stubs() -> dict[str, str]:
    """``{"tensorrt/__init__.pyi": source, ...}`` of the installed stubs, repaired."""
    result = {}
    for package, name in STUB_FILES:
        path = installed_stub(package, name)
        result[f"{package}/{name}"] = repaired(path.read_text(), str(path))
    return result


def write_stubs(out: Path) -> list[Path]:
    """Write the repaired stubs (plus ``py.typed`` markers) under ``out``; return the files written."""
    written = []
    for relative, source in repaired_stubs().items():
        target = out / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source)
        (target.parent / "py.typed").write_text("")
        written.append(target)
    return written


def _add_class(surface: Surface, node: ast.ClassDef) -> None:
    bases = [b.id for b in node.bases if isinstance(b, ast.Name)]
    members = {k: list(v) for base in bases for k, v in surface.get(base, {}).items()}
    for member in node.body:
        if isinstance(member, ast.FunctionDef):
            params = [a.arg for a in member.args.posonlyargs + member.args.args][1:]
            members.setdefault(member.name, []).append(params)
        elif isinstance(member, ast.AnnAssign) and isinstance(member.target, ast.Name):
            members.setdefault(member.target.id, [])
        elif isinstance(member, ast.ClassDef):
            members.setdefault(member.name, [])
    surface[node.name] = members


def stub_surface(sources: dict[str, str] | None = None) -> Surface:
    """The names and parameter names of the stubs (``sources``: repaired stub texts; default: the installed ones)."""
    surface: Surface = {"": {}}
    for source in (repaired_stubs() if sources is None else sources).values():
        for node in ast.parse(source).body:
            if isinstance(node, ast.ClassDef):
                _add_class(surface, node)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                surface[""][node.target.id] = []
    return surface


def surface_json(surface: Surface) -> str:
    """Stable text of a surface: sorted, one class per line, so a change reads as a small diff."""
    lines = [f"  {json.dumps(name)}: {json.dumps(surface[name], sort_keys=True)}" for name in sorted(surface)]
    header = f'  "__stubs__": {json.dumps("tensorrt-stubs==" + STUBS_VERSION)}'
    return "{\n" + ",\n".join([header, *lines]) + "\n}\n"


def load_surface(path: Path = SURFACE_FILE) -> Surface:
    """The committed surface (``FileNotFoundError``/``ValueError`` naming the file if it is missing or broken)."""
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error}); regenerate it: python -m tools.trt_stubs --surface {path}") from error
    data.pop("__stubs__", None)
    return data


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: write repaired stubs, write the surface, or check the committed surface."""
    parser = argparse.ArgumentParser(prog="python -m tools.trt_stubs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, nargs="?", help="folder for the repaired stubs (mypy_path)")
    parser.add_argument("--surface", type=Path, help="write the stubs' surface (names, parameter names) to this JSON file")
    parser.add_argument("--check-surface", type=Path, help="exit 1 if this committed surface differs from the installed stubs")
    args = parser.parse_args(argv)
    if args.out is None and args.surface is None and args.check_surface is None:
        parser.error("give a folder for the stubs, --surface FILE or --check-surface FILE")
    if args.out is not None:
        for path in write_stubs(args.out):
            print(path)
    if args.surface is not None:
        args.surface.write_text(surface_json(stub_surface()))
        print(args.surface)
    if args.check_surface is not None:
        expected = surface_json(stub_surface())
        if args.check_surface.read_text() != expected:
            print(f"{args.check_surface} differs from the installed tensorrt-stubs=={STUBS_VERSION}; "
                  f"regenerate it: python -m tools.trt_stubs --surface {args.check_surface}")
            return 1
        print(f"{args.check_surface} matches the installed tensorrt-stubs=={STUBS_VERSION}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
