"""``rocoft-llm eval --metric nll``: held-out likelihood of one or more models on the same records,
with bootstrap intervals and paired differences, written atomically.

Models are evaluated one after another (``base`` with ``--with-base``, then the model / run, then
``--versus RUN``), each freed before the next loads. For every record set (``--tasks``: a JSON
file, a split part such as ``math_data.json:test`` or ``boolq:heldout``, or a dataset id meaning
its test file) the output directory gets ``nll/<variant>-<set>.jsonl`` (per record: index, NLL
sum, target tokens) and ``nll/summary.json`` / ``nll/summary.md``: per variant the mean NLL per
target token with its 95% bootstrap interval over records and the perplexity, and per pair
(adapted vs base, adapted vs versus) the paired mean difference with its interval - resampling
the same records for both sides, which is what makes a small difference decidable.
"""

from __future__ import annotations

import gc
import json
import logging
import math
from dataclasses import asdict
from pathlib import Path

from ..data.sources import resolve_source
from ..distributed import is_main
from ..errors import RoCoFTError
from ..io_utils import atomic_write_json, atomic_write_text
from .intervals import bootstrap_ratio
from .nll import NLLOptions, check_records, score_records
from .outputs import clear_eval_outputs

log = logging.getLogger("rocoft_llm")
#: fewer records than this get no interval (a bootstrap over 1 record has width 0, over 2-4 it is noise)
MIN_INTERVAL_RECORDS = 5


def load_record_set(spec: str, llm_adapters_dir: str | None, limit: int | None) -> tuple[str, list[dict]]:
    """(name, records) of one ``--tasks`` entry; ``limit`` keeps the first N records."""
    src = resolve_source(spec, "test", "llm_adapters", llm_adapters_dir)
    records = src.records[:limit] if limit else src.records
    # a file named test.json is known by its folder (as eval's tasks are): two sets never share a name
    name = Path(spec).parent.name if src.name == "test" and Path(spec).name == "test.json" else src.name
    return name, check_records(records, spec)


def summarise(name: str, variant: str, rows: list[dict], identity: dict, iterations: int, seed: int) -> dict:
    """Mean NLL per target token (ratio of sums), bootstrap interval, perplexity."""
    sums, counts = [r["nll_sum"] for r in rows], [r["tokens"] for r in rows]
    mean, (lo, hi) = bootstrap_ratio(sums, counts, iterations, seed)
    empty = sum(1 for c in counts if c == 0)
    if empty:
        log.warning(
            "%s (%s): %d of %d record(s) have no target token (cutoff_len cut their response away): they "
            "add nothing to the mean; raise the cutoff or check the records",
            name,
            variant,
            empty,
            len(rows),
        )
    interval = len(rows) >= MIN_INTERVAL_RECORDS
    return {
        "set": name,
        "variant": variant,
        "model": identity,
        "records": len(rows),
        "records_without_targets": empty,
        "target_tokens": sum(counts),
        "mean_nll": mean,
        "ci95": [lo, hi] if interval else None,
        "perplexity": math.exp(mean),
        "perplexity_ci95": [math.exp(lo), math.exp(hi)] if interval else None,
    }


def paired(
    name: str, a: str, b: str, rows_a: list[dict], rows_b: list[dict], iterations: int, seed: int
) -> dict:
    """``a`` minus ``b`` on the same records: mean difference per target token and its paired bootstrap
    interval. Both must have scored the same target tokens (same tokenizer and masking)."""
    differ = [
        r["index"] for r, s in zip(rows_a, rows_b) if r["tokens"] != s["tokens"] or r["index"] != s["index"]
    ]
    if differ:
        raise RoCoFTError(
            f"{name}: {a} and {b} have different target tokens on record(s) {differ[:5]} (tokenizer, template, "
            "cutoff or train_on_inputs differ), so a paired difference is meaningless; pass --nll-targets "
            "response (or all) and make sure both use the same tokenizer."
        )
    counts = [r["tokens"] for r in rows_a]
    diff, (lo, hi) = bootstrap_ratio(
        [r["nll_sum"] for r in rows_a], counts, iterations, seed, base_sums=[r["nll_sum"] for r in rows_b]
    )
    interval = [lo, hi] if len(counts) >= MIN_INTERVAL_RECORDS else None
    return {"set": name, "a": a, "b": b, "records": len(counts), "mean_difference": diff, "ci95": interval}


