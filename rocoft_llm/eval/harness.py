"""``rocoft-llm eval --harness lm-eval``: lm-evaluation-harness on the in-memory (merged) model.

Offline task YAMLs shipped in ``rocoft_llm/eval/lm_eval_tasks/`` read local LLM-Adapters test
files (the data path is filled in at run time): BoolQ as log-likelihood multiple choice AND as generation + regex (two
different metrics, both reported, labelled), and 0-shot Alpaca-format GSM8K / SVAMP with
strict-match ("The answer is N") and flexible-extract (last number). lm-eval's own ``gsm8k`` is
5-shot "Question:/Answer:" whose strict-match wants "#### N", which an Alpaca-tuned model never
writes; it needs the Hub, so it runs (labelled "lm-eval standard") only when named with the
``lm-eval:`` prefix, e.g. ``--tasks lm-eval:gsm8k``. lm-eval has no SVAMP task.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from ..distributed import is_main
from ..errors import RoCoFTError
from ..io_utils import atomic_write_json, atomic_write_text
from ..shipped import read_shipped_text
from .run import wilson
from .tasks import resolve_task

TASK_DIR = ("eval", "lm_eval_tasks")  # inside the installed package, read with importlib.resources

#: our task id -> [(lm-eval task name, template file, metric key, label)]
OFFLINE = {
    "boolq": [("rocoft_boolq_loglik", "rocoft_boolq_loglik.yaml", "acc,none", "log-likelihood (true vs false)"),
              ("rocoft_boolq_gen", "rocoft_boolq_gen.yaml", "exact_match,protocol", "generation + first true/false match")],
    "gsm8k": [("rocoft_gsm8k_alpaca", "rocoft_math_alpaca.yaml", "exact_match,strict-match", "0-shot Alpaca, strict-match"),
              ("rocoft_gsm8k_alpaca", "rocoft_math_alpaca.yaml", "exact_match,flexible-extract",
               "0-shot Alpaca, flexible-extract")],
    "svamp": [("rocoft_svamp_alpaca", "rocoft_math_alpaca.yaml", "exact_match,strict-match", "0-shot Alpaca, strict-match"),
              ("rocoft_svamp_alpaca", "rocoft_math_alpaca.yaml", "exact_match,flexible-extract",
               "0-shot Alpaca, flexible-extract")],
}


def offline_task(task_id: str, llm_adapters_dir: str | None):
    """The task behind ``task_id``, which must have a shipped offline lm-eval task."""
    task = resolve_task(task_id, llm_adapters_dir)
    if task.id not in OFFLINE:
        raise RoCoFTError(f"no offline lm-eval task for {task_id!r}; shipped: {', '.join(OFFLINE)}. Use the "
                          "generation harness (default) or a standard lm-eval task as lm-eval:NAME (needs the Hub).")
    return task


def render_tasks(task_ids: list[str], llm_adapters_dir: str | None, directory: Path) -> list[tuple]:
    """Write the YAMLs with their data files into ``directory``; returns (our id, lm-eval name, metric, label)."""
    plan = []
    for task_id in task_ids:
        if task_id.startswith("lm-eval:"):
            plan.append((task_id, task_id.split(":", 1)[1], None, "lm-eval standard (Hub data)"))
            continue
        task = offline_task(task_id, llm_adapters_dir)
        for name, template, metric, label in OFFLINE[task.id]:
            text = read_shipped_text(*TASK_DIR, template).replace("__DATA_FILE__", str(Path(task.source).resolve()))
            atomic_write_text(directory / f"{name}.yaml", text.replace("__TASK_NAME__", name))
            plan.append((task.id, name, metric, label))
    return plan


def run_harness(model, tokenizer, task_ids: list[str], out: Path | None, identity: dict,
                llm_adapters_dir: str | None = None, limit: int | None = None, batch_size: int = 8,
                contamination: dict | None = None) -> list[dict]:
    """Run lm-eval; returns summaries in the same format as the generation protocol (labelled)."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    with tempfile.TemporaryDirectory() as tmp:
        plan = render_tasks(task_ids, llm_adapters_dir, Path(tmp))
        names = sorted({name for _, name, _, _ in plan})
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
        results = lm_eval.simple_evaluate(model=lm, tasks=names, task_manager=TaskManager(include_path=tmp),
                                          bootstrap_iters=0, limit=limit, log_samples=True)
    summaries = []
    for our_id, name, metric, label in plan:
        res = results["results"][name]
        key = metric or next(k for k in res if k.split(",")[0] in ("acc", "exact_match") and "stderr" not in k)
        n = len({s["doc_id"] for s in results["samples"][name]})
        acc = float(res[key])
        lo, hi = wilson(round(acc * n), n)
        summaries.append({"task": our_id, "n": n, "harness_task": name, "metric": key,
                          "protocol": {"correct": round(acc * n), "accuracy": acc, "ci95": [round(lo, 4), round(hi, 4)]},
                          "protocol_name": f"lm-eval {lm_eval.__version__}: {label}", "model": identity,
                          "contaminated_by": (contamination or {}).get(our_id, [])})
    if out is not None and is_main():
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "lm_eval_summary.json", summaries)
        atomic_write_text(out / "lm_eval_samples.json", json.dumps(results["samples"], default=str, indent=1))
    return summaries
