"""The package version, in one place, and the versions line benchmarks print beside their numbers."""

from __future__ import annotations

import importlib.metadata
import platform

__version__ = "0.1.0"


def versions_line(packages: tuple[str, ...] = ("torch", "transformers", "peft")) -> str:
    """``rocoft-llm 0.1.0, torch 2.13.0, ..., python 3.11.7`` (a package that is not installed
    shows as "absent"), so every printed measurement says what produced it."""

    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "absent"

    named = ", ".join(f"{name} {version(name)}" for name in packages)
    return f"rocoft-llm {__version__}, {named}, python {platform.python_version()}"
