"""Exception types. Every message names what was wrong (file, key, record, value) and the fix; a value
is shown as a bounded :func:`preview`, never whole (a hostile 10 MB value stays out of the terminal)."""

#: the longest value (repr) a message shows, and the longest single recipe problem
PREVIEW_CHARS = 80
PROBLEM_CHARS = 1000


def preview(value, limit: int = PREVIEW_CHARS) -> str:
    """``repr(value)``, cut to ``limit`` characters with a note of the full length."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def bounded(text: str, limit: int = PROBLEM_CHARS) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text) - limit:,} more characters cut)"


class RoCoFTError(Exception):
    """Base class for user-facing errors: the CLI prints the message and exits non-zero."""


class AdapterError(RoCoFTError):
    """An adapter directory is missing, partial, corrupt, or does not match the base model."""


class InputError(RoCoFTError):
    """A user file cannot be read: the message names the file, the place in it (line/record), the bad value
    and the fix. Every reader of user files (:mod:`rocoft_llm.io_utils`) raises this one type."""

    def __init__(self, path, problem: str, fix: str, where: str | None = None):
        self.path, self.where, self.problem, self.fix = str(path), where, problem, fix
        super().__init__(f"{path}: {where + ': ' if where else ''}{problem}; {fix}.")


class RecipeError(RoCoFTError):
    """A recipe failed validation. ``problems`` holds every problem found, not just the first."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = [bounded(p) for p in problems]
        lines = [f"{source}: {len(problems)} problem(s):"] + [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))


class DiskFullError(RoCoFTError):
    """A write failed because the disk (or quota) is full: names the file, the free space, what to free,
    and (``note``, added by the command that knows) which checkpoint is intact."""

    def __init__(self, path, what: str, free: str, note: str = ""):
        self.path, self.what, self.free, self.note = str(path), what, free, note
        super().__init__(
            f"no space left on the device while writing {what} {path} ({free} free there); free space on "
            "that filesystem (old runs, checkpoints, caches such as ~/.cache/rocoft-llm or the prepared-data "
            "cache) or write to another disk, then run again." + (f" {note}" if note else "")
        )

    def with_note(self, note: str) -> "DiskFullError":
        return DiskFullError(self.path, self.what, self.free, note)
