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
