"""Which directories rocoft-llm may delete, and which one a live run is using.

Every output directory the tool creates carries :data:`OWNER_MARKER` (what wrote it, when, which
version). ``--overwrite`` replaces only a directory with that marker, or an empty one; it never
replaces ``/``, the home directory, the current directory or any of its ancestors, an ancestor of
the recipe, a regular file, or a directory a live run holds (:func:`hold_lock`: an ``flock`` on
:data:`LOCK_FILE` inside it, which the OS releases when the holding process dies, so a killed run
never leaves a stale lock behind). One function, :func:`check_replaceable`, serves every command.

Every command that writes first turns its target into one absolute, normalised path
(:func:`target_path`) and runs every check on that path, so ``../missing/../here`` is seen as
``here`` before anything is created. A marker proves ownership only together
with what the marker says was written there (its recorded entries; for a training run, the names a
run writes): a folder holding anything else - a marker copied beside a user's files, or files
added to an output - is refused, and the refusal lists those entries.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import tempfile
import time
from pathlib import Path

from .errors import RoCoFTError, preview

OWNER_MARKER = ".rocoft-llm-output.json"
LOCK_FILE = ".rocoft-llm.lock"
#: completion markers rocoft-llm wrote before :data:`OWNER_MARKER` existed (they also prove ownership)
LEGACY_MARKERS = ("rocoft_gguf_import.json", "rocoft_merge.json")
#: the longest name of one file or folder that Linux filesystems accept, in bytes
NAME_MAX = 255
#: how many entries a refusal lists before it says "and N more"
LISTED_ENTRIES = 12
#: what a train run writes before its first step: a directory holding only these is a failed start
START_FILES = frozenset({OWNER_MARKER, LOCK_FILE, "recipe.resolved.yaml", "data_manifest.json"})
#: what a training run's directory may hold besides its method's product folder (``--overwrite``
#: refuses, listing them, a run directory that holds anything else)
RUN_ENTRIES = START_FILES | {
    "metrics.jsonl",
    "tensorboard",
    "loss_curve.png",
    "summary.json",
    "checkpoints",
    "merged",
    "eval",
    "slurm-logs",
    "wandb",
}
#: what an adapter, merged or converted model, peft export or prepared-data directory holds (for
#: markers of older versions, which did not record their entries)
OUTPUT_NAMES = re.compile(
    r"^(config\.json|generation_config\.json|model[-.\w]*\.safetensors(\.index\.json)?|tokenizer[-.\w]*"
    r"|special_tokens_map\.json|added_tokens\.json|chat_template\.jinja|vocab\.json|merges\.txt"
    r"|adapter_config\.json|adapter_model\.safetensors|README\.md|manifest\.json|records\.jsonl|tokenized"
    r"|gguf_source_metadata\.json|rocoft_[\w.]*\.json)$"
)
#: name prefix of the file :func:`writable_problem` creates and removes to test a folder
WRITE_PROBE = ".rocoft-llm-write-test-"


def owner_record(kind: str) -> dict:
    from .version import __version__

    return {"written_by": "rocoft-llm", "version": __version__, "kind": kind, "pid": os.getpid()}


def target_path(path: str | Path, what: str = "output") -> Path:
    """The absolute, normalised form of an output target, made ONCE before any check of it.

    The folders above the last name are resolved as the OS resolves them once the missing ones
    exist (``runs/nx/../x`` is ``runs/x``; a symlinked folder is followed); the last name is kept as
    written, so a symbolic link there stays visible to the checks. A name longer than
    :data:`NAME_MAX` bytes, which no filesystem accepts, is refused here.
    """
    raw = os.fspath(path)
    if not raw.strip():
        raise RoCoFTError(f"the {what} path is empty; give a path.")
    for part in raw.split("/"):
        size = len(os.fsencode(part))
        if size > NAME_MAX:
            raise RoCoFTError(
                f"the {what} path {preview(raw)} has a name of {size} bytes ({preview(part, 40)}); "
                f"filesystems accept at most {NAME_MAX} bytes per name. Choose a shorter name."
            )
    head, tail = os.path.split(raw.rstrip("/") or "/")
    if tail in ("", ".", ".."):
        return Path(os.path.realpath(raw))
    return Path(os.path.realpath(head or ".")) / tail


def mark_output(directory: str | Path, kind: str, entries: list[str] | None = None) -> None:
    """Write the ownership marker into ``directory`` (created by rocoft-llm for ``kind`` output),
    with the names of what it holds (``entries``: a complete directory; a training run, which grows,
    is checked against :data:`RUN_ENTRIES` instead)."""
    path = Path(directory) / OWNER_MARKER
    record = {**owner_record(kind), "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    if entries is not None:
        record["entries"] = sorted(entries)
    path.write_text(json.dumps(record) + "\n")


def is_marked(directory: str | Path) -> bool:
    d = Path(directory)
    return any((d / name).is_file() for name in (OWNER_MARKER, *LEGACY_MARKERS))


def _is_temporary(name: str) -> bool:
    """A temporary of rocoft-llm (``.NAME.tmp-PID-*``, ``.NAME.old-PID``, a write probe)."""
    return name.startswith(".") and (".tmp-" in name or ".old-" in name or name.startswith(WRITE_PROBE))


def foreign_entries(directory: str | Path, also: frozenset[str] = frozenset()) -> list[str]:
    """What a marked ``directory`` holds that rocoft-llm did not write there: names outside the
    marker's ``entries`` (or :data:`RUN_ENTRIES` and ``also`` for a training run). A marker copied
    into a user's folder, or files added to an output, show up here. A marker of an older version,
    which recorded no entries (or only a legacy marker), accounts for the names rocoft-llm's
    outputs hold (:data:`OUTPUT_NAMES`)."""
    d = Path(directory)
    try:
        record = json.loads((d / OWNER_MARKER).read_text())
    except (OSError, ValueError):
        record = {}
    record = record if isinstance(record, dict) else {}
    if isinstance(record.get("entries"), list):
        known = set(record["entries"])
    elif record.get("kind") == "training run":
        known = set(RUN_ENTRIES | also)
    else:
        known = {p.name for p in d.iterdir() if OUTPUT_NAMES.match(p.name)}
    return _outside(d, known)


def run_strays(directory: str | Path, also: frozenset[str] = frozenset()) -> list[str]:
    """What ``directory`` holds beyond what a training run writes there (:data:`RUN_ENTRIES`, ``also``)."""
    return _outside(Path(directory), set(RUN_ENTRIES | also))


def _outside(d: Path, known: set[str]) -> list[str]:
    known = known | {OWNER_MARKER, LOCK_FILE}
    return sorted(
        p.name + ("/" if p.is_dir() and not p.is_symlink() else "")
        for p in d.iterdir()
        if p.name not in known and not _is_temporary(p.name)
    )


def shown(names: list[str]) -> str:
    """Up to :data:`LISTED_ENTRIES` names for a message, then "and N more"."""
    more = f" and {len(names) - LISTED_ENTRIES} more" if len(names) > LISTED_ENTRIES else ""
    return ", ".join(names[:LISTED_ENTRIES]) + more


def listing(directory: Path) -> str:
    """What ``directory`` holds, for a refusal (folders end in /)."""
    return shown(
        sorted(p.name + ("/" if p.is_dir() and not p.is_symlink() else "") for p in directory.iterdir())
    )


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
    if path.is_symlink() and not path.exists():
        raise RoCoFTError(
            f"{what} directory {path} is a symbolic link to {os.readlink(path)}, which does not exist; "
            "remove the link or choose another path."
        )
    if path.exists() and not path.is_dir():
        raise RoCoFTError(
            f"{what} directory {path} is an existing file, not a directory; choose another path "
            "(rocoft-llm never replaces a file it did not write)."
        )


def check_replaceable(
    path: str | Path, what: str, recipe: str | Path | None = None, also: frozenset[str] = frozenset()
) -> None:
    """Raise unless ``--overwrite`` may delete ``path``: an empty directory or one rocoft-llm wrote
    (it carries :data:`OWNER_MARKER` and nothing the marker does not name: :func:`foreign_entries`,
    ``also`` naming more a run may hold), not a protected place, not held by a live run."""
    path = target_path(path, what)
    check_not_a_file(path, what)
    if not path.exists():
        return
    if path.is_symlink():
        raise RoCoFTError(
            f"refusing to replace {what} directory {path} with --overwrite: it is a symbolic link to "
            f"{path.resolve()}. Give the directory itself ({path.resolve()}) to replace it, or choose "
            "another path."
        )
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
    foreign = foreign_entries(path, also) if is_marked(path) else []
    if foreign:
        raise RoCoFTError(
            f"refusing to replace {what} directory {path} with --overwrite: it holds what rocoft-llm did "
            f"not write there (a copied marker, or files added since), and deleting it would delete: "
            f"{shown(foreign)}. Move those out (or remove the directory yourself), or choose another path."
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


#: what the OS says when a place cannot be written (read-only filesystem, permissions)
UNWRITABLE_ERRNOS = (errno.EROFS, errno.EACCES, errno.EPERM)


def nearest_existing(path: Path) -> Path:
    """``path``, or the nearest folder above it that exists."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def read_only(folder: Path) -> bool:
    """Whether ``folder`` lies on a read-only filesystem."""
    return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)


