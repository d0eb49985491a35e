"""``rocoft-llm prepare --preview N``: rendered training examples with the loss mask visible."""

from __future__ import annotations

from .tokenize import IGNORE_INDEX, encode_batch


def render_masked(tokenizer, input_ids: list[int], labels: list[int]) -> str:
    """The decoded example, masked (no-loss) spans wrapped in ⟦ ⟧; EOS shown as <eos>."""
    pieces, span, masked = [], [], None
    for tok, lab in zip(input_ids, labels):
        is_masked = lab == IGNORE_INDEX
        if masked is not None and is_masked != masked:
            pieces.append((masked, span))
            span = []
        masked = is_masked
        span.append(tok)
    if span:
        pieces.append((masked, span))
    out = []
    for is_masked, toks in pieces:
        text = tokenizer.decode(toks, skip_special_tokens=False)
        if tokenizer.eos_token and text.endswith(tokenizer.eos_token):
            text = text[: -len(tokenizer.eos_token)] + "<eos>"
        out.append(f"⟦{text}⟧" if is_masked else text)
    return "".join(out)


def preview(
    records: list[dict], tokenizer, template, n: int, cutoff_len: int, train_on_inputs: bool, add_eos: bool
) -> str:
    batch = {key: [r.get(key, "") for r in records[:n]] for key in ("instruction", "input", "output")}
    enc = encode_batch(batch, tokenizer, template, cutoff_len, train_on_inputs, add_eos)
    blocks = []
    for i in range(len(batch["instruction"])):
        trained = sum(1 for t in enc["labels"][i] if t != IGNORE_INDEX)
        head = (
            f"--- example {i} ({records[i].get('source', '')}): {enc['length'][i]} tokens, {trained} with loss"
            f"{', TRUNCATED' if enc['overlength'][i] else ''}; answer {records[i]['answer']!r} ---"
        )
        blocks.append(head + "\n" + render_masked(tokenizer, enc["input_ids"][i], enc["labels"][i]))
    legend = "(⟦...⟧ = masked prompt tokens, no loss; the rest is trained on)"
    return legend + "\n" + "\n\n".join(blocks)
