"""Tokenization of instruction records, the LLM-Adapters way.

* text = the template's training text; BOS as the tokenizer adds it; cut at ``cutoff_len``;
* EOS appended when it fits (length < cutoff and the last token is not EOS already);
* labels = input_ids, with the prompt part (up to where the output starts) set to -100 when
  ``train_on_inputs`` is false. Labels are never derived by comparing with a pad id (Llama-2 has
  no pad token and pad may equal EOS: masking by pad id would teach the model never to stop);
* over-length records (text longer than the cutoff): ``truncate`` (upstream), ``drop`` or ``error``.

Batched fast tokenization through ``datasets.map`` (``num_proc`` workers).
"""

from __future__ import annotations

import hashlib
import statistics

from ..errors import RoCoFTError
from .templates import Template

IGNORE_INDEX = -100


def tokenizer_fingerprint(tokenizer) -> str:
    """A hash of the tokenizer's full definition (vocab, merges, normalisation, special tokens)."""
    h = hashlib.sha256(type(tokenizer).__name__.encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        h.update(backend.to_str().encode())
    else:
        h.update(repr(sorted(tokenizer.get_vocab().items())).encode())
    h.update(repr((tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id)).encode())
    return h.hexdigest()


def encode_batch(
    batch: dict, tokenizer, template: Template, cutoff_len: int, train_on_inputs: bool, add_eos: bool
) -> dict:
    """``datasets.map`` function: input_ids, labels, length, overlength, prompt_tokens."""
    inputs = batch.get("input") or [""] * len(batch["instruction"])
    texts = [template.render_train(i, o, x) for i, o, x in zip(batch["instruction"], batch["output"], inputs)]
    full = tokenizer(texts, add_special_tokens=True)["input_ids"]
    prompts = None
    if not train_on_inputs:
        prompts = tokenizer(
            [template.train_prompt_part(i, x) for i, x in zip(batch["instruction"], inputs)],
            add_special_tokens=True,
        )["input_ids"]
    eos = tokenizer.eos_token_id
    out = {"input_ids": [], "labels": [], "length": [], "overlength": [], "prompt_tokens": []}
    for k, ids in enumerate(full):
        over = len(ids) > cutoff_len
        ids = list(ids[:cutoff_len])
        if add_eos and eos is not None and len(ids) < cutoff_len and (not ids or ids[-1] != eos):
            ids.append(eos)
        labels = list(ids)
        n_prompt = 0
        if prompts is not None:
            n_prompt = min(len(prompts[k]), len(ids))
            labels[:n_prompt] = [IGNORE_INDEX] * n_prompt
        out["input_ids"].append(ids)
        out["labels"].append(labels)
        out["length"].append(len(ids))
        out["overlength"].append(over)
        out["prompt_tokens"].append(n_prompt)
    return out


def tokenize_records(
    records: list[dict],
    tokenizer,
    template: Template,
    cutoff_len: int = 256,
    train_on_inputs: bool = True,
    add_eos: bool = True,
    overlength: str = "truncate",
    num_proc: int = 1,
    progress: bool = True,
):
    """(tokenized ``datasets.Dataset``, stats). Records keep a ``source`` column when they have one."""
    import datasets

    if tokenizer.eos_token_id is None and add_eos:
        raise RoCoFTError(
            "the tokenizer has no EOS token, so add_eos cannot work; set data.add_eos: false or use a "
            "tokenizer with an EOS token."
        )
    if not progress:
        datasets.disable_progress_bars()
    ds = datasets.Dataset.from_list(records)
    tokenized = ds.map(
        encode_batch,
        batched=True,
        batch_size=1000,
        num_proc=num_proc if num_proc > 1 else None,
        fn_kwargs={
            "tokenizer": tokenizer,
            "template": template,
            "cutoff_len": cutoff_len,
            "train_on_inputs": train_on_inputs,
            "add_eos": add_eos,
        },
        remove_columns=[c for c in ds.column_names if c != "source"],
        desc="tokenizing",
    )
    over_idx = [i for i, o in enumerate(tokenized["overlength"]) if o]
    if over_idx and overlength == "error":
        raise RoCoFTError(
            f"{len(over_idx)} record(s) are longer than cutoff_len {cutoff_len} tokens (first indices "
            f"{over_idx[:5]}); raise data.cutoff_len, or set data.overlength to truncate or drop."
        )
    if over_idx and overlength == "drop":
        tokenized = tokenized.filter(
            lambda o: not o, input_columns=["overlength"], desc="dropping over-length"
        )
    lengths = tokenized["length"]
    stats = {
        "examples": len(lengths),
        "overlength": {
            "policy": overlength,
            "count": len(over_idx),
            "truncated": len(over_idx) if overlength == "truncate" else 0,
            "dropped": len(over_idx) if overlength == "drop" else 0,
        },
        "token_lengths": (
            {
                "min": min(lengths),
                "mean": round(statistics.fmean(lengths), 2),
                "median": statistics.median(lengths),
                "p95": sorted(lengths)[int(0.95 * (len(lengths) - 1))],
                "max": max(lengths),
                "total": sum(lengths),
            }
            if lengths
            else {}
        ),
        "trained_tokens": sum(sum(1 for t in lab if t != IGNORE_INDEX) for lab in tokenized["labels"]),
    }
    return tokenized, stats
