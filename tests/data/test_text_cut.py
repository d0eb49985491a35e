"""A huge record is cut to text_limit characters before it is tokenized, and the result is exactly
what tokenizing the whole text and cutting at cutoff_len gives (ids, labels, the over-length flag)."""

import random

from rocoft_llm.data.chat_template import common_prefix
from rocoft_llm.data.templates import get_template
from rocoft_llm.data.text_cut import input_ids_cut, text_limit
from rocoft_llm.data.tokenize import tokenize_records, trained_tokens
from rocoft_llm.model_loading import load_tokenizer
from tests.helpers.paths import TINY

WORDS = ["apples", "the", "answer", "is", "42", "Tom", "has", "5", "more", "\n", "(", ")", ",", "éà", "  "]


def long_text(n_words: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(n_words))


def test_a_huge_record_gives_what_the_whole_text_gives():
    tok = load_tokenizer(str(TINY / "llama"))
    template = get_template("llm_adapters")
    records = [
        {"instruction": "Count.", "input": "", "output": long_text(60_000, s), "answer": "1"}
        for s in range(2)
    ] + [{"instruction": long_text(30_000, 9), "input": "", "output": "short", "answer": "1"}]
    for train_on_inputs in (True, False):
        ds, stats = tokenize_records(records, tok, template, 64, train_on_inputs, progress=False)
        assert stats["overlength"]["count"] == 3
        for k, r in enumerate(records):
            whole = tok(template.render_train(r["instruction"], r["output"], ""))["input_ids"]
            assert ds[k]["input_ids"] == whole[:64]
            prompt = tok(template.train_prompt_part(r["instruction"], ""))["input_ids"]
            masked = 0 if train_on_inputs else common_prefix(prompt, whole[:64])
            assert ds[k]["labels"] == [-100] * masked + whole[masked:64]


def test_the_tokenizer_never_sees_more_than_the_limit():
    tok = load_tokenizer(str(TINY / "llama"))
    seen = []

    class Recording:
        def __call__(self, texts, **kw):
            seen.extend([texts] if isinstance(texts, str) else texts)
            return tok(texts, **kw)

        def __len__(self):
            return len(tok)

        def get_vocab(self):
            return tok.get_vocab()

    text = long_text(200_000)
    ids = input_ids_cut(Recording(), [text, "short"], 32)
    assert max(len(t) for t in seen) <= text_limit(tok, 32) < len(text) // 10
    assert ids[0][:32] == tok(text)["input_ids"][:32] and ids[1] == tok("short")["input_ids"]


def test_trained_tokens_counts_in_chunks_what_a_list_count_gives():
    import datasets

    ds = datasets.Dataset.from_list([{"labels": [-100, -100, 5, 6]}, {"labels": [1, 2]}, {"labels": []}] * 50)
    want = sum(sum(1 for t in lab if t != -100) for lab in ds["labels"])
    assert trained_tokens(ds) == trained_tokens(ds, rows=7) == want == 200
