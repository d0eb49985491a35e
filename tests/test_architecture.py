"""The shape of the package as drawn: the method package (rocoft/) depends on nothing above it, no
import cycles between modules (imports inside functions included), and no file over 400 lines."""

import ast
from pathlib import Path

import rocoft_llm

PACKAGE = Path(rocoft_llm.__file__).parent
#: modules below rocoft/ that it may use: leaves that import nothing else of the package but errors
#: leaf modules the method package may use (strict_settings: the strict pydantic base of RoCoFTConfig)
BELOW_ROCOFT = {
    "rocoft_llm.architectures",
    "rocoft_llm.distributed",
    "rocoft_llm.errors",
    "rocoft_llm.io_utils",
    "rocoft_llm.ownership",
    "rocoft_llm.strict_settings",
    "rocoft_llm.version",
}
#: what those leaves may import: errors, the version string, and the ownership rules io_utils applies
LEAF_DEPS = {"rocoft_llm.errors", "rocoft_llm.version", "rocoft_llm.ownership"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """The rocoft_llm modules that ``path`` imports anywhere (resolved to existing modules)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            candidates = [target] + [f"{target}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            candidates = [a.name for a in node.names]
        else:
            continue
        found |= {c for c in candidates if c in MODULES}
    return found - {name}


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py") if "recipes" not in p.parts}
GRAPH = {name: imports_of(path) for name, path in MODULES.items()}


def test_rocoft_package_depends_on_nothing_above_it():
    for name, deps in GRAPH.items():
        if name.startswith("rocoft_llm.rocoft"):
            above = {d for d in deps if not d.startswith("rocoft_llm.rocoft") and d not in BELOW_ROCOFT}
            assert not above, f"{name} imports {sorted(above)}"
    for leaf in BELOW_ROCOFT:
        assert GRAPH[leaf] <= LEAF_DEPS, f"{leaf} imports {sorted(GRAPH[leaf])}"


def test_eval_does_not_reach_up_into_train():
    """Evaluation sits below training: what both need (collating examples) lives in data/."""
    for name, deps in GRAPH.items():
        if name.startswith("rocoft_llm.eval"):
            up = sorted(d for d in deps if d.startswith("rocoft_llm.train"))
            assert not up, f"{name} imports {up}"


def test_no_import_cycles():
    graph = GRAPH
    cycles = []
    for start in graph:
        seen, stack = set(), [(start, [start])]
        while stack:
            node, path = stack.pop()
            for dep in graph.get(node, ()):
                if dep == start:
                    cycles.append(path + [dep])
                elif dep not in seen and dep in graph:
                    seen.add(dep)
                    stack.append((dep, path + [dep]))
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_file_over_400_lines():
    long = {
        str(p.relative_to(PACKAGE.parent)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 400
    }
    assert not long, f"split these files (one job each): {long}"


def test_imports_come_before_definitions():
    """A module's top-level imports all precede its first definition (no bottom-of-file registration)."""
    late = []
    for name, path in MODULES.items():
        body = ast.parse(path.read_text()).body
        defined = False
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defined = True
            elif defined and isinstance(node, (ast.Import, ast.ImportFrom)):
                late.append(f"{name}:{node.lineno}")
    assert not late, f"imports after definitions: {late}"


def test_methods_are_asked_not_compared():
    """Only the method registry (rocoft_llm/methods/) knows method names: the rest of the package asks
    ``get_method(name)`` instead of comparing ``method == "..."``."""
    import re

    pattern = re.compile(r"""method\S*\s*(==|!=)|(==|!=)\s*\S*method\b|method\S* (not )?in \(""")
    found = [
        f"{p.relative_to(PACKAGE.parent)}:{i}"
        for p in PACKAGE.rglob("*.py")
        if "methods" not in p.relative_to(PACKAGE).parts
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert not found, f"method names compared outside rocoft_llm/methods/: {found}"
