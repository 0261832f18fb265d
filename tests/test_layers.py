"""The layers of lib/pve_microseg, kept by a look at the syntax tree.

model -> parse -> policy (pure) -> edges -> flows -> entry: a module imports
only from its own layer or the layers below it; the pure layers import no
module that reaches the system; no module imports in a cycle; no module uses
another module's private (underscore) names.  And the two paths that run on
every guest start and every ifup stay cheap: importing them loads neither
PyYAML nor argparse.
"""

import ast
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT

LIB = ROOT / "lib"
PACKAGE = "pve_microseg"
LAYERS = ("model", "parse", "policy", "edges", "flows", "entry")
PURE = ("model", "parse", "policy")
# modules that reach the system (files, processes, the kernel, the clock)
IO_MODULES = {"os", "io", "subprocess", "socket", "shutil", "fcntl", "syslog", "nftables", "tempfile",
              "glob", "pathlib", "time", "threading", "concurrent", "signal", "select", "urllib", "http",
              "sys"}


def module_name(path):
    rel = path.relative_to(LIB).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer(name):
    """The layer of a project module; the top-level modules (the package,
    the shims hook and guesthook) sit above entry."""
    parts = name.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS) else "top"


def rank(layer_name):
    return LAYERS.index(layer_name) if layer_name in LAYERS else len(LAYERS)


MODULES = {module_name(p): p for p in sorted((LIB / PACKAGE).rglob("*.py")) if "__pycache__" not in p.parts}


def _resolve(name, node):
    """Absolute names a `from ... import` / `import` statement brings in."""
    if isinstance(node, ast.Import):
        return [(a.name, None) for a in node.names]
    package = name if MODULES[name].name == "__init__.py" else name.rsplit(".", 1)[0]
    if node.level:
        base = package.split(".")
        base = base[:len(base) - node.level + 1]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module
    out = []
    for alias in node.names:
        sub = f"{target}.{alias.name}"
        out.append((sub, None) if sub in MODULES else (target, alias.name))
    return out


def imports(name):
    """[(imported module, imported name or None, line)] of a project module, anywhere in it."""
    tree = ast.parse(MODULES[name].read_text(), str(MODULES[name]))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out += [(mod, what, node.lineno) for mod, what in _resolve(name, node)]
    return out


def project(mod):
    return mod == PACKAGE or mod.startswith(PACKAGE + ".")


def test_every_module_is_in_a_layer():
    stray = [n for n in MODULES if layer(n) == "top" and n not in (PACKAGE, f"{PACKAGE}.hook", f"{PACKAGE}.guesthook")]
    assert not stray, f"modules outside the layers: {stray}"


def upward_imports(name):
    mine = rank(layer(name))
    return [f"{name} ({layer(name)}) line {line}: {mod} ({layer(mod)})" for mod, _, line in imports(name)
            if project(mod) and mod != PACKAGE and rank(layer(mod)) > mine]


def io_imports(name):
    if layer(name) not in PURE:
        return []
    return [f"{name} line {line}: {mod}" for mod, _, line in imports(name) if mod.split(".")[0] in IO_MODULES]


def test_imports_point_downwards():
    wrong = [w for name in sorted(MODULES) for w in upward_imports(name)]
    assert not wrong, "imports from a layer above: " + "; ".join(wrong)


def test_pure_layers_do_no_io():
    wrong = [w for name in sorted(MODULES) for w in io_imports(name)]
    assert not wrong, "I/O modules imported by a pure layer (model, parse, policy): " + "; ".join(wrong)


def find_cycles(graph):
    seen, stack, cycles = set(), [], []

    def visit(n):
        if n in stack:
            cycles.append(stack[stack.index(n):] + [n])
            return
        if n in seen:
            return
        seen.add(n)
        stack.append(n)
        for m in sorted(graph[n]):
            visit(m)
        stack.pop()
    for n in sorted(graph):
        visit(n)
    return cycles


def test_no_import_cycles():
    graph = {n: {m for m, _, _ in imports(n) if m in MODULES and m != n} for n in MODULES}
    # a package's __init__ is imported with every module below it: not an edge of interest
    graph = {n: {m for m in deps if MODULES[m].name != "__init__.py"} for n, deps in graph.items()}
    cycles = find_cycles(graph)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def private_uses(name):
    tree = ast.parse(MODULES[name].read_text())
    wrong = [f"line {line}: {mod}.{what}" for mod, what, line in imports(name)
             if project(mod) and what and what.startswith("_") and not what.startswith("__")]
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for (mod, what), alias in zip(_resolve(name, node), node.names):
                target = mod if what is None else f"{mod}.{what}"
                if target in MODULES:
                    aliases[alias.asname or alias.name.split(".")[0]] = target
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and node.attr.startswith("_") and not node.attr.startswith("__")):
            wrong.append(f"line {node.lineno}: {aliases[node.value.id]}.{node.attr}")
    return [f"{name} {w}" for w in wrong]


def test_no_private_names_across_modules():
    wrong = [w for name in sorted(MODULES) for w in private_uses(name)]
    assert not wrong, "private names of other modules used: " + "; ".join(wrong)


@pytest.mark.parametrize("module", ["pve_microseg.guesthook", "pve_microseg.hook"])
def test_hot_paths_load_neither_yaml_nor_argparse(module):
    """The hookscript runs at every guest start (budget ~60 ms, PyYAML alone
    costs ~15 ms); the if-up.d hook at every ifup of a bridge."""
    code = (f"import sys; sys.path.insert(0, {str(LIB)!r}); import {module}; "
            "print(sorted(m for m in ('yaml', 'argparse') if m in sys.modules))")
    r = subprocess.run(["/usr/bin/python3", "-I", "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]", f"importing {module} loads {r.stdout.strip()}"


def test_this_check_can_fail(tmp_path):
    """The checks above see a wrong import when there is one."""
    bad = tmp_path / "zz_bad_import_probe.py"          # read as if it were lib/pve_microseg/policy/...
    bad.write_text("import subprocess\nfrom ..edges import files\nfrom ..parse.addresses import _MAC\n")
    try:
        MODULES["pve_microseg.policy.zz_bad_import_probe"] = bad
        name = "pve_microseg.policy.zz_bad_import_probe"
        assert upward_imports(name) == [f"{name} (policy) line 2: pve_microseg.edges.files (edges)"]
        assert io_imports(name) == [f"{name} line 1: subprocess"]
        assert private_uses(name) == [f"{name} line 3: pve_microseg.parse.addresses._MAC"]
        with pytest.raises(AssertionError, match="policy"):
            test_imports_point_downwards()
    finally:
        del MODULES["pve_microseg.policy.zz_bad_import_probe"]
