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
