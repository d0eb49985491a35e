"""Reading LLM-Adapters instruction files: a JSON array of {instruction, input, output, answer}."""

from __future__ import annotations

from pathlib import Path

from ..errors import RoCoFTError
from ..io_utils import read_json
from .validate import validate_records


def read_json_array(path: str | Path) -> list:
    """The JSON array in ``path``; invalid JSON names the line and column."""
    data = read_json(path, "data file", "fix the file or pass another one")
    if not isinstance(data, list):
        raise RoCoFTError(f"{path}: expected a JSON array of records, got {type(data).__name__}.")
    return data


def read_instruction_records(path: str | Path, spec: dict | None = None, policy: str = "error") -> list[dict]:
    """Validated records of one LLM-Adapters JSON file (all problems reported together)."""
    kept, _ = validate_records(read_json_array(path), spec or {}, str(path), policy)
    return kept
