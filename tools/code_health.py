"""Count the code-health measures of issue 28 (long functions, private imports, long lines, broad catches).

Usage: ``python tools/code_health.py [--list] [PATH ...]`` (default: the packages codec, channels, sim, experiments).
Prints one count per measure; ``--list`` also names every offender as ``file:line``.  A private name is one
starting with "_"; importing it from another module counts, except a private *module* imported inside its
own package (``from channels import _hmm`` in ``channels/fit.py``).  Run from the repository root.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from pathlib import Path

PACKAGES = ("codec", "channels", "sim", "experiments")
LINE_LIMIT = 120


def _python_files(roots: list[str]) -> Iterator[Path]:
    for root in roots:
        path = Path(root)
        if path.is_file():
            yield path
        else:
            yield from sorted(p for p in path.rglob("*.py") if "__pycache__" not in p.parts)


def _module_name(path: Path) -> str:
    parts = list(path.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    base = base[: len(base) - node.level]  # relative import from a module file: drop `level` trailing parts
    return ".".join(base + ([node.module] if node.module else []))


def _own_private_module(source: str, name: str, importer: str) -> bool:
    """``from pkg import _mod`` inside ``pkg``: a private module used by its own package (allowed)."""
    base = Path(*source.split("."))
    is_module = (base / f"{name}.py").is_file() or (base / name / "__init__.py").is_file()
    return is_module and (importer == source or importer.startswith(source + "."))


def measure(roots: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {
        "functions > 60 lines": [],
        "functions > 80 lines": [],
        "import statements of another module's _name": [],
        "_names imported from another module": [],
        "_name imports across packages": [],
        "lines > 120 chars": [],
        "broad catches (except Exception / ValueError / bare)": [],
    }
    for path in _python_files(roots):
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text, filename=str(path))
        module = _module_name(path)
        for number, line in enumerate(text.splitlines(), 1):
            if len(line) > LINE_LIMIT:
                found["lines > 120 chars"].append(f"{path}:{number}")
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                where = f"{path}:{node.lineno} {node.name} ({length} lines)"
                if length > 60:
                    found["functions > 60 lines"].append(where)
                if length > 80:
                    found["functions > 80 lines"].append(where)
            elif isinstance(node, ast.ImportFrom):
                source = _resolve(module, node)
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")
                           and not _own_private_module(source, a.name, module)]
                if private and source != module:
                    where = f"{path}:{node.lineno} from {source} import {', '.join(private)}"
                    found["import statements of another module's _name"].append(where)
                    found["_names imported from another module"].extend(f"{where} [{n}]" for n in private)
                    if source.split(".")[0] != module.split(".")[0]:
                        found["_name imports across packages"].append(where)
            elif isinstance(node, ast.ExceptHandler):
                names = []
                if node.type is None:
                    names = ["<bare>"]
                else:
                    kinds = node.type.elts if isinstance(node.type, ast.Tuple) else [node.type]
                    names = [k.id for k in kinds if isinstance(k, ast.Name) and k.id in ("Exception", "ValueError")]
                if names:
                    found["broad catches (except Exception / ValueError / bare)"].append(
                        f"{path}:{node.lineno} {', '.join(names)}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", default=list(PACKAGES))
    parser.add_argument("--list", action="store_true", help="name every offender")
    args = parser.parse_args(argv)
    for name, items in measure(args.paths).items():
        print(f"{len(items):5d}  {name}")
        if args.list:
            for item in items:
                print(f"         {item}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
