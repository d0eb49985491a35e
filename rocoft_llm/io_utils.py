"""Crash-safe file output: everything another step reads is written under a temporary name and
renamed into place, so a reader never sees half a file or half a directory."""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import DiskFullError, InputError, RoCoFTError, bounded, preview
from .ownership import (
    UNWRITABLE_ERRNOS,
    apply_umask,
    check_not_a_file,
    check_replaceable,
    check_writable,
    mark_output,
    target_path,
    unwritable,
)

log = logging.getLogger("rocoft_llm")


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
    if data.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark (editors on Windows write one)
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise utf8_error(path, what, fix, data, e) from None


def utf8_error(path, what: str, fix: str, data: bytes, e: UnicodeDecodeError, line: int = 1) -> InputError:
    """The error for bytes of ``data`` that are not UTF-8 (``e``), naming their line (``data`` starts on ``line``)."""
    line += data[: e.start].count(b"\n")
    return InputError(
        path,
        f"bytes {data[e.start : e.end + 3]!r} are not UTF-8 ({what} must be UTF-8 text)",
        f"convert it to UTF-8 (e.g. `iconv -f latin1 -t utf-8`), or {fix}",
        f"line {line}",
    )


def read_json(
    path: str | Path, what: str, fix: str, error: type[Exception] = InputError, object_pairs_hook=None
):
    """Parsed JSON of ``path``; a missing, non-UTF-8 or invalid file is ``error`` naming ``what``, the place
    and ``fix``."""
    path = Path(path)
    try:
        text = read_text(path, what, fix)
        try:
            return json.loads(text, object_pairs_hook=object_pairs_hook)
        except RecursionError:
            raise InputError(path, f"{what} is nested too deeply to read", fix) from None
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
        except RecursionError:
            raise InputError(path, "a record nested too deeply to read", fix, f"line {n}") from None
        except json.JSONDecodeError as e:
            raise InputError(path, f"not JSON ({e.msg}): {line[:60]!r}", fix, f"line {n}") from None
    return rows


#: deepest nesting a recipe may use (real recipes use 3-4 levels)
MAX_YAML_DEPTH = 32


def safe_yaml_load(text: str):
    """``yaml.safe_load`` for recipes and overrides, refusing aliases (``*name``: a "billion laughs"
    file expands a few lines into gigabytes), nesting deeper than :data:`MAX_YAML_DEPTH` and a key
    given twice in one mapping (plain YAML keeps the last silently), each as a ``yaml.YAMLError`` at
    the offending line before anything is expanded."""
    import yaml
    from yaml.composer import ComposerError
    from yaml.constructor import ConstructorError

    class RecipeLoader(yaml.SafeLoader):
        depth = 0

        def construct_mapping(self, node, deep=False):
            lines = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    first = lines.get(key)
                    lines.setdefault(key, key_node.start_mark.line + 1)
                except TypeError:  # an unhashable key: the base class reports it
                    continue
                if first is not None:
                    raise ConstructorError(
                        None,
                        None,
                        f"key {preview(key, 40)} is given twice (first on line {first}); keep one",
                        key_node.start_mark,
                    )
            return super().construct_mapping(node, deep)

        def compose_node(self, parent, index):
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent):
                raise ComposerError(
                    None,
                    None,
                    f"alias *{preview(event.anchor, 40)[1:-1]} found: aliases and anchors are not allowed in "
                    "recipes; write the value out in full",
                    event.start_mark,
                )
            self.depth += 1
            if self.depth > MAX_YAML_DEPTH:
                raise ComposerError(
                    None,
                    None,
                    f"nesting deeper than {MAX_YAML_DEPTH} levels; no recipe needs that many",
                    event.start_mark,
                )
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    loader = RecipeLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def read_yaml(path: str | Path, what: str, fix: str):
    """Parsed YAML of ``path`` (None for an empty file); invalid YAML names the line."""
    import yaml

    text = read_text(path, what, fix)
    try:
        return safe_yaml_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = bounded(getattr(e, "problem", None) or str(e), 300)
        raise InputError(
            path, f"invalid YAML ({problem})", fix, f"line {mark.line + 1}" if mark else None
        ) from None
    except RecursionError:
        raise InputError(path, f"nesting deeper than {MAX_YAML_DEPTH} levels", fix) from None


#: torch's zip writer reports a failed write (a full disk) as a RuntimeError with one of these
TORCH_WRITE_FAILURES = ("unexpected pos", "file write failed", "PytorchStreamWriter failed")


