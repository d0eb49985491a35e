"""``data.template: chat``: conversations rendered through the tokenizer's chat template (Jinja, as
``transformers``' ``apply_chat_template`` renders it) or a template file, with loss on the assistant
turns only.

The loss mask is computed from token ids, so it needs no ``{% generation %}`` markers in the
template (SmolLM2's has none). For every assistant turn ``j`` of a conversation:

* ``start`` = the length of the longest common token prefix of the full conversation and the
  conversation up to turn ``j`` rendered WITH the generation prompt (what the model sees when it is
  asked to answer);
* ``end`` = the same against the conversation up to and including turn ``j``; when the tokenizer's
  EOS token lies in ``[start, end)`` the span ends just after the last one (nothing after the
  end-of-turn token is the model's to predict: for ChatML the newline after ``<|im_end|>``).

Tokens in ``[start, end)`` carry loss. Comparing token ids, not characters, keeps the rule right
when the tokenizer merges the end of the prompt with the start of the answer into one token: that
token differs from the prompt's last token, so it lies after ``start`` and is trained on (the
answer cannot be learnt without it). Text is tokenized without added special tokens, as
``apply_chat_template`` does (templates write their own BOS).

Cutoff: the ids are cut at ``cutoff_len``; an example left with no assistant token is dropped
(counted), so a truncated prompt is never trained on alone. ``add_eos`` appends EOS only when the
rendered conversation holds none (a chat template ends its turns itself) and it fits the cutoff.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from ..errors import RoCoFTError
from .chat import instruction_messages, prompt_messages
from .templates import Template

IGNORE_INDEX = -100
ALTERNATIVES = (
    "use data.template llm_adapters, alpaca_clean or a custom string with {instruction} and {output} "
    "(--template), or give a chat template file with data.chat_template (--chat-template FILE.jinja)"
)


def chat_template_text(tokenizer, path: str | None = None) -> str:
    """The Jinja text to render with: the file ``path``, else the tokenizer's own chat template."""
    if path:
        file = Path(path).expanduser()
        if not file.is_file():
            raise RoCoFTError(f"data.chat_template {path}: no such file; give a Jinja chat template file.")
        text = file.read_text(encoding="utf-8")
        if not text.strip():
            raise RoCoFTError(f"data.chat_template {path}: the file is empty; give a Jinja chat template.")
        return text
    text = getattr(tokenizer, "chat_template", None)
    if isinstance(text, dict):  # several named templates: the default one
        text = text.get("default")
    if not text:
        name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
        raise RoCoFTError(f"template 'chat': the tokenizer {name} has no chat template; {ALTERNATIVES}.")
    return text


def bind_chat(template: Template, tokenizer, path: str | None = None) -> Template:
    """``template`` with its chat text filled in (unchanged when it is not ``chat``)."""
    if not template.is_chat or template.chat:
        return template
    return replace(template, chat=chat_template_text(tokenizer, path))


def render_chat(
    tokenizer, chat: str, messages: list[dict], add_generation_prompt: bool, where: str = ""
) -> str:
    """The conversation as text, rendered by the Jinja template ``chat``; a template error (one that
    refuses the conversation, e.g. roles that must alternate) names the record."""
    try:
        return tokenizer.apply_chat_template(
            messages, chat_template=chat, tokenize=False, add_generation_prompt=add_generation_prompt
        )
    except Exception as e:  # noqa: BLE001 - jinja2's TemplateError or raise_exception() from the template
        raise RoCoFTError(
            f"{where or 'a record'}: the chat template refuses it ({type(e).__name__}: {e}); fix the record or "
            "give another template with data.chat_template."
        ) from None


def common_prefix(a: list[int], b: list[int]) -> int:
    """How many leading token ids ``a`` and ``b`` share."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def assistant_spans(tokenizer, chat: str, messages: list[dict], where: str = "") -> tuple[list[int], list]:
    """(token ids of the whole conversation, [(start, end) of every assistant turn]) - see the module
    docstring for the rule."""

    def ids(turns, gen):
        return tokenizer(render_chat(tokenizer, chat, turns, gen, where), add_special_tokens=False)[
            "input_ids"
        ]

    full = ids(messages, False)
    eos, spans = tokenizer.eos_token_id, []
    for j, turn in enumerate(messages):
        if turn["role"] != "assistant":
            continue
        start = common_prefix(full, ids(messages[:j], True))
        # the conversation up to its last turn is the whole conversation: no third rendering
        end = len(full) if j == len(messages) - 1 else common_prefix(full, ids(messages[: j + 1], False))
        if eos is not None and eos in full[start:end]:
            end = start + max(k for k, t in enumerate(full[start:end]) if t == eos) + 1
        spans.append((start, end))
    return full, spans


def encode_chat(
    tokenizer,
    chat: str,
    messages: list[dict],
    cutoff_len: int,
    train_on_inputs: bool,
    add_eos: bool,
    where="",
) -> dict:
    """input_ids, labels, length, overlength, prompt_tokens and ``assistant_tokens`` (assistant tokens
    left after the cutoff: 0 means the example must be dropped) of one conversation."""
    full, spans = assistant_spans(tokenizer, chat, messages, where)
    eos = tokenizer.eos_token_id
    target = [False] * len(full)
    for start, end in spans:
        target[start:end] = [True] * (end - start)
    if add_eos and eos is not None and eos not in full and len(full) < cutoff_len:
        full, target = full + [eos], target + [True]
    over = len(full) > cutoff_len
    ids, target = full[:cutoff_len], target[:cutoff_len]
    labels = list(ids) if train_on_inputs else [t if m else IGNORE_INDEX for t, m in zip(ids, target)]
    first = target.index(True) if True in target else len(ids)
    return {
        "input_ids": ids,
        "labels": labels,
        "length": len(ids),
        "overlength": over,
        "prompt_tokens": 0 if train_on_inputs else first,
        "assistant_tokens": sum(target),
    }


def row_messages(instruction: str, input: str, output: str, messages: str) -> list[dict]:
    """The turns of one tokenizer row: its chat turns (JSON), or its instruction record as a one-turn chat."""
    if messages:
        return json.loads(messages)
    return instruction_messages({"instruction": instruction, "input": input, "output": output})


def chat_prompts(tokenizer, chat: str, records: list[dict]) -> list[str]:
    """Generation prompts: each record's user turn (a chat record: its turns before the last answer)
    rendered with the generation prompt. A leading BOS the tokenizer adds by itself is left out of the
    text, so ``tokenizer(prompt)`` gives exactly the ids training saw before the answer."""
    bos = tokenizer.bos_token
    adds_bos = bool(bos) and tokenizer("", add_special_tokens=True)["input_ids"][:1] == [
        tokenizer.bos_token_id
    ]
    prompts = []
    for k, record in enumerate(records):
        text = render_chat(tokenizer, chat, prompt_messages(record), True, f"record {k}")
        if adds_bos and text.startswith(bos):
            text = text[len(bos) :]
        prompts.append(text)
    return prompts
