"""Scoring summaries: both scorers per row, accuracy with a Wilson interval, and the baselines a
gain must be compared with on the SAME items - the majority-label rate (always answering the most
common gold label) and the chance rate (a uniformly random valid option) - plus the most frequent
prediction, so "learned the prior" (e.g. answering "true" to everything) is visible at a glance.

Label tasks also get the balanced accuracy (the mean over gold labels of the share of that label's
items answered correctly): ANY constant answer scores exactly 1/K on it (K = gold labels among the
scored items) whatever the label shares are, so a balanced accuracy above 1/K is a gain in the task
itself, not in the format or the prior. Math tasks also get the "equation recomputed" diagnostic
(:mod:`.equations`: the response's last equation computed exactly - did the model pick the right
operations, whatever its arithmetic)."""

from __future__ import annotations

from collections import Counter, defaultdict

from ..data.validate import allowed_labels
from ..errors import bounded
from .equations import equation_recomputed
from .intervals import accuracy_cell
from .scoring import score

#: the longest top prediction a summary (and so its table) shows
TOP_PREDICTION_CHARS = 60


def baselines(task, records: list[dict]) -> dict:
    """Majority-label and chance rates over ``records`` (the scored items). Chance: the mean of
    1/k over items with k valid options (the item's "Answer format:" line, else the task's
    options); None for numeric answers."""
    n = len(records)
    if n == 0:
        return {"majority_label": None, "majority_rate": None, "chance_rate": None}
    label, count = Counter(r["answer"] for r in records).most_common(1)[0]
    chance = None
    if task.kind == "option":
        default = len(task.pattern.split("|")) if task.pattern else 0
        options = [len(allowed_labels(r, {}) or []) or default for r in records]
        chance = sum(1 / k for k in options) / n if all(options) else None
    elif task.kind == "letter":
        chance = 1 / 5
    return {"majority_label": label, "majority_rate": count / n, "chance_rate": chance}


def balanced_accuracy(rows: list[dict], scorer: str = "protocol") -> dict | None:
    """Mean per-gold-label recall of ``scorer`` over scored ``rows`` (each with ``answer`` and
    ``<scorer>_correct``), with the per-label counts and the constant-answer level 1/K; None when
    there are no rows."""
    per_label: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        counts = per_label[str(row["answer"])]
        counts[0] += int(bool(row[f"{scorer}_correct"]))
        counts[1] += 1
    if not per_label:
        return None
    recalls = [correct / n for correct, n in per_label.values()]
    return {
        "accuracy": sum(recalls) / len(recalls),
        "constant_answer": 1 / len(recalls),
        "per_label": {label: {"correct": c, "n": n} for label, (c, n) in sorted(per_label.items())},
    }


def score_rows(task, rows: list[dict]) -> dict:
    """Add both scorers to each row (needs 'response' and 'answer'); returns the task summary with
    the baselines over the same rows (their test records found by 'index' when present)."""
    totals = {"protocol": 0, "strict": 0}
    for row in rows:
        scores = score(task.kind, row["response"], row["answer"], task.pattern)
        for name, s in scores.items():
            row[f"{name}_pred"], row[f"{name}_correct"] = s.pred, s.correct
            totals[name] += int(s.correct)
    n = len(rows)
    summary = {"task": task.id, "n": n, "source": task.source}
    for name, c in totals.items():
        summary[name] = accuracy_cell(c, n)
    summary["hit_max_new_tokens"] = sum(1 for r in rows if r.get("hit_max_new_tokens"))
    summary["baselines"] = baselines(task, [_record_of(task, r) for r in rows])
    if task.kind in ("option", "letter"):
        summary["balanced"] = balanced_accuracy(rows)
    elif task.kind == "number":
        recomputed = [equation_recomputed(r["response"], r["answer"]) for r in rows]
        for row, s in zip(rows, recomputed):
            row["equation_value"], row["equation_correct"] = s.pred, s.correct
        summary["equation_recomputed"] = accuracy_cell(sum(s.correct for s in recomputed), n)
    top = Counter(r["protocol_pred"] for r in rows).most_common(1)
    pred = top[0][0] if top else None
    if isinstance(pred, str):  # a 10 MB response stays out of the table and the JSON summary
        pred = bounded(pred, TOP_PREDICTION_CHARS)
    summary["top_prediction"] = {"pred": pred, "count": top[0][1]} if top else None
    return summary


def _record_of(task, row: dict) -> dict:
    """The test record behind a row (by its index), or just its gold answer."""
    i = row.get("index")
    if isinstance(i, int) and 0 <= i < len(task.records) and task.records[i]["answer"] == row["answer"]:
        return task.records[i]
    return {"answer": row["answer"], "instruction": ""}
