"""A benchmark script's functions, for the tests of the benchmarks themselves (bench/ is scripts,
not a package: they are loaded by path, nothing is added to ``sys.path``)."""

import importlib.util
from types import ModuleType

from .paths import REPO


def load_bench_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def table_rows(text: str, header: str) -> dict[str, list[str]]:
    """The rows of the markdown tables a benchmark printed, keyed by their first cell (the header
    row, whose first cell is ``header``, left out)."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0] != header and not set(cells[0]) <= set("-:"):
            rows[cells[0]] = cells
    return rows
