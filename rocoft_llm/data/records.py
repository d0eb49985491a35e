"""Reading LLM-Adapters instruction files: a JSON array (or JSON lines) of {instruction, input, output,
answer}."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ..errors import InputError, RoCoFTError
from ..io_utils import read_text
from .json_stream import NotAnArray, iter_json_array, iter_json_lines
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


def iter_records(path: str | Path) -> Iterator:
    """The records in ``path`` one at a time (:mod:`.json_stream`: memory holds one record, not the
    file): a JSON array, or JSON lines (one object per line, ``.jsonl`` or a file that starts with one
    object per line). Invalid JSON names the line and column; a record that repeats a key is refused
    by name (JSON would keep only the last value)."""
    path = Path(path)
    fix = "fix the file or pass another one"
    try:
        if path.is_file() and _looks_like_json_lines(path):
            values = iter_json_lines(path, "data file", fix, _keep_duplicates)
        else:
            values = iter_json_array(path, "data file", fix, _keep_duplicates)
        for i, record in enumerate(values):
            if isinstance(record, _Duplicates):
                keys = ", ".join(repr(k[:40]) for k in record.repeated[:5])
                raise InputError(
                    path,
                    f"record {i} repeats the key(s) {keys} (JSON would silently keep only the last value)",
                    "keep one value per key",
                )
            yield record
    except NotAnArray as e:
        raise RoCoFTError(
            f"{path}: expected a JSON array of records (or JSON lines, one record per line), got "
            f"{e.value.__class__.__name__}."
        ) from None
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        read_text(path, "data file", fix)  # its message names the problem
        raise


class RecordFile:
    """The records of a data file, read from the file each time they are iterated (never held)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __iter__(self) -> Iterator:
        return iter_records(self.path)


def read_json_array(path: str | Path) -> list:
    """Every record in ``path`` (:func:`iter_records`), as a list."""
    return list(iter_records(path))


def read_instruction_records(path: str | Path, spec: dict | None = None, policy: str = "error") -> list[dict]:
    """Validated instruction records of one LLM-Adapters JSON file (all problems reported together; chat
    records are refused by their missing fields)."""
    kept, _ = validate_records(read_json_array(path), spec or {}, str(path), policy, "instruction")
    return kept