def writable_problem(path: str | Path, what: str, inside: bool = False, probe: bool = True) -> str | None:
    """Why ``path`` cannot be written, or None. The folder that will receive the output is ``path``
    itself when ``inside`` and it exists, else the nearest existing folder above it; ``probe`` creates
    and removes a file there (what the OS really allows), otherwise ``os.access`` answers."""
    path = Path(path)
    folder = nearest_existing(path if inside and path.is_dir() else path.parent)
    if not folder.is_dir():
        return f"cannot write {what} {path}: {folder} is a file, not a folder; choose another path"
    if not probe:
        if os.access(folder, os.W_OK | os.X_OK):
            return None
        return _unwritable_text(
            path, what, folder, "Read-only file system" if read_only(folder) else "Permission denied"
        )
    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=WRITE_PROBE)
        os.close(fd)
        os.unlink(name)
    except OSError as e:
        return _unwritable_text(path, what, folder, e.strerror or str(e))
    return None


def check_writable(path: str | Path, what: str, inside: bool = False) -> None:
    """Refuse, before any long work, a target that cannot be written: one message naming the place,
    the reason and the fix (:func:`writable_problem`)."""
    problem = writable_problem(path, what, inside)
    if problem:
        raise RoCoFTError(problem + ".")


def _unwritable_text(path, what: str, where, reason: str) -> str:
    return (
        f"cannot write {what} {path}: {where}: {reason} (a read-only filesystem, or a folder without "
        "write permission for this user); choose a writable place or fix its permissions"
    )


