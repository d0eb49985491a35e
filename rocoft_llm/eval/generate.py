"""Batched generation the way the protocol needs it: left padding WITH the attention mask (the
reference scripts forgot it and lost accuracy), greedy or beam search, stop at an end token or a new
"### Instruction"; the response is the continuation after the prompt's "### Response:", stripped."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data.chat_template import bind_chat, chat_prompts
from ..data.templates import get_template
from ..errors import RoCoFTError

STOP = "### Instruction"


@dataclass
class Generation:
    response: str
    raw: str
    new_tokens: int
    hit_max_new_tokens: bool


def render_prompts(
    template: str, records: list[dict], tokenizer=None, chat_template: str | None = None
) -> list[str]:
    """The prompts ``eval`` and ``generate`` send to the model: each record's generation prompt under
    ``template`` (a built-in name or a custom string), the model continuing after it. ``chat``: the
    tokenizer's chat template (or the file ``chat_template``) with its generation prompt, as training
    rendered the conversation (:func:`..data.chat_template.chat_prompts`); it needs ``tokenizer``."""
    tmpl = get_template(template)
    if tmpl.is_chat:
        if tokenizer is None:
            raise RoCoFTError(
                "template 'chat' renders through the tokenizer's chat template; pass the tokenizer."
            )
        return chat_prompts(tokenizer, bind_chat(tmpl, tokenizer, chat_template).chat, records)
    return [tmpl.render_prompt(r["instruction"], r.get("input", "")) for r in records]


def reply_tokens(tokens: list[int], ends: set[int], pad: int | None) -> list[int]:
    """The generated tokens up to and including the first end token (pads after it are not the reply,
    also when pad is an end token); without one, trailing pads (a batch's finished rows) are dropped."""
    first = next((i for i, t in enumerate(tokens) if t in ends), None)
    if first is not None:
        return tokens[: first + 1]
    while tokens and tokens[-1] == pad:
        tokens = tokens[:-1]
    return tokens


def end_token_ids(model, tokenizer) -> list[int]:
    """Every id that ends a reply: the tokenizer's EOS and the model's generation config's
    ``eos_token_id`` (an int or a list: chat models end a turn with their own token, e.g. Llama-3's
    ``<|eot_id|>`` or Gemma's ``<end_of_turn>``, which is not the tokenizer's EOS)."""
    declared = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    declared = declared if isinstance(declared, (list, tuple)) else [declared]
    return list(dict.fromkeys(t for t in [tokenizer.eos_token_id, *declared] if t is not None))


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
    streamer=None,
    sampling: dict | None = None,
) -> list[Generation]:
    """One Generation per prompt, in order. Prompts are batched by length (less padding).
    ``streamer`` (one prompt, batch_size 1) receives the tokens as they are generated; ``sampling``
    (``do_sample``, ``temperature``, ``top_p``) replaces greedy / beam search."""
    device = next(model.parameters()).device
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    results: list[Generation | None] = [None] * len(prompts)
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="generating", unit="batch")
    ends = end_token_ids(model, tokenizer)
    decoding = {"do_sample": False, "num_beams": num_beams, **(sampling or {})}
    for idx in batches:
        enc = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True).to(device)
        out = model.generate(
            **enc,
            **decoding,
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=ends or None,
            stop_strings=[STOP],
            tokenizer=tokenizer,
            streamer=streamer,
        )
        new = out[:, enc["input_ids"].shape[1] :]
        for row, i in enumerate(idx):
            tokens = reply_tokens(new[row].tolist(), set(ends), tokenizer.pad_token_id)
            ended = bool(tokens) and (tokens[-1] in ends)
            raw = tokenizer.decode(tokens, skip_special_tokens=True)
            response = raw.split(STOP, 1)[0].strip()
            results[i] = Generation(
                response, raw, len(tokens), len(tokens) >= max_new_tokens and not ended and STOP not in raw
            )
    return results
