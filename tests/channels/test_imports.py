"""Every channels module imports on its own, without torch, and the package's imports form no circle."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import channels

PKG = Path(channels.__file__).resolve().parent
MODULES = sorted(p.stem for p in PKG.glob("*.py") if p.stem != "__init__")


def _local_imports(path: Path) -> set[str]:
    """Sibling modules a channels module imports at module level (``from .x import`` / ``from . import x``)."""
    out: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                out.add(node.module.split(".")[0])
            else:
                out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("channels."):
            out.add(node.module.split(".")[1])
    return out & set(MODULES)


def test_no_import_circle_between_channel_modules():
    graph = {m: _local_imports(PKG / f"{m}.py") for m in MODULES}
    done: set[str] = set()

    def visit(m: str, stack: tuple[str, ...]) -> None:
        if m in stack:
            pytest.fail(f"import circle: {' -> '.join(stack[stack.index(m):] + (m,))}")
        if m in done:
            return
        for dep in sorted(graph[m]):
            visit(dep, stack + (m,))
        done.add(m)

    for m in MODULES:
        visit(m, ())
    # the netem string parser builds the models; the models never import the parser
    assert "netem" in graph["factory"] and not {"netem", "factory"} & (graph["gilbert"] | graph["markov4"])


def test_from_netem_has_one_home():
    from channels._tc import NetemLossSpec
    from channels.gilbert import GilbertElliott
    from channels.markov4 import FourStateMarkov

    for cls in (GilbertElliott, FourStateMarkov):
        owners = [c for c in cls.__mro__ if "from_netem" in vars(c)]
        assert owners == [NetemLossSpec], (cls, owners)


@pytest.mark.parametrize("module", MODULES)
def test_each_module_imports_alone_without_torch(module):
    code = (f"import sys; import channels.{module}; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PKG.parent, timeout=60)
    assert r.returncode == 0, r.stderr
