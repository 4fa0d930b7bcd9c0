"""The reading path stays at the size a reader can hold, and the code's structure stays one-way.

Sizes (issues 27 and 36; the project's style guide's yardstick): train.py at most 320 lines,
forecast.py 380, vqvae_imagenet.py 350, data/__init__.py 300, README.md 160; the longest function of
each script at most 80 lines (from its `def` line to its last line, docstring included); no bag of
attributes (types.SimpleNamespace) carrying a script's state. Structure: no import circle
among the project's modules (read from their import statements, a submodule's import counting as
an import of its package too), only sweep.py imports train.py, and no private torch name
(`torch._`) outside models/kernels.py.
"""
import ast
import glob
import os
import re

import pytest

from conftest import ROOT

LIMITS = {"train.py": 320, "forecast.py": 380, "vqvae_imagenet.py": 350, "data/__init__.py": 300, "README.md": 160}
SCRIPTS = ["train.py", "forecast.py", "vqvae_imagenet.py"]


def sources():
    """Every Python file of the product and benchmarks/, relative to the root (tests are not modules of it)."""
    found = glob.glob(os.path.join(ROOT, "*.py")) + glob.glob(os.path.join(ROOT, "*", "*.py"))
    return sorted(os.path.relpath(p, ROOT) for p in found if not os.path.relpath(p, ROOT).startswith("tests"))


def module_file(name):
    """The file of module `a.b` in this repository, or None (the standard library, torch, ...)."""
    for candidate in (name.replace(".", "/") + ".py", name.replace(".", "/") + "/__init__.py"):
        if os.path.isfile(os.path.join(ROOT, candidate)):
            return candidate
    return None


def imports(path):
    """The repository files that path imports, a package's __init__ with each of its submodules."""
    tree = ast.parse(open(os.path.join(ROOT, path)).read())
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    found = set()
    for name in names:
        parts = name.split(".")
        for k in range(1, len(parts) + 1):  # a.b.c imports a, then a.b, then a.b.c
            f = module_file(".".join(parts[:k]))
            if f:
                found.add(f)
    found.discard(path)
    return found


def graph():
    return {path: imports(path) for path in sources()}


def test_the_import_graph_has_no_circle():
    edges, state, path = graph(), {}, []

    def visit(node):
        state[node] = "open"
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                pytest.fail("import circle: " + " -> ".join(path[path.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = "done"
    for node in sorted(edges):
        if node not in state:
            visit(node)
    assert len(edges) > 20 and "config.py" in edges["train.py"]  # the walk sees the project


def test_only_sweep_py_imports_train_py():
    assert sorted(p for p, deps in graph().items() if "train.py" in deps) == ["sweep.py"]


def test_no_private_torch_name_outside_the_speed_module():
    private = re.compile(r"torch\._")
    found = [f"{p}:{n}" for p in sources() for n, line in enumerate(open(os.path.join(ROOT, p)), 1)
             if private.search(line) and p != "models/kernels.py"]
    assert found == []
    assert private.search(open(os.path.join(ROOT, "models/kernels.py")).read())  # the check sees a use


@pytest.mark.parametrize("path, limit", LIMITS.items())
def test_the_reading_path_is_short(path, limit):
    lines = len(open(os.path.join(ROOT, path)).read().splitlines())
    assert lines <= limit, f"{path}: {lines} lines, at most {limit}"


@pytest.mark.parametrize("path", SCRIPTS)
def test_no_function_of_a_script_is_longer_than_a_screen(path):
    tree = ast.parse(open(os.path.join(ROOT, path)).read())
    lengths = {n.name: n.end_lineno - n.lineno + 1 for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    assert lengths and max(lengths.values()) <= 80, lengths


def test_no_script_carries_its_state_in_a_bag_of_attributes():
    """State a function needs is named arguments or a small named object, never a SimpleNamespace."""
    found = [p for p in sources() if re.search(r"\bSimpleNamespace\b", open(os.path.join(ROOT, p)).read())]
    assert found == []
    assert "vqvae_imagenet.py" in sources()  # the check reads the scripts
