"""Tokenizing only what the cutoff keeps: a record's text is cut to a safe number of characters
before it is tokenized, so one 50 MB response costs what a few thousand characters cost (it took
115 s and 10 GB when the whole string was tokenized, then cut to 256 tokens).

The cut is exact: no token covers more characters than the vocabulary's longest entry (twice that
allows for a normaliser that merges characters), so a text cut at :func:`text_limit` characters
still yields far more than ``cutoff_len`` tokens, and its first ``cutoff_len`` tokens are those of
the whole text (only the few tokens at the cut can differ). Should a cut text give too few tokens
all the same (a normaliser that drops characters), the whole text is tokenized.
"""

from __future__ import annotations

#: tokens at the end of a cut text that are not trusted (a merge across the cut changes only these)
BOUNDARY_TOKENS = 16
_LONGEST: dict[tuple[str, int], int] = {}


def longest_token_chars(tokenizer) -> int:
    """Characters of the vocabulary's longest entry (cached per tokenizer)."""
    key = (type(tokenizer).__name__ + str(getattr(tokenizer, "name_or_path", "")), len(tokenizer))
    if key not in _LONGEST:
        _LONGEST[key] = max((len(t) for t in tokenizer.get_vocab()), default=1)
    return _LONGEST[key]


def text_limit(tokenizer, cutoff_len: int) -> int:
    """How many characters of a text decide its first ``cutoff_len`` tokens, with a wide margin."""
    return 2 * (cutoff_len + BOUNDARY_TOKENS) * longest_token_chars(tokenizer) + 256


def input_ids_cut(tokenizer, texts: list[str], cutoff_len: int) -> list[list[int]]:
    """input_ids of ``texts`` (special tokens added) that agree with the whole texts' on the first
    ``cutoff_len`` tokens and on whether there are more; a long text is tokenized cut."""
    limit = text_limit(tokenizer, cutoff_len)
    ids = tokenizer([t[:limit] for t in texts], add_special_tokens=True)["input_ids"]
    for k, text in enumerate(texts):
        if len(text) > limit and len(ids[k]) <= cutoff_len + BOUNDARY_TOKENS:
            ids[k] = tokenizer(text, add_special_tokens=True)["input_ids"]
    return ids
