"""Tokenization of instruction records, the LLM-Adapters way.

* text = the template's training text; BOS as the tokenizer adds it; cut at ``cutoff_len``;
* EOS appended when it fits (length < cutoff and the last token is not EOS already);
* labels = input_ids, with the prompt part set to -100 when ``train_on_inputs`` is false: the
  leading tokens the full text shares with the prompt tokenized alone, so a token in which the
  tokenizer merged the prompt's end with the response's start (a trailing space and the first word)
  carries loss (counting the prompt's own tokens would mask the response's first token). Labels are
  never derived by comparing with a pad id (Llama-2 has no pad token and pad may equal EOS: masking
  by pad id would teach the model never to stop);
* over-length records (text longer than the cutoff): ``truncate`` (upstream), ``drop`` or ``error``.

Template ``chat`` (chat records, or instruction records as a one-turn chat) goes through
:mod:`.chat_template` instead: the model's own chat template, loss on the assistant turns only
(``train_on_inputs``: on everything), examples whose assistant turns the cutoff removed dropped.

Batched fast tokenization, streamed by :mod:`.tokenize_stream` (``num_proc`` worker processes).
"""

from __future__ import annotations

import hashlib
import json

from ..errors import RoCoFTError
from .chat_template import IGNORE_INDEX, common_prefix, encode_chat, row_messages
from .templates import Template
from .text_cut import input_ids_cut

COLUMNS = ("instruction", "input", "output", "messages")


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
    batch: dict,
    tokenizer,
    template: Template,
    cutoff_len: int,
    train_on_inputs: bool,
    add_eos: bool,
    indices: list[int] | None = None,
) -> dict:
    """``datasets.map`` function: input_ids, labels, length, overlength, prompt_tokens (and, for the chat
    template, assistant_tokens). A batch holds :data:`COLUMNS` (``messages``: a chat record's turns as
    JSON, "" for an instruction record); ``indices`` (``datasets.map(with_indices=True)``) name records in errors."""
    n = len(batch["instruction"])
    messages = batch.get("messages") or [""] * n
    if template.is_chat:
        names = [
            f"{source} example {i}"
            for source, i in zip(batch.get("source") or ["records"] * n, indices or range(n))
        ]
        return _encode_chat_batch(
            batch, messages, names, tokenizer, template, cutoff_len, train_on_inputs, add_eos
        )
    if any(messages):
        raise RoCoFTError(
            f"chat records (messages) cannot be rendered with the {template.name!r} template, which shows "
            "instruction records only; set data.template: chat (--template chat)."
        )
    inputs = [x or "" for x in batch.get("input") or [""] * n]
    texts = [template.render_train(i, o, x) for i, o, x in zip(batch["instruction"], batch["output"], inputs)]
    full = input_ids_cut(tokenizer, texts, cutoff_len)  # a 50 MB text costs what the cutoff keeps
    prompts = None
    if not train_on_inputs:
        prompts = input_ids_cut(
            tokenizer,
            [template.train_prompt_part(i, x) for i, x in zip(batch["instruction"], inputs)],
            cutoff_len,
        )
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
            n_prompt = common_prefix(prompts[k], ids)  # a token the boundary merged is the response's
            labels[:n_prompt] = [IGNORE_INDEX] * n_prompt
        out["input_ids"].append(ids)
        out["labels"].append(labels)
        out["length"].append(len(ids))
        out["overlength"].append(over)
        out["prompt_tokens"].append(n_prompt)
    return out


def _encode_chat_batch(
    batch, messages, names, tokenizer, template, cutoff_len, train_on_inputs, add_eos
) -> dict:
    out = {
        k: [] for k in ("input_ids", "labels", "length", "overlength", "prompt_tokens", "assistant_tokens")
    }
    inputs = batch.get("input") or [""] * len(messages)
    for k, turns in enumerate(messages):
        msgs = row_messages(batch["instruction"][k], inputs[k] or "", batch["output"][k], turns)
        enc = encode_chat(tokenizer, template.chat, msgs, cutoff_len, train_on_inputs, add_eos, names[k])
        for key, value in enc.items():
            out[key].append(value)
    return out


def trained_tokens(tokenized, rows: int = 100_000) -> int:
    """Labels that carry loss, counted in Arrow ``rows`` at a time (the whole labels column as Python
    lists is one object per token: 86 M of them for a 100 MB file)."""
    import pyarrow.compute as pc

    total = 0
    for table in tokenized.select_columns(["labels"]).with_format("arrow").iter(batch_size=rows):
        flat = pc.list_flatten(table["labels"])
        total += len(flat) - pc.sum(pc.equal(flat, IGNORE_INDEX)).as_py() if len(flat) else 0
    return total


def as_row(record: dict, keep_source: bool) -> dict:
    """A record as a uniform tokenizer row (:data:`COLUMNS`, plus ``source`` when ``keep_source``)."""
    row = {
        "instruction": record.get("instruction", ""),
        "input": record.get("input") or "",
        "output": record.get("output", ""),
        "messages": json.dumps(record["messages"], ensure_ascii=False) if "messages" in record else "",
    }
    if keep_source:
        row["source"] = record.get("source", "")
    return row


def as_rows(records: list[dict]) -> list[dict]:
    """Records as uniform tokenizer rows (:func:`as_row`; ``source`` kept when any record has one)."""
    keep_source = any("source" in r for r in records)
    return [as_row(r, keep_source) for r in records]


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
    """(tokenized in-memory ``datasets.Dataset``, stats) of a list of records (tests, small inputs;
    ``prepare`` streams through :func:`.tokenize_stream.write_tokenized`). Records keep a ``source``
    column when they have one."""
    import datasets

    from .tokenize_stream import TokenStats, features, tokenized_batches

    check_eos(tokenizer, add_eos)
    options = encode_options(tokenizer, template, cutoff_len, train_on_inputs, add_eos)
    stats = TokenStats(cutoff_len, overlength, template.is_chat)
    rows = as_rows(records)
    with_source = any("source" in r for r in rows)
    columns: dict[str, list] = {}
    for batch in tokenized_batches(rows, options, overlength, num_proc, stats):
        for name, values in batch.items():
            columns.setdefault(name, []).extend(values)
    summary = stats.finish()
    feats = features(with_source)
    return datasets.Dataset.from_dict(columns or {k: [] for k in feats}, features=feats), summary


def check_eos(tokenizer, add_eos: bool) -> None:
    """``add_eos`` needs an EOS token."""
    if tokenizer.eos_token_id is None and add_eos:
        raise RoCoFTError(
            "the tokenizer has no EOS token, so add_eos cannot work; set data.add_eos: false or use a "
            "tokenizer with an EOS token."
        )


def encode_options(
    tokenizer, template: Template, cutoff_len: int, train_on_inputs: bool, add_eos: bool
) -> dict:
    """What :mod:`.tokenize_stream` encodes with: :func:`encode_batch` (``encode``) and its keyword arguments."""
    return {
        "encode": encode_batch,
        "tokenizer": tokenizer,
        "template": template,
        "cutoff_len": cutoff_len,
        "train_on_inputs": train_on_inputs,
        "add_eos": add_eos,
    }
