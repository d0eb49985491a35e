"""Exception types. Every message names what was wrong (file, key, record, value) and the fix."""


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
        self.problems = list(problems)
        lines = [f"{source}: {len(problems)} problem(s):"] + [f"  - {p}" for p in problems]
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
