"""Exception types. Every message names what was wrong (file, key, record, value) and the fix."""


class RoCoFTError(Exception):
    """Base class for user-facing errors: the CLI prints the message and exits non-zero."""


class AdapterError(RoCoFTError):
    """An adapter directory is missing, partial, corrupt, or does not match the base model."""


class RecipeError(RoCoFTError):
    """A recipe failed validation. ``problems`` holds every problem found, not just the first."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = list(problems)
        lines = [f"{source}: {len(problems)} problem(s):"] + [f"  - {p}" for p in problems]
        super().__init__("\n".join(lines))
