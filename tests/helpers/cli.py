"""Shared by the hostile-input tables (tests/hostile/): run the real CLI in-process and check that a bad
input is refused with a clear message (exit 2, no traceback) and that nothing was written or damaged."""

from __future__ import annotations

import hashlib
import traceback
from pathlib import Path

from click.testing import CliRunner

from rocoft_llm.cli import main

from .paths import TINY


def run_cli(*args: str):
    """The CLI as a user runs it, in-process (exceptions are caught and kept, as the real entry point would
    print them)."""
    return CliRunner().invoke(main, [str(a) for a in args])


def snapshot(*roots: Path) -> dict[str, str]:
    """sha256 of every file under ``roots`` (and which paths exist), to prove nothing was written or damaged."""
    out = {}
    for root in roots:
        root = Path(root)
        if root.is_file():
            out[str(root)] = hashlib.sha256(root.read_bytes()).hexdigest()
        elif root.is_dir():
            for p in sorted(root.rglob("*")):
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


def assert_refused(result, *needles: str, code: int = 2) -> None:
    """Exit ``code`` with a message containing every needle, and no traceback (no unexpected exception)."""
    unexpected = result.exception is not None and not isinstance(result.exception, SystemExit)
    shown = "".join(traceback.format_exception(result.exception)) if unexpected else ""
    assert not unexpected, f"traceback instead of a message:\n{shown}\noutput:\n{result.output}"
    assert result.exit_code == code, result.output
    for needle in needles:
        assert needle in result.output, f"{needle!r} not in:\n{result.output}"
    assert "Traceback" not in result.output


REPO_TINY = TINY