def free_space(path: str | Path) -> str:
    """Free space on the filesystem holding ``path`` (its nearest existing ancestor), for messages."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        free = shutil.disk_usage(p).free
    except OSError:
        return "unknown space"
    return f"{free / 2**30:.2f} GiB" if free >= 2**30 else f"{free / 2**20:.1f} MiB"


def is_disk_full(e: BaseException) -> bool:
    if isinstance(e, OSError):
        return e.errno in (errno.ENOSPC, errno.EDQUOT)
    return isinstance(e, RuntimeError) and any(m in str(e) for m in TORCH_WRITE_FAILURES)


@contextmanager
def disk_full_guard(path: str | Path, what: str) -> Iterator[None]:
    """Turn a full disk (ENOSPC/EDQUOT, or torch's failed-write RuntimeError) inside the block into
    one :class:`DiskFullError` naming the file (the failing one when the OS says), the free space
    and what to free."""
    try:
        yield
    except DiskFullError:
        raise
    except (OSError, RuntimeError) as e:
        if not is_disk_full(e):
            raise
        name = getattr(e, "filename", None) or path
        raise DiskFullError(name, what, free_space(name)) from None


def append_line(path: str | Path, line: str, what: str) -> None:
    """Append ``line`` (one record, no newline) to ``path`` with ONE write of the whole line, then
    fsync: a crash leaves at most a torn LAST line. On a full disk the file is cut back to its size
    before the append (no half line stays) and :class:`DiskFullError` is raised."""
    path = Path(path)
    data = (line + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        try:
            with disk_full_guard(path, what):
                written = os.write(fd, data)
                if written != len(data):  # a short write: only a full disk does that to a regular file
                    raise OSError(errno.ENOSPC, "short write", str(path))
                os.fsync(fd)
        except DiskFullError:
            try:
                os.ftruncate(fd, size)
            except OSError:
                pass
            raise
    finally:
        os.close(fd)


def os_error_message(e: OSError) -> str | None:
    """The one message for an OSError that escaped a write (full disk, read-only filesystem, no
    permission, a name too long), or None for any other (a bug: its traceback is shown)."""
    name = getattr(e, "filename", None)
    if is_disk_full(e):
        return str(DiskFullError(name or "(unknown file)", "a file", free_space(name or ".")))
    if e.errno in UNWRITABLE_ERRNOS and name:  # read-only filesystem or no permission: one message
        return str(unwritable(name, "file", e))
    if e.errno == errno.ENAMETOOLONG:
        return (
            f"{preview(str(name or ''))}: a file name is too long for the filesystem; choose a shorter one."
        )
    return None


def atomic_write_text(path: str | Path, text: str, mode: int = 0o666) -> None:
    """Write ``path`` through a temporary file renamed into place, mode ``mode`` less the umask."""
    path = Path(path)
    with disk_full_guard(path, "file"):
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            apply_umask(tmp, base=mode)
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


def check_output_target(path: str | Path, overwrite: bool, what: str) -> Path:
    """The normalised ``path`` once it is known that it may become a new output directory: it does not
    exist, or ``overwrite`` and rocoft-llm may replace it (:func:`check_replaceable`), and its folder can be written."""
    path = target_path(path, what)
    check_not_a_file(path, what)
    if path.exists() and overwrite:
        check_replaceable(path, what)
    if path.exists() and not overwrite:
        raise RoCoFTError(
            f"{what} directory {path} already exists; choose another path or pass --overwrite "
            "(overwrite=True from Python) to replace it."
        )
    check_writable(path, f"{what} directory")
    return path


def check_output_file(path: str | Path, overwrite: bool, flag: str = "--out") -> Path:
    """The normalised ``path`` (:func:`~.ownership.target_path`) of a file output (``--out``), once
    it is known that it may be written: not a directory, not an existing file unless ``overwrite``,
    its folder writable. Every command that writes one file calls this before any long work."""
    path = target_path(path, f"{flag} file")
    if path.is_dir():
        raise RoCoFTError(f"{flag} {path} is a directory; give a file name.")
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise RoCoFTError(
            f"{flag} {path} already exists; choose another path or pass --overwrite to replace it."
        )
    check_writable(path, f"{flag} file")
    return path


def check_output_folder(path: str | Path, flag: str = "--out") -> Path:
    """The normalised ``path`` of a folder a command writes its files into (``eval --out``), once it
    is known not to be a file and to be writable; called before any long work."""
    path = target_path(path, f"{flag} directory")
    check_not_a_file(path, flag)
    check_writable(path, f"{flag} directory", inside=True)
    return path


@contextmanager
def atomic_directory(path: str | Path, overwrite: bool = False, what: str = "output") -> Iterator[Path]:
    """Yield a fresh temporary directory beside ``path``; on success rename it to ``path``.

    An existing ``path`` is an error unless ``overwrite``; then it is replaced only after the new
    directory is complete, and only when rocoft-llm wrote it (:func:`ownership.check_replaceable`).
    On failure the temporary directory is removed and ``path`` untouched. The new directory carries
    the ownership marker. Temporary directories a killed process left beside ``path`` are removed.
    """
    path = check_output_target(path, overwrite, what)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=temporary_prefix(path)))
    apply_umask(tmp, base=0o777)
    try:
        with disk_full_guard(tmp, what):
            yield tmp
            mark_output(tmp, what, os.listdir(tmp))
    except DiskFullError as e:  # name the file as it would have been called, and free the partial copy
        shutil.rmtree(tmp, ignore_errors=True)
        raise DiskFullError(e.path.replace(str(tmp), str(path)), e.what, free_space(path)) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if path.exists():
        old = path.parent / f".{path.name}.old-{os.getpid()}"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def temporary_prefix(path: str | Path) -> str:
    """Name prefix of a temporary sibling of ``path``; it carries the pid so a later run can tell
    a dead writer's leftovers (:func:`remove_stale_temporaries`) from a live writer's."""
    return f".{Path(path).name}.tmp-{os.getpid()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Remove the temporary siblings of ``path`` (``.NAME.tmp-PID-*``, ``.NAME.old-PID``) whose
    writer is dead (a killed fetch-model, merge or prepare); returns what was removed."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(?:tmp|old)-(\d+)(?:-|$)")
    removed = []
    for item in path.parent.iterdir():
        m = pattern.match(item.name)
        if m and not _alive(int(m.group(1))):
            shutil.rmtree(item, ignore_errors=True) if item.is_dir() else item.unlink(missing_ok=True)
            log.warning("removed %s, left behind by an interrupted run (pid %s)", item, m.group(1))
            removed.append(item)
    return removed
