"""``rocoft-llm eval`` with the generation protocol: generate, gather, score, write.

Each rank generates for its shard of every test set (position % world == rank) on a full merged
model; rank 0 gathers, scores with both scorers (:mod:`.summaries`) and writes per task
``<task>.jsonl`` (index, the rendered prompt and its hash, response, extracted answers, gold,
correctness; an earlier evaluation's files in that folder are removed first, :mod:`.outputs`) and
``summary.json`` / ``summary.md`` (:mod:`.tables`: n, accuracy with a 95% Wilson interval per
scorer, majority-label and chance rates of the scored items, responses that hit max_new_tokens,
protocol, decoding, model and adapter identity, contamination flags, and which items were scored -
held-out mode excludes test items seen in training, :mod:`.heldout`).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from ..distributed import gather_rows, is_main, rank, world_size
from ..io_utils import atomic_write_json, atomic_write_text
from .decoding import Decoding
from .generate import generate, prepare_tokenizer, render_prompts
from .heldout import HeldoutPolicy, select_items
from .intervals import wilson  # noqa: F401 - re-exported for older imports
from .outputs import clear_eval_outputs
from .rescore import PROTOCOL, rescore  # noqa: F401 - re-exported for older imports
from .summaries import score_rows
from .tables import markdown_table, render_tables  # noqa: F401 - re-exported for older imports
from .tasks import EvalTask, resolve_tasks


def evaluate_task(
    model,
    tokenizer,
    task: EvalTask,
    decoding: Decoding,
    limit: int | None = None,
    progress: bool = True,
    items: list[int] | None = None,
) -> tuple[list[dict], dict]:
    """Generate (this rank's shard), gather, score. Gold answers never enter the prompt.
    ``items``: positions in ``task.records`` to score (default all); ``limit`` keeps the first N of them.
    Rows keep the record's position in the task (``index``), so `score` can join them to the file."""
    items = list(range(len(task.records))) if items is None else list(items)
    items = items[:limit] if limit else items
    mine = [i for k, i in enumerate(items) if k % world_size() == rank()]
    prompts = render_prompts(
        decoding.template, [task.records[i] for i in mine], tokenizer, decoding.chat_template
    )
    max_new = decoding.max_new_tokens or task.max_new_tokens
    started = time.perf_counter()
    gens = generate(
        model,
        tokenizer,
        prompts,
        batch_size=decoding.batch_size,
        num_beams=decoding.num_beams,
        max_new_tokens=max_new,
        progress=progress and is_main(),
    )
    rows = [
        {
            "task": task.id,
            "index": i,
            "prompt_sha256": hashlib.sha256(p.encode()).hexdigest()[:16],
            "prompt": p,
            "response": g.response,
            "answer": task.records[i]["answer"],
            "new_tokens": g.new_tokens,
            "hit_max_new_tokens": g.hit_max_new_tokens,
        }
        for i, p, g in zip(mine, prompts, gens)
    ]
    rows = gather_rows(rows)
    summary = score_rows(task, rows)
    summary.update(
        decoding={
            "num_beams": decoding.num_beams,
            "max_new_tokens": max_new,
            "batch_size": decoding.batch_size,
            "template": decoding.template,
            **({"chat_template": decoding.chat_template} if decoding.chat_template else {}),
        },
        seconds=round(time.perf_counter() - started, 2),
        world_size=world_size(),
        protocol_name=PROTOCOL,
    )
    return rows, summary


def task_file_name(task_id: str) -> str:
    """``boolq:heldout`` -> ``boolq-heldout`` (a plain file name)."""
    return task_id.replace(":", "-")


def evaluate(
    model,
    tokenizer,
    tasks: list[str],
    decoding: Decoding,
    out: Path | None,
    identity: dict,
    contamination: dict,
    llm_adapters_dir: str | None = None,
    limit: int | None = None,
    progress: bool = True,
    heldout: HeldoutPolicy | None = None,
) -> list[dict]:
    """Evaluate every task; rank 0 writes the outputs (when ``out``) and returns the summaries.
    ``heldout`` decides which items are scored (default: all, training data unknown)."""
    prepare_tokenizer(tokenizer, getattr(model.config, "pad_token_id", None) or 0)
    heldout = heldout or HeldoutPolicy()
    summaries = []
    for task in (t for spec in tasks for t in resolve_tasks(spec, llm_adapters_dir)):
        items, mode = select_items(task, heldout)
        rows, summary = evaluate_task(model, tokenizer, task, decoding, limit, progress, items)
        summary.update(
            model=identity,
            contaminated_by=contamination.get(task.id.split(":")[0], []),
            **mode,
            available_items=len(items),
            limit=limit,
        )
        summaries.append(summary)
        if out is not None and is_main():
            out.mkdir(parents=True, exist_ok=True)
            if len(summaries) == 1:  # the earlier evaluation's files go before this one's first file
                clear_eval_outputs(out, "generation")
            atomic_write_text(
                out / f"{task_file_name(task.id)}.jsonl", "".join(json.dumps(r) + "\n" for r in rows)
            )
    if out is not None and is_main():
        atomic_write_json(out / "summary.json", summaries)
        title = f"{identity['model']}" + (
            f" + {identity['adapter']}" if identity.get("adapter") else " (base)"
        )
        atomic_write_text(out / "summary.md", markdown_table(summaries, title))
    return summaries
