"""Which directories rocoft-llm may delete, and which one a live run is using.

Every output directory the tool creates carries :data:`OWNER_MARKER` (what wrote it, when, which
version). ``--overwrite`` replaces only a directory with that marker, or an empty one; it never
replaces ``/``, the home directory, the current directory or any of its ancestors, an ancestor of
the recipe, a regular file, or a directory a live run holds (:func:`hold_lock`: an ``flock`` on
:data:`LOCK_FILE` inside it, which the OS releases when the holding process dies, so a killed run
never leaves a stale lock behind). One function, :func:`check_replaceable`, serves every command.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path

from .errors import RoCoFTError

OWNER_MARKER = ".rocoft-llm-output.json"
LOCK_FILE = ".rocoft-llm.lock"
#: completion markers rocoft-llm wrote before :data:`OWNER_MARKER` existed (they also prove ownership)
LEGACY_MARKERS = ("rocoft_gguf_import.json", "rocoft_merge.json")
#: what a train run writes before its first step: a directory holding only these is a failed start
START_FILES = frozenset({OWNER_MARKER, LOCK_FILE, "recipe.resolved.yaml", "data_manifest.json"})


def owner_record(kind: str) -> dict:
    from .version import __version__

    return {"written_by": "rocoft-llm", "version": __version__, "kind": kind, "pid": os.getpid()}


def mark_output(directory: str | Path, kind: str) -> None:
    """Write the ownership marker into ``directory`` (created by rocoft-llm for ``kind`` output)."""
    path = Path(directory) / OWNER_MARKER
    path.write_text(json.dumps({**owner_record(kind), "created": time.strftime("%Y-%m-%dT%H:%M:%S")}) + "\n")


def is_marked(directory: str | Path) -> bool:
    d = Path(directory)
    return any((d / name).is_file() for name in (OWNER_MARKER, *LEGACY_MARKERS))


def _protected(path: Path, recipe: str | Path | None) -> str | None:
    """Why ``path`` must never be replaced, or None."""
    resolved = path.resolve()
    if resolved == Path(resolved.anchor):
        return "it is the filesystem root"
    if resolved == Path.home().resolve():
        return "it is the home directory"
    cwd = Path.cwd().resolve()
    if resolved == cwd:
        return "it is the current directory"
    if resolved in cwd.parents:
        return "it contains the current directory"
    if recipe is not None and resolved in Path(recipe).resolve().parents:
        return f"it contains the recipe {recipe}"
    return None


def check_not_a_file(path: str | Path, what: str) -> None:
    """A regular file where a directory is to be written is an error (also before ``--overwrite``)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RoCoFTError(
            f"{what} directory {path} is an existing file, not a directory; choose another path "
            "(rocoft-llm never replaces a file it did not write)."
        )


def check_replaceable(path: str | Path, what: str, recipe: str | Path | None = None) -> None:
    """Raise unless ``--overwrite`` may delete ``path``: an empty directory or one rocoft-llm wrote
    (it carries :data:`OWNER_MARKER`), not a protected place, not held by a live run."""
    path = Path(path)
    check_not_a_file(path, what)
    if not path.exists():
        return
    why = _protected(path, recipe)
    if why:
        raise RoCoFTError(
            f"refusing to replace {what} directory {path} with --overwrite: {why}. Choose a new "
            "directory of its own for the output."
        )
    check_unlocked(path, what)
    if any(path.iterdir()) and not is_marked(path):
        raise RoCoFTError(
            f"refusing to replace {what} directory {path} with --overwrite: it is not empty and was not "
            f"written by rocoft-llm (no {OWNER_MARKER} in it). Remove it yourself if it really is "
            "disposable, or choose another path."
        )


def holds_results(directory: str | Path) -> bool:
    """Whether ``directory`` holds anything beyond what a failed start leaves (:data:`START_FILES`)."""
    d = Path(directory)
    return d.is_dir() and any(p.name not in START_FILES for p in d.iterdir())


def lock_holder(directory: str | Path) -> str | None:
    """``"pid N"`` of the live process holding ``directory``'s run lock, or None when nobody holds it."""
    path = Path(directory) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.read(fd, 64).decode(errors="replace").strip()[:20]
            return f"pid {pid}" if pid.isdigit() else "a process whose pid is not recorded"
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def check_unlocked(directory: str | Path, what: str) -> None:
    holder = lock_holder(directory)
    if holder:
        raise RoCoFTError(
            f"{what} directory {directory} is in use by a live run ({holder}); wait for it to finish or "
            f"stop it (kill <pid>), then try again."
        )


class RunLock:
    """An exclusive ``flock`` on ``<directory>/.rocoft-llm.lock`` holding this process's pid;
    released by :meth:`release` or, whatever happens, by the OS when the process exits."""

    def __init__(self, directory: str | Path, what: str = "output"):
        self.path = Path(directory) / LOCK_FILE
        self.fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        for attempt in range(20):  # a concurrent lock_holder probe holds a shared lock for microseconds
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if attempt == 19:
                    os.close(self.fd)
                    self.fd = None
                    check_unlocked(directory, what)  # names the holder
                    raise RoCoFTError(f"{what} directory {directory} is locked by another run.") from None
                time.sleep(0.05)
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"{os.getpid()}\n".encode())

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()
