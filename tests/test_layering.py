"""The layout holds: no import cycles, and the shared core (protocol, bridge, service) imports
neither a web framework, IPython, ipywidgets nor pandas, nor anything of the kernel side or the
server extension. Imports inside functions count too: a lazy import is still a dependency."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("claude_nb", "server_ext")
CORE = ("claude_nb.protocol", "claude_nb.bridge", "claude_nb.service")
FORBIDDEN_IN_CORE = ("tornado", "jupyter_server", "IPython", "ipywidgets", "pandas",
                     "claude_nb.kernel", "server_ext")


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every module `name` imports (absolute names), wherever the import statement sits."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from pkg import submodule` depends on the submodule itself
            subs = [f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in MODULES]
            found.update(subs or [target])
    return found


GRAPH = {name: {m for m in _imports(name, path) if m in MODULES and m != name}
         for name, path in MODULES.items()}


def _cycle() -> list[str] | None:
    state: dict[str, int] = {}          # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(GRAPH):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycles():
    assert _cycle() is None, " -> ".join(_cycle())


@pytest.mark.parametrize("name", sorted(m for m in MODULES if m.startswith(CORE)))
def test_the_core_imports_no_front_end(name):
    bad = sorted(imported for imported in _imports(name, MODULES[name])
                 if any(imported == f or imported.startswith(f + ".") for f in FORBIDDEN_IN_CORE))
    assert not bad, f"{name} imports {bad}"


def test_nothing_in_claude_nb_imports_the_server_extension():
    bad = {name: sorted(m for m in GRAPH[name] if m.startswith("server_ext"))
           for name in MODULES if name.startswith("claude_nb")}
    assert not {k: v for k, v in bad.items() if v}


def test_loading_the_whole_core_loads_no_front_end():
    # (claude_nb/__init__.py itself loads the kernel-side client, which is light: the static
    # tests above keep the core from depending on it)
    core = sorted(m for m in MODULES if m.startswith(CORE))
    third_party = [f for f in FORBIDDEN_IN_CORE if "." not in f and f != "server_ext"] + ["server_ext"]
    code = ("import importlib, sys\n"
            f"for name in {core!r}: importlib.import_module(name)\n"
            f"print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in {third_party!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_every_public_name_resolves():
    import claude_nb
    for name in claude_nb.__all__:
        assert getattr(claude_nb, name) is not None, name
