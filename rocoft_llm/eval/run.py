"""``rocoft-llm eval`` (generation protocol) and ``rocoft-llm score`` (re-scoring saved responses).

Each rank generates for its shard of every test set (index % world == rank) on a full merged
model; rank 0 gathers, scores with both scorers and writes per task ``<task>.jsonl`` (index,
prompt hash, response, extracted answers, gold, correctness) and ``summary.json`` / ``summary.md``
(n, correct, accuracy with a 95% Wilson interval per scorer, how many responses hit
max_new_tokens, protocol, decoding, model and adapter identity, contamination flags).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

from ..data.templates import get_template
from ..distributed import is_distributed, is_main, rank, world_size
from ..io_utils import atomic_write_json, atomic_write_text
from .generate import generate, prepare_tokenizer
from .scoring import read_predictions, score
from .tasks import EvalTask, resolve_task, resolve_tasks, scoring_task

PROTOCOL = "llm-adapters generation"


@dataclass
class Decoding:
    num_beams: int = 4
    max_new_tokens: int | None = None  # None: per-task protocol default (32 / 256)
    batch_size: int = 8
    template: str = "llm_adapters"


def wilson(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (0.0, 0.0)
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def score_rows(task: EvalTask, rows: list[dict]) -> dict:
    """Add both scorers to each row (needs 'response' and 'answer'); returns the task summary."""
    totals = {"protocol": 0, "strict": 0}
    for row in rows:
        scores = score(task.kind, row["response"], row["answer"], task.pattern)
        for name, s in scores.items():
            row[f"{name}_pred"], row[f"{name}_correct"] = s.pred, s.correct
            totals[name] += int(s.correct)
    n = len(rows)
    summary = {"task": task.id, "n": n, "source": task.source}
    for name, c in totals.items():
        lo, hi = wilson(c, n)
        summary[name] = {"correct": c, "accuracy": c / n if n else 0.0, "ci95": [round(lo, 4), round(hi, 4)]}
    summary["hit_max_new_tokens"] = sum(1 for r in rows if r.get("hit_max_new_tokens"))
    return summary


def _gather(rows: list[dict]) -> list[dict]:
    if not is_distributed():
        return rows
    import torch.distributed as dist

    parts = [None] * world_size()
    dist.all_gather_object(parts, rows)
    return sorted((r for part in parts for r in part), key=lambda r: r["index"])


def evaluate_task(model, tokenizer, task: EvalTask, decoding: Decoding, limit: int | None = None,
                  progress: bool = True) -> tuple[list[dict], dict]:
    """Generate (this rank's shard), gather, score. Gold answers never enter the prompt."""
    tmpl = get_template(decoding.template)
    records = task.records[:limit] if limit else task.records
    mine = [i for i in range(len(records)) if i % world_size() == rank()]
    prompts = [tmpl.render_prompt(records[i]["instruction"], records[i].get("input", "")) for i in mine]
    max_new = decoding.max_new_tokens or task.max_new_tokens
    started = time.perf_counter()
    gens = generate(model, tokenizer, prompts, decoding.batch_size, decoding.num_beams, max_new,
                    progress=progress and is_main())
    rows = [{"task": task.id, "index": i, "prompt_sha256": hashlib.sha256(p.encode()).hexdigest()[:16],
             "response": g.response, "answer": records[i]["answer"], "new_tokens": g.new_tokens,
             "hit_max_new_tokens": g.hit_max_new_tokens} for i, p, g in zip(mine, prompts, gens)]
    rows = _gather(rows)
    summary = score_rows(task, rows)
    summary.update(decoding={"num_beams": decoding.num_beams, "max_new_tokens": max_new,
                             "batch_size": decoding.batch_size, "template": decoding.template},
                   seconds=round(time.perf_counter() - started, 2), world_size=world_size(), protocol_name=PROTOCOL)
    return rows, summary


def markdown_table(summaries: list[dict], title: str) -> str:
    lines = [f"### {title}", "", "| task | protocol | n | protocol acc (95% CI) | strict acc (95% CI) | hit max_new_tokens "
             "| flags |", "|---|---|---:|---|---|---:|---|"]
    for s in summaries:
        cells = []
        for name in ("protocol", "strict"):
            d = s.get(name)
            cells.append(f"{100 * d['accuracy']:.1f}% ({100 * d['ci95'][0]:.1f}-{100 * d['ci95'][1]:.1f})" if d else "-")
        flag = "CONTAMINATED: " + ", ".join(s["contaminated_by"]) if s.get("contaminated_by") else ""
        lines.append(f"| {s['task']} | {s.get('protocol_name', '')} | {s['n']} | {cells[0]} | {cells[1]} | "
                     f"{s.get('hit_max_new_tokens', '-')} | {flag} |")
    return "\n".join(lines) + "\n"


def evaluate(model, tokenizer, tasks: list[str], decoding: Decoding, out: Path | None, identity: dict,
             contamination: dict, llm_adapters_dir: str | None = None, limit: int | None = None,
             progress: bool = True) -> list[dict]:
    """Evaluate every task; rank 0 writes the outputs (when ``out``) and returns the summaries."""
    prepare_tokenizer(tokenizer, getattr(model.config, "pad_token_id", None) or 0)
    summaries = []
    for task in (t for spec in tasks for t in resolve_tasks(spec, llm_adapters_dir)):
        rows, summary = evaluate_task(model, tokenizer, task, decoding, limit, progress)
        summary.update(model=identity, contaminated_by=contamination.get(task.id, []))
        summaries.append(summary)
        if out is not None and is_main():
            out.mkdir(parents=True, exist_ok=True)
            atomic_write_text(out / f"{task.id}.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    if out is not None and is_main():
        atomic_write_json(out / "summary.json", summaries)
        title = f"{identity['model']}" + (f" + {identity['adapter']}" if identity.get("adapter") else " (base)")
        atomic_write_text(out / "summary.md", markdown_table(summaries, title))
    return summaries


def rescore(task_spec: str, predictions: Path, test_file: str | None = None, llm_adapters_dir: str | None = None) -> dict:
    """Score saved responses (JSONL with 'response' and 'answer', or 'index' joined to the test file; only
    an 'index' join reads the test set)."""
    from ..errors import InputError

    rows = read_predictions(predictions)
    joins = any("answer" not in row for row in rows)
    task = resolve_task(task_spec, llm_adapters_dir, test_file) if joins or test_file else scoring_task(task_spec)
    for row in rows:
        line = row.pop("_line")
        if "answer" not in row:
            if row["index"] >= len(task.records):
                raise InputError(predictions, f"'index' {row['index']} is outside the test file ({len(task.records)} "
                                 f"records, {task.source})", "use the index of the test record", f"line {line}")
            row["answer"] = task.records[row["index"]]["answer"]
    summary = score_rows(task, rows)
    summary.update(protocol_name=PROTOCOL + " (re-scored)", predictions=str(predictions))
    return summary


def render_tables(tables: dict, out_dir) -> str:
    """`eval`'s closing table: the results, or a before (base) / after (adapted) comparison."""
    after = tables["after"]
    if "before" not in tables:
        return markdown_table(after, "results") + f"\nwritten to {out_dir}"
    lines = ["| task | metric | before | after |", "|---|---|---:|---:|"]
    for b, a in zip(tables["before"], after):
        for name in ("protocol", "strict"):
            if name in a:
                lines.append(f"| {a['task']} | {name} | {100 * b[name]['accuracy']:.1f}% | {100 * a[name]['accuracy']:.1f}% |")
    return "\n".join(lines) + f"\n\nwritten to {out_dir} (base/ and adapted/)"
