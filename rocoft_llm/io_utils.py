"""Crash-safe file output: everything another step reads is written under a temporary name and
renamed into place, so a reader never sees half a file or half a directory."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import RoCoFTError


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_json(path: str | Path, what: str, fix: str, error: type[Exception] = RoCoFTError):
    """Parsed JSON of ``path``; a missing or invalid file is ``error`` naming ``what``, the place and ``fix``."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist; {fix}.") from None
    except json.JSONDecodeError as e:
        raise error(f"{what} {path} is not valid JSON (line {e.lineno} column {e.colno}: {e.msg}); {fix}.") from None


def atomic_write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, data) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


@contextmanager
def atomic_directory(path: str | Path, overwrite: bool = False, what: str = "output") -> Iterator[Path]:
    """Yield a fresh temporary directory beside ``path``; on success rename it to ``path``.

    An existing ``path`` is an error unless ``overwrite``; then it is replaced only after the new
    directory is complete. On failure the temporary directory is removed and ``path`` untouched.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise RoCoFTError(f"{what} directory {path} already exists; choose another path or pass overwrite "
                          "(--overwrite) to replace it.")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if path.exists():
        old = path.parent / f".{path.name}.old-{os.getpid()}"
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
