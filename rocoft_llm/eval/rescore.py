"""``rocoft-llm score``: re-score saved responses (ours or another tool's) with both scorers."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import RoCoFTError
from .summaries import score_rows
from .tasks import resolve_task

PROTOCOL = "llm-adapters generation"


def rescore(task_spec: str, predictions: Path, test_file: str | None = None, llm_adapters_dir: str | None = None) -> dict:
    """Score saved responses (JSONL with 'response' and 'answer', or 'index' joined to the test file)."""
    rows = []
    for n, line in enumerate(Path(predictions).read_text().splitlines()):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise RoCoFTError(f"{predictions}: line {n + 1} is not JSON ({e.msg}).") from None
    task = resolve_task(task_spec, llm_adapters_dir, test_file)
    for n, row in enumerate(rows):
        if "response" not in row:
            raise RoCoFTError(f"{predictions}: record {n} has no 'response' field.")
        if "answer" not in row:
            if "index" not in row:
                raise RoCoFTError(f"{predictions}: record {n} has neither 'answer' nor 'index' (to join with the "
                                  "test file); add one of them.")
            if not 0 <= int(row["index"]) < len(task.records):
                raise RoCoFTError(f"{predictions}: record {n} index {row['index']} is outside the test file "
                                  f"({len(task.records)} records).")
            row["answer"] = task.records[int(row["index"])]["answer"]
    summary = score_rows(task, rows)
    summary.update(protocol_name=PROTOCOL + " (re-scored)", predictions=str(predictions))
    return summary
