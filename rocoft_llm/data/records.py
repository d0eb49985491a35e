"""Reading LLM-Adapters instruction files: a JSON array of {instruction, input, output, answer}."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import RoCoFTError

FIELDS = ("instruction", "input", "output", "answer")


def read_json_array(path: str | Path) -> list:
    """The JSON array in ``path``; invalid JSON names the line and column."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise RoCoFTError(f"data file {path} does not exist.") from None
    except json.JSONDecodeError as e:
        raise RoCoFTError(f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}.") from None
    if not isinstance(data, list):
        raise RoCoFTError(f"{path}: expected a JSON array of records, got {type(data).__name__}.")
    return data


def read_instruction_records(path: str | Path, spec: dict | None = None, policy: str = "error") -> list[dict]:
    """Validated records of one LLM-Adapters JSON file (all problems reported together)."""
    from .validate import validate_records

    kept, _ = validate_records(read_json_array(path), spec or {}, str(path), policy)
    return kept
