"""Held-out likelihood: the negative log-likelihood of the gold response, per target token.

A record's target tokens are exactly the ones training puts loss on (:func:`~..data.tokenize.encode_batch`
with the run's template, cutoff, EOS and ``train_on_inputs``): the response (+ EOS) by default, the
whole text when ``train_on_inputs``; under the ``chat`` template the assistant turns of chat records
(or of instruction records as a one-turn chat), as the model's chat template renders them. Per record the evaluator keeps the SUM of the next-token
negative log-likelihoods (natural log, fp32 log-softmax) and the number of target tokens; the
set's mean NLL is the ratio of the sums (so long responses weigh by their tokens, as in training)
and perplexity is ``exp(mean)``. Intervals come from :mod:`.intervals` (bootstrap over records).

Under torchrun each rank scores its shard (position % world == rank) and rank 0 gathers the
per-record sums (a few numbers per record). :func:`validation_nll` (the training loop's periodic
validation) scores every record on every rank instead, because a forward under FSDP2 / ZeRO-3 is
a collective that all ranks must call the same number of times.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..data.chat import detect_format
from ..data.chat_template import bind_chat
from ..data.templates import get_template
from ..data.tokenize import COLUMNS, IGNORE_INDEX, as_rows, encode_batch
from ..data.validate import validate_records
from ..distributed import gather_rows, rank, world_size
from ..errors import RoCoFTError


@dataclass(frozen=True)
class NLLOptions:
    """How records become target tokens (the training run's data options) and the batch size."""

    template: str = "llm_adapters"
    chat_template: str | None = None
    cutoff_len: int = 256
    train_on_inputs: bool = False
    add_eos: bool = True
    batch_size: int = 8

    @classmethod
    def from_data_section(cls, data: dict, batch_size: int = 8, train_on_inputs: bool | None = None):
        """From a recipe's ``data`` section (a dict as in recipe.resolved.yaml); ``train_on_inputs``
        overrides the recipe's choice when given."""
        return cls(
            template=data.get("template", "llm_adapters"),
            chat_template=data.get("chat_template"),
            cutoff_len=data.get("cutoff_len", 256),
            train_on_inputs=data.get("train_on_inputs", True) if train_on_inputs is None else train_on_inputs,
            add_eos=data.get("add_eos", True),
            batch_size=batch_size,
        )


def check_records(records: list, source: str) -> list[dict]:
    """The records to score: every instruction record needs a string ``instruction`` and ``output`` (the
    gold response); chat records (``messages`` / ``conversations``) are checked as ``prepare`` checks them
    and returned as ``messages``."""
    if not records:
        raise RoCoFTError(f"{source}: no records to evaluate; pass a non-empty file or split part.")
    if detect_format(records) != "instruction":
        return validate_records(records, {}, source)[0]
    bad = [
        i
        for i, r in enumerate(records)
        if not isinstance(r, dict)
        or not isinstance(r.get("instruction"), str)
        or not isinstance(r.get("output"), str)
    ]
    if bad:
        raise RoCoFTError(
            f"{source}: record(s) {bad[:5]} lack a string 'instruction' or 'output' ({len(bad)} in all); "
            "likelihood evaluation scores the gold 'output' of each record. Fix or remove them."
        )
    return records


def encode_records(records: list[dict], tokenizer, opts: NLLOptions) -> list[dict]:
    """``input_ids`` and ``labels`` per record, exactly as training tokenizes them."""
    rows = as_rows(records)
    batch = {key: [r[key] for r in rows] for key in COLUMNS}
    template = bind_chat(get_template(opts.template), tokenizer, opts.chat_template)
    enc = encode_batch(batch, tokenizer, template, opts.cutoff_len, opts.train_on_inputs, opts.add_eos)
    return [{"input_ids": i, "labels": lab} for i, lab in zip(enc["input_ids"], enc["labels"])]


def model_forward(model) -> Callable[[dict], torch.Tensor]:
    """``forward(batch) -> logits`` of a plain (merged) causal LM, logits at the batch's target mask only."""

    def forward(batch: dict) -> torch.Tensor:
        return model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            logits_to_keep=batch["logits_to_keep"],
        ).logits

    return forward


@torch.no_grad()
def record_nll(
    forward: Callable[[dict], torch.Tensor], examples: list[dict], batch_size: int, pad_id: int, device
) -> list[tuple[float, int]]:
    """(sum of target-token NLLs, number of target tokens) per example, in order. ``forward`` returns
    logits only where the NEXT token is a target (``logits_to_keep`` = that mask), as training does."""
    from ..data.collate import collate

    out: list[tuple[float, int]] = []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        batch = {k: v.to(device) for k, v in collate(chunk, pad_id).items()}
        labels = batch.pop("labels")
        mask = torch.zeros_like(labels, dtype=torch.bool)
        mask[:, :-1] = labels[:, 1:] != IGNORE_INDEX
        counts = mask.sum(dim=1)
        if int(counts.sum()) == 0:
            out.extend((0.0, 0) for _ in chunk)
            continue
        batch["logits_to_keep"] = mask
        logits = forward(batch).float()
        targets = labels[:, 1:][mask[:, :-1]]
        nll = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), targets, reduction="none"
        )
        owner = mask.nonzero()[:, 0]  # the row of each target, in the same row-major order as the logits
        sums = torch.zeros(len(chunk), dtype=torch.float64, device=nll.device).index_add_(
            0, owner.to(nll.device), nll.double()
        )
        out.extend((float(s), int(c)) for s, c in zip(sums.tolist(), counts.tolist()))
    return out


def score_records(model, tokenizer, records: list[dict], opts: NLLOptions, pad_id: int, device) -> list[dict]:
    """Per-record rows ``{index, nll_sum, tokens}`` for every record (this rank's shard, gathered on
    every rank)."""
    examples = encode_records(records, tokenizer, opts)
    mine = [i for i in range(len(examples)) if i % world_size() == rank()]
    sums = record_nll(model_forward(model), [examples[i] for i in mine], opts.batch_size, pad_id, device)
    rows = [{"index": i, "nll_sum": s, "tokens": n} for i, (s, n) in zip(mine, sums)]
    return gather_rows(rows)


def validation_nll(forward, examples: list[dict], batch_size: int, pad_id: int, device) -> tuple[float, int]:
    """(mean NLL per target token, target tokens) of pre-encoded ``examples``, every rank scoring all of
    them (see the module docstring)."""
    sums = record_nll(forward, examples, batch_size, pad_id, device)
    total, tokens = sum(s for s, _ in sums), sum(n for _, n in sums)
    return (total / tokens if tokens else float("nan")), tokens