def unwritable(path: str | Path, what: str, e: OSError) -> RoCoFTError:
    """The one message for a write the OS refused (read-only filesystem, permissions)."""
    return RoCoFTError(
        _unwritable_text(path, what, getattr(e, "filename", None) or path, e.strerror or str(e)) + "."
    )


def apply_umask(path: str | Path, base: int = 0o666) -> None:
    """Give a file made by ``mkstemp`` (0600) or a folder made by ``mkdtemp`` (0700) the mode any other
    new one gets: ``base`` less the user's umask. ``base`` is the mode a program asks for when it makes
    one: 0o666 for a file (``open``), 0o777 for a folder (``mkdir``) or an executable script; with
    the usual umask 022 they become 0644 and 0755."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, base & ~mask)


def output_dir_problem(value: str | Path) -> str | None:
    """What `validate` says about ``output.dir`` before `train` meets it: a name no filesystem
    accepts, an existing file, or a place this user cannot write; None when it can be used. A
    folder two or more levels up that only denies permission is left to `train` (a job script may
    be rendered on a login node where the cluster's output folders do not exist); a read-only
    filesystem is reported wherever it is."""
    try:
        out = target_path(value, "output.dir")
    except RoCoFTError as e:
        return str(e)
    if out.exists() and not out.is_dir():
        return f"{value} is an existing file, not a directory; choose another path"
    problem = writable_problem(out, "output directory", inside=True, probe=False)
    nearest = nearest_existing(out)
    if problem and nearest not in (out, out.parent) and not read_only(nearest):
        return None
    return problem
