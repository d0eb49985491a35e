"""Reading LLM-Adapters instruction files: a JSON array of {instruction, input, output, answer}.

Every problem names the file and the record index. (The full data pipeline - converters,
tokenization cache, manifests - builds on this reader.)
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import RoCoFTError

FIELDS = ("instruction", "input", "output", "answer")


def read_instruction_records(path: str | Path, require_answer: bool = False) -> list[dict]:
    """Validated records of one LLM-Adapters JSON file (all problems reported together)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise RoCoFTError(f"data file {path} does not exist.") from None
    except json.JSONDecodeError as e:
        raise RoCoFTError(f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}.") from None
    if not isinstance(data, list):
        raise RoCoFTError(f"{path}: expected a JSON array of records, got {type(data).__name__}.")
    problems = []
    for i, rec in enumerate(data):
        if not isinstance(rec, dict):
            problems.append(f"record {i}: expected an object, got {type(rec).__name__}")
            continue
        for key in ("instruction", "output") + (("answer",) if require_answer else ()):
            if not isinstance(rec.get(key), str) or not rec[key].strip():
                problems.append(f"record {i}: field {key!r} must be a non-empty string, got {rec.get(key)!r}")
        extra = sorted(set(rec) - set(FIELDS))
        if extra:
            problems.append(f"record {i}: unexpected field(s) {extra}; records have {', '.join(FIELDS)}")
    if problems:
        shown = "; ".join(problems[:10]) + (f"; ... {len(problems) - 10} more" if len(problems) > 10 else "")
        raise RoCoFTError(f"{path}: {len(problems)} bad record(s): {shown}")
    return data
