"""The judge package's shape, checked from its source: a face that only hands names
on, no import cycles between its modules, no import inside a function except the
lazy third-party ones kept for start-up speed, and no file near 600 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import mast.classify.judge as judge

PKG = Path(judge.__file__).parent
MODULES = {p.stem: ast.parse(p.read_text(encoding="utf-8")) for p in sorted(PKG.glob("*.py"))}
LAZY_OK = {"openai", "jinja2"}


def _judge_imports(tree: ast.Module) -> set[str]:
    out = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "mast.classify.judge":
                out |= {a.name for a in node.names}
            elif node.module.startswith("mast.classify.judge."):
                out.add(node.module.rsplit(".", 1)[1])
    return out


def test_init_only_hands_names_on():
    body = MODULES["__init__"].body
    kinds = {type(n) for n in body[1:]}  # after the docstring
    assert kinds <= {ast.ImportFrom, ast.Import, ast.Assign}, kinds
    assigned = [t.id for n in body if isinstance(n, ast.Assign) for t in n.targets]
    assert assigned == ["__all__"]


def test_no_import_cycles_between_judge_modules():
    graph = {name: _judge_imports(tree) for name, tree in MODULES.items() if name != "__init__"}
    for name, deps in graph.items():  # modules import modules, never names from the package face
        assert deps <= set(graph), (name, deps - set(graph))
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, " -> ".join(path + (name,))
        if name in done:
            return
        for dep in graph.get(name, ()):
            visit(dep, path + (name,))
        done.add(name)

    for name in graph:
        visit(name, ())


def test_sending_paths_use_only_the_jobs_api():
    for name in ("online", "batch"):
        assert "classifier" not in _judge_imports(MODULES[name])


def test_imports_inside_functions_are_only_the_lazy_third_party_ones():
    for name, tree in MODULES.items():
        for fn in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    assert {a.name for a in node.names} <= LAZY_OK, (name, fn.name)
                elif isinstance(node, ast.ImportFrom):
                    raise AssertionError(f"{name}.{fn.name} imports {node.module} inside a function")


def test_files_stay_small():
    for p in PKG.glob("*.py"):
        assert len(p.read_text(encoding="utf-8").splitlines()) < 600, p.name
