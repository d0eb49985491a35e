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

from .errors import InputError, RoCoFTError


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_text(path: str | Path, what: str, fix: str) -> str:
    """The UTF-8 text of user file ``path``; missing, unreadable or non-UTF-8 files are an :class:`InputError`
    naming the file, the line and the bad bytes, and ``fix``."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(path, f"{what} does not exist", fix) from None
    except IsADirectoryError:
        raise InputError(path, f"{what} is a directory, not a file", fix) from None
    except PermissionError:
        raise InputError(
            path, f"{what} cannot be read (permission denied)", "make it readable or " + fix
        ) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise InputError(
            path,
            f"bytes {data[e.start : e.end + 3]!r} are not UTF-8 ({what} must be UTF-8 text)",
            f"convert it to UTF-8 (e.g. `iconv -f latin1 -t utf-8`), or {fix}",
            f"line {line}",
        ) from None


def read_json(path: str | Path, what: str, fix: str, error: type[Exception] = InputError):
    """Parsed JSON of ``path``; a missing, non-UTF-8 or invalid file is ``error`` naming ``what``, the place
    and ``fix``."""
    path = Path(path)
    try:
        text = read_text(path, what, fix)
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            bad = text.splitlines()[e.lineno - 1][max(0, e.colno - 20) : e.colno + 20] if text.strip() else ""
            problem = (
                f"{what} is empty, not JSON"
                if not text.strip()
                else f"{what} is not valid JSON ({e.msg} at column {e.colno}, near {bad!r})"
            )
            raise InputError(path, problem, fix, None if not text.strip() else f"line {e.lineno}") from None
    except InputError as e:
        if error is InputError:
            raise
        raise error(str(e)) from None


def read_jsonl(path: str | Path, what: str, fix: str) -> list[tuple[int, object]]:
    """(line number, parsed value) of every non-blank line of a JSON-lines file."""
    rows = []
    for n, line in enumerate(read_text(path, what, fix).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((n, json.loads(line)))
        except json.JSONDecodeError as e:
            raise InputError(path, f"not JSON ({e.msg}): {line[:60]!r}", fix, f"line {n}") from None
    return rows


def read_yaml(path: str | Path, what: str, fix: str):
    """Parsed YAML of ``path`` (None for an empty file); invalid YAML names the line."""
    import yaml

    text = read_text(path, what, fix)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or str(e)
        raise InputError(
            path, f"invalid YAML ({problem})", fix, f"line {mark.line + 1}" if mark else None
        ) from None


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
        raise RoCoFTError(
            f"{what} directory {path} already exists; choose another path or pass overwrite "
            "(--overwrite) to replace it."
        )
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