def _interval(ci: list | None, sign: str = "") -> str:
    return f"[{ci[0]:{sign}.4f}, {ci[1]:{sign}.4f}]" if ci else f"none (< {MIN_INTERVAL_RECORDS} records)"


def markdown(summaries: list[dict], pairs: list[dict], opts: NLLOptions, iterations: int, seed: int) -> str:
    targets = "prompt + response" if opts.train_on_inputs else "response (+ EOS)"
    lines = [
        f"Held-out NLL per target token ({targets}), nats; 95% bootstrap over records "
        f"({iterations} resamples, seed {seed}).",
        "",
        "| set | variant | records | tokens | mean NLL | 95% CI | perplexity |",
        "|---|---|---:|---:|---:|---|---:|",
    ]
    for s in summaries:
        lines.append(
            f"| {s['set']} | {s['variant']} | {s['records']} | {s['target_tokens']} | {s['mean_nll']:.4f} | "
            f"{_interval(s['ci95'])} | {s['perplexity']:.3f} |"
        )
    short = sorted({s["set"] for s in summaries if s["ci95"] is None})
    empty = [
        f"{s['set']} ({s['variant']}): {s['records_without_targets']}"
        for s in summaries
        if s["records_without_targets"]
    ]
    if short:
        lines += ["", f"No interval for {', '.join(short)}: fewer than {MIN_INTERVAL_RECORDS} records."]
    if empty:
        lines += ["", f"Records without a target token (cut away by cutoff_len): {'; '.join(empty)}."]
    if pairs:
        lines += ["", "| set | paired difference | records | mean | 95% CI |", "|---|---|---:|---:|---|"]
        for p in pairs:
            lines.append(
                f"| {p['set']} | {p['a']} - {p['b']} | {p['records']} | {p['mean_difference']:+.4f} | "
                f"{_interval(p['ci95'], '+')} |"
            )
    return "\n".join(lines) + "\n"


def run_nll(
    variants, specs, opts: NLLOptions, out: Path, llm_adapters_dir, limit, iterations, seed, device
) -> str:
    """Score every record set with every variant; ``variants``: [(label, loader)] where ``loader()``
    returns (model, tokenizer, identity). Rank 0 writes; returns the markdown table."""
    sets = [load_record_set(s, llm_adapters_dir, limit) for s in specs]  # seconds, before model loading
    rows: dict[tuple[str, str], list[dict]] = {}
    summaries = []
    for label, loader in variants:
        model, tok, identity = loader()
        pad_id = getattr(model.config, "pad_token_id", None) or 0
        for name, records in sets:
            got = score_records(model, tok, records, opts, pad_id, device)
            rows[(label, name)] = got
            summaries.append(summarise(name, label, got, identity, iterations, seed))
        del model, tok
        gc.collect()
    labels = [label for label, _ in variants]
    main = "adapted" if "adapted" in labels else labels[0]
    pairs = [
        paired(name, main, other, rows[(main, name)], rows[(other, name)], iterations, seed)
        for name, _ in sets
        for other in labels
        if other != main
    ]
    table = markdown(summaries, pairs, opts, iterations, seed)
    if is_main():
        target = out / "nll"
        target.mkdir(parents=True, exist_ok=True)
        clear_eval_outputs(target, "generation")  # no per-record file of an earlier run survives
        for (label, name), got in rows.items():
            file_name = f"{label}-{name}".replace(":", "-").replace("/", "_")
            atomic_write_text(target / f"{file_name}.jsonl", "".join(json.dumps(r) + "\n" for r in got))
        atomic_write_json(
            target / "summary.json",
            {
                "options": asdict(opts),
                "bootstrap": {"iterations": iterations, "seed": seed},
                "limit": limit,
                "summaries": summaries,
                "paired": pairs,
            },
        )
        atomic_write_text(target / "summary.md", table)
    return table
