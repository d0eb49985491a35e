"""Reading LLM-Adapters instruction files: a JSON array (or JSON lines) of {instruction, input, output,
answer}."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import InputError, RoCoFTError
from ..io_utils import read_json, read_text
from .validate import validate_records


class _Duplicates(dict):
    """A JSON object that repeated a key (JSON would silently keep the last value)."""

    repeated: list[str]


def _keep_duplicates(pairs):
    obj = _Duplicates(pairs)
    seen, repeated = set(), []
    for key, _ in pairs:
        if key in seen and key not in repeated:
            repeated.append(key)
        seen.add(key)
    if not repeated:
        return dict(pairs)
    obj.repeated = repeated
    return obj


def _looks_like_json_lines(path: Path) -> bool:
    if path.suffix.lower() == ".jsonl":
        return True
    with open(path, "rb") as f:
        head = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    return (
        head.startswith(b"{")
        and b"}\n" in head.replace(b"\r\n", b"\n")
        and b"\n{" in head.replace(b"\r", b"")
    )


def read_json_array(path: str | Path) -> list:
    """The records in ``path``: a JSON array, or JSON lines (one object per line, ``.jsonl`` or a file
    that starts with one object per line). Invalid JSON names the line and column; a record that
    repeats a key is refused by name (JSON would keep only the last value)."""
    path = Path(path)
    fix = "fix the file or pass another one"
    if path.is_file() and _looks_like_json_lines(path):
        data = []
        for n, line in enumerate(read_text(path, "data file", fix).splitlines(), start=1):
            if not line.strip():
                continue
            try:
                data.append(json.loads(line, object_pairs_hook=_keep_duplicates))
            except RecursionError:
                raise InputError(path, "a record nested too deeply to read", fix, f"line {n}") from None
            except json.JSONDecodeError as e:
                raise InputError(
                    path,
                    f"not valid JSON lines ({e.msg} at column {e.colno})",
                    f"one record per line; {fix}",
                    f"line {n}",
                ) from None
    else:
        data = read_json(path, "data file", fix, object_pairs_hook=_keep_duplicates)
    if not isinstance(data, list):
        raise RoCoFTError(
            f"{path}: expected a JSON array of records (or JSON lines, one record per line), got "
            f"{type(data).__name__}."
        )
    for i, record in enumerate(data):
        if isinstance(record, _Duplicates):
            keys = ", ".join(repr(k[:40]) for k in record.repeated[:5])
            raise InputError(
                path,
                f"record {i} repeats the key(s) {keys} (JSON would silently keep only the last value)",
                "keep one value per key",
            )
    return data


def read_instruction_records(path: str | Path, spec: dict | None = None, policy: str = "error") -> list[dict]:
    """Validated instruction records of one LLM-Adapters JSON file (all problems reported together; chat
    records are refused by their missing fields)."""
    kept, _ = validate_records(read_json_array(path), spec or {}, str(path), policy, "instruction")
    return kept
