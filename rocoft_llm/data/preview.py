"""``rocoft-llm prepare --preview N``: rendered training examples with the loss mask visible.

The records are validated as ``prepare`` validates them (``--bad-records drop`` previews the kept
ones) and tokenized by the same function; ``brackets`` chooses which tokens are wrapped in ⟦ ⟧: the
masked ones (no loss) or the ones that carry loss (``loss``: with the chat template, every assistant
turn and nothing else).
"""

from __future__ import annotations

from .chat_template import bind_chat
from .templates import format_problem, get_template, input_problem
from .tokenize import COLUMNS, IGNORE_INDEX, as_rows, encode_batch
from .validate import validate_records

LEGEND = {
    "masked": "(⟦...⟧ = masked prompt tokens, no loss; the rest is trained on)",
    "loss": "(⟦...⟧ = tokens that carry loss; the rest is masked)",
}


def render_masked(tokenizer, input_ids: list[int], labels: list[int], brackets: str = "masked") -> str:
    """The decoded example, the no-loss spans (``brackets="loss"``: the loss spans) wrapped in ⟦ ⟧;
    EOS shown as <eos>."""
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
        out.append(f"⟦{text}⟧" if is_masked == (brackets == "masked") else text)
    return "".join(out)


def preview(
    records: list[dict],
    tokenizer,
    template,
    n: int,
    cutoff_len: int,
    train_on_inputs: bool,
    add_eos: bool,
    brackets: str = "masked",
) -> str:
    """The first ``n`` (validated) records rendered and tokenized as training sees them."""
    rows = as_rows(records[:n])
    batch = {key: [r[key] for r in rows] for key in COLUMNS}
    enc = encode_batch(batch, tokenizer, template, cutoff_len, train_on_inputs, add_eos)
    blocks = []
    for i, record in enumerate(records[:n]):
        trained = sum(1 for t in enc["labels"][i] if t != IGNORE_INDEX)
        answer = f"; answer {record['answer']!r}" if "answer" in record else ""
        head = (
            f"--- example {i} ({record.get('source', '')}): {enc['length'][i]} tokens, {trained} with loss"
            f"{', TRUNCATED' if enc['overlength'][i] else ''}{answer} ---"
        )
        blocks.append(head + "\n" + render_masked(tokenizer, enc["input_ids"][i], enc["labels"][i], brackets))
    return LEGEND[brackets] + "\n" + "\n\n".join(blocks)


def preview_dataset(opts, n: int, tokenizer, brackets: str = "masked") -> str:
    """``prepare --preview N`` on the first ``--dataset``: its first N records that ``prepare`` keeps."""
    from ..errors import RoCoFTError
    from .sources import resolve_source

    src = resolve_source(opts.datasets[0], opts.split, opts.source, opts.llm_adapters_dir, opts.hub_dir)
    where = ", ".join(src.files) or src.name
    template = bind_chat(get_template(opts.template), tokenizer, opts.chat_template)
    kept, drops = validate_records(src.records, src.answer_spec, where, opts.bad_records, opts.format)
    problem = format_problem(drops.format, template, where) or input_problem(kept[:n], template, where)
    if problem:
        raise RoCoFTError(problem + ".")
    if not kept:
        raise RoCoFTError(
            f"{where}: no records left to preview (every record was bad and dropped); fix the file."
        )
    records = [{**r, "source": src.name} for r in kept[:n]]
    return preview(
        records, tokenizer, template, n, opts.cutoff_len, opts.train_on_inputs, opts.add_eos, brackets
    )
