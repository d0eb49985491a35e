"""``rocoft-llm score``: re-score saved responses (ours or another tool's) with both scorers."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from .scoring import read_predictions
from .summaries import score_rows
from .tasks import resolve_task, scoring_task

PROTOCOL = "llm-adapters generation"


def rescore(
    task_spec: str, predictions: Path, test_file: str | None = None, llm_adapters_dir: str | None = None
) -> dict:
    """Score saved responses (JSONL with 'response' and 'answer', or 'index' joined to the test file; only
    an 'index' join reads the test set)."""
    rows = read_predictions(predictions)
    joins = any("answer" not in row for row in rows)
    task = (
        resolve_task(task_spec, llm_adapters_dir, test_file)
        if joins or test_file
        else scoring_task(task_spec)
    )
    for row in rows:
        line = row.pop("_line")
        if "answer" not in row:
            if row["index"] >= len(task.records):
                raise InputError(
                    predictions,
                    f"'index' {row['index']} is outside the test file ({len(task.records)} "
                    f"records, {task.source})",
                    "use the index of the test record",
                    f"line {line}",
                )
            row["answer"] = task.records[row["index"]]["answer"]
    summary = score_rows(task, rows)
    summary.update(protocol_name=PROTOCOL + " (re-scored)", predictions=str(predictions))
    return summary
