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
import re
import tempfile
from pathlib import Path

from ..distributed import is_main
from ..errors import RoCoFTError
from ..io_utils import atomic_write_json, atomic_write_text
from ..shipped import read_shipped_text
from .choice_texts import parse_options
from .heldout import HeldoutPolicy, base_test_id, select_items
from .intervals import wilson
from .summaries import baselines
from .tasks import resolve_task

TASK_DIR = ("eval", "lm_eval_tasks")  # inside the installed package, read with importlib.resources

_TEXT_LOGLIK = "log-likelihood of the option texts (lm-eval standard 'Question:/Answer:' prompt)"
#: our task id -> [(lm-eval task name stem, template file, metric key, label)]
OFFLINE = {
    "boolq": [
        ("rocoft_boolq_loglik", "rocoft_boolq_loglik.yaml", "acc,none", "log-likelihood (true vs false)"),
        (
            "rocoft_boolq_gen",
            "rocoft_boolq_gen.yaml",
            "exact_match,protocol",
            "generation + first true/false match",
        ),
    ],
    "gsm8k": [
        (
            "rocoft_gsm8k_alpaca",
            "rocoft_math_alpaca.yaml",
            "exact_match,strict-match",
            "0-shot Alpaca, strict-match",
        ),
        (
            "rocoft_gsm8k_alpaca",
            "rocoft_math_alpaca.yaml",
            "exact_match,flexible-extract",
            "0-shot Alpaca, flexible-extract",
        ),
    ],
    "svamp": [
        (
            "rocoft_svamp_alpaca",
            "rocoft_math_alpaca.yaml",
            "exact_match,strict-match",
            "0-shot Alpaca, strict-match",
        ),
        (
            "rocoft_svamp_alpaca",
            "rocoft_math_alpaca.yaml",
            "exact_match,flexible-extract",
            "0-shot Alpaca, flexible-extract",
        ),
    ],
    **{
        task: [
            (f"rocoft_{task}_text", "rocoft_mc_text_loglik.yaml", "acc,none", _TEXT_LOGLIK),
            (
                f"rocoft_{task}_text",
                "rocoft_mc_text_loglik.yaml",
                "acc_norm,none",
                _TEXT_LOGLIK + ", length-normalised",
            ),
        ]
        for task in ("arc_easy", "arc_challenge", "piqa", "openbookqa", "siqa")
    },
}
LOGLIK_TEMPLATES = {"rocoft_boolq_loglik.yaml", "rocoft_mc_text_loglik.yaml"}
#: options parsed into question / choices / gold for these templates
_NEEDS_OPTIONS = {"rocoft_mc_text_loglik.yaml"}


def offline_task(task_id: str, llm_adapters_dir: str | None):
    """The task behind ``task_id`` (a test set or a split of one, e.g. ``boolq:heldout``), which must have a
    shipped offline lm-eval task."""
    task = resolve_task(task_id, llm_adapters_dir)
    if base_test_id(task.id) not in OFFLINE:
        raise RoCoFTError(
            f"no offline lm-eval task for {task_id!r}; shipped: {', '.join(OFFLINE)}. Use the "
            "generation harness (default) or a standard lm-eval task as lm-eval:NAME (needs the Hub)."
        )
    return task


def _task_data(task, items: list[int], template: str) -> list[dict]:
    """The selected records, with the parsed options the template needs."""
    records = [dict(task.records[i]) for i in items]
    if template in _NEEDS_OPTIONS:
        for r in records:
            r.update(parse_options(r["instruction"], r["answer"]))
    return records


def render_tasks(
    task_ids: list[str],
    llm_adapters_dir: str | None,
    directory: Path,
    heldout: HeldoutPolicy | None = None,
    limit: int | None = None,
    loglik_only: bool = False,
) -> list[tuple]:
    """Write each task's YAML and its data file (the items the held-out policy selects, the first
    ``limit`` of them) into ``directory``; returns (our id, lm-eval name, metric, label, summary fields:
    which items were scored and their majority-label / chance rates)."""
    plan = []
    for task_id in task_ids:
        if task_id.startswith("lm-eval:"):
            plan.append((task_id, task_id.split(":", 1)[1], None, "lm-eval standard (Hub data)", {}))
            continue
        task = offline_task(task_id, llm_adapters_dir)
        base = base_test_id(task.id)
        items, mode = select_items(task, heldout or HeldoutPolicy())
        available = len(items)
        items = items[:limit] if limit else items
        mode = {
            **mode,
            "available_items": available,
            "limit": limit,
            "baselines": baselines(task, [task.records[i] for i in items]),
        }
        suffix = re.sub(r"\W", "_", task.id[len(base) :])  # boolq:heldout -> _heldout
        for stem, template, metric, label in OFFLINE[base]:
            if loglik_only and template not in LOGLIK_TEMPLATES:
                continue
            name = stem + suffix
            data_file = directory / f"{name}.json"
            if not data_file.exists():
                atomic_write_text(data_file, json.dumps(_task_data(task, items, template)))
                text = read_shipped_text(*TASK_DIR, template).replace(
                    "__DATA_FILE__", str(data_file.resolve())
                )
                text = re.sub(r"^task: .*$", f"task: {name}", text, count=1, flags=re.M)
                atomic_write_text(directory / f"{name}.yaml", text)
            plan.append((task.id, name, metric, label, mode))
    return plan


