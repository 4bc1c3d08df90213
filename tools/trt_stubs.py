"""Prepare the TensorRT 10.13 type stubs from PyPI (``tensorrt-stubs``) for mypy and the contract test.

``tensorrt-stubs`` 10.13.0.35.1 installs ``tensorrt/__init__.pyi`` and ``tensorrt_bindings/tensorrt.pyi``
(generated from the pybind11 bindings) but (a) depends on ``tensorrt``, which cannot be installed
without NVIDIA's index, so it is installed with ``pip install --no-deps``; (b) has no ``py.typed``
and lives in site-packages, so mypy skips it; (c) has a few signatures that are not valid Python
(a parameter named ``in``; a parameter without a default after one with a default).
``python -m tools.trt_stubs DIR`` copies the stubs into ``DIR`` (mypy's ``mypy_path``), repairing
(c) on the copy only: parameter ``in`` becomes ``in_``, and a parameter that follows a defaulted one
gets ``= ...``. Names, parameter names otherwise, and types are left as published.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import re
from pathlib import Path

STUB_FILES = (("tensorrt", "__init__.pyi"), ("tensorrt_bindings", "__init__.pyi"), ("tensorrt_bindings", "tensorrt.pyi"))
INSTALL_HINT = "pip install --no-deps tensorrt-stubs==10.13.0.35.1"


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


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m tools.trt_stubs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="folder for the repaired stubs (mypy_path)")
    args = parser.parse_args(argv)
    for path in write_stubs(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
