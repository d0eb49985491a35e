"""Batched generation the way the protocol needs it: left padding WITH the attention mask (the
reference scripts forgot it and lost accuracy), greedy or beam search, stop at EOS or a new
"### Instruction"; the response is the continuation after the prompt's "### Response:", stripped."""

from __future__ import annotations

from dataclasses import dataclass

import torch

STOP = "### Instruction"


@dataclass
class Generation:
    response: str
    raw: str
    new_tokens: int
    hit_max_new_tokens: bool


def prepare_tokenizer(tokenizer, pad_token_id: int = 0):
    """Left padding, and a pad token when the tokenizer has none (Llama-2: id 0, as upstream)."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.convert_ids_to_tokens(pad_token_id)
    return tokenizer


@torch.no_grad()
def generate(
    model,
    tokenizer,
    prompts: list[str],
    *,
    batch_size: int,
    num_beams: int,
    max_new_tokens: int,
    progress: bool = False,
) -> list[Generation]:
    """One Generation per prompt, in order. Prompts are batched by length (less padding)."""
    device = next(model.parameters()).device
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    results: list[Generation | None] = [None] * len(prompts)
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="generating", unit="batch")
    eos = tokenizer.eos_token_id
    for idx in batches:
        enc = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True).to(device)
        out = model.generate(
            **enc,
            do_sample=False,
            num_beams=num_beams,
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=eos,
            stop_strings=[STOP],
            tokenizer=tokenizer,
        )
        new = out[:, enc["input_ids"].shape[1] :]
        for row, i in enumerate(idx):
            tokens = new[row].tolist()
            while tokens and tokens[-1] == tokenizer.pad_token_id and tokenizer.pad_token_id != eos:
                tokens.pop()
            ended = bool(tokens) and (tokens[-1] == eos)
            raw = tokenizer.decode(tokens, skip_special_tokens=True)
            response = raw.split(STOP, 1)[0].strip()
            results[i] = Generation(
                response, raw, len(tokens), len(tokens) >= max_new_tokens and not ended and STOP not in raw
            )
    return results