def loglik_top_prediction(samples: list[dict], labels: list[str] | None = None) -> dict | None:
    """The most frequent choice of a multiple-choice task's samples (argmax log-likelihood), so a
    model that always picks one option is visible beside its accuracy; ``labels`` name the choices."""
    from collections import Counter

    picks = Counter()
    for sample in samples:
        scores = [r[0] for r in sample.get("filtered_resps", [])]
        if scores:
            k = max(range(len(scores)), key=scores.__getitem__)
            picks[labels[k] if labels and k < len(labels) else f"choice{k + 1}"] += 1
    return {"pred": picks.most_common(1)[0][0], "count": picks.most_common(1)[0][1]} if picks else None


def run_harness(
    model,
    tokenizer,
    task_ids: list[str],
    out: Path | None,
    identity: dict,
    llm_adapters_dir: str | None = None,
    limit: int | None = None,
    batch_size: int = 8,
    contamination: dict | None = None,
    heldout: HeldoutPolicy | None = None,
    loglik_only: bool = False,
    apply_chat_template: bool | str = False,
    fewshot_as_multiturn: bool = False,
    chat_template: str | None = None,
) -> list[dict]:
    """Run lm-eval; returns summaries in the same format as the generation protocol (labelled).
    ``apply_chat_template`` (True, or a template name) and ``fewshot_as_multiturn`` are lm-eval's own
    options, passed through: prompts go through the tokenizer's chat template (``chat_template``: a
    Jinja file used instead), few-shot examples as turns."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    if apply_chat_template:
        from ..data.chat_template import chat_template_text

        tokenizer.chat_template = chat_template_text(tokenizer, chat_template)  # refused when there is none
    with tempfile.TemporaryDirectory() as tmp:
        plan = render_tasks(task_ids, llm_adapters_dir, Path(tmp), heldout, limit, loglik_only)
        names = sorted({name for _, name, _, _, _ in plan})
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
        results = lm_eval.simple_evaluate(
            model=lm,
            tasks=names,
            task_manager=TaskManager(
                include_path=tmp, include_defaults=any(t.startswith("lm-eval:") for t in task_ids)
            ),  # indexing ~all of lm-eval's tasks costs a minute
            bootstrap_iters=0,
            log_samples=True,
            apply_chat_template=apply_chat_template,
            fewshot_as_multiturn=fewshot_as_multiturn,
        )
    summaries = []
    for our_id, name, metric, label, mode in plan:
        res = results["results"][name]
        key = metric or next(
            k for k in res if k.split(",")[0] in ("acc", "exact_match") and "stderr" not in k
        )
        n = len({s["doc_id"] for s in results["samples"][name]})
        acc = float(res[key])
        lo, hi = wilson(round(acc * n), n)
        top = (
            loglik_top_prediction(results["samples"][name], ["true", "false"] if "boolq" in name else None)
            if key.startswith("acc")
            else None
        )
        summaries.append(
            {
                "task": our_id,
                "n": n,
                "harness_task": name,
                "metric": key,
                "top_prediction": top,
                "protocol": {
                    "correct": round(acc * n),
                    "accuracy": acc,
                    "ci95": [round(lo, 4), round(hi, 4)],
                },
                "protocol_name": f"lm-eval {lm_eval.__version__}: {label}"
                + (", chat template" if apply_chat_template else "")
                + (", few-shot as multi-turn" if fewshot_as_multiturn else ""),
                "model": identity,
                "contaminated_by": (contamination or {}).get(base_test_id(our_id), []),
                **mode,
            }
        )
    if out is not None and is_main():
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "lm_eval_summary.json", summaries)
        atomic_write_text(out / "lm_eval_samples.json", json.dumps(results["samples"], default=str, indent=1))
    return summaries
