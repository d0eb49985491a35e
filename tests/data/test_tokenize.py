"""Tokenization: loss masks, EOS rules, over-length policies; labels never come from pad ids."""

import pytest
from transformers import AutoTokenizer

from rocoft_llm.data.templates import get_template
from rocoft_llm.data.tokenize import IGNORE_INDEX, tokenize_records
from rocoft_llm.errors import RoCoFTError
from tests.helpers.tokenizers import save_tiny_tokenizer


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return AutoTokenizer.from_pretrained(save_tiny_tokenizer(tmp_path_factory.mktemp("tok")))


def rec(i="What is 2+2?", o="The answer is 4."):
    return {"instruction": i, "input": "", "output": o, "answer": "4"}


def tokenize(tok, records, **kw):
    kw = {"cutoff_len": 256, "progress": False, **kw}
    return tokenize_records(records, tok, get_template("llm_adapters"), **kw)


def test_train_on_inputs_true_labels_everything_and_eos_fits(tok):
    ds, stats = tokenize(tok, [rec()])
    ids, labels = ds[0]["input_ids"], ds[0]["labels"]
    full = tok(get_template("llm_adapters").render_train("What is 2+2?", "The answer is 4."))["input_ids"]
    assert ids == full + [tok.eos_token_id] and labels == ids
    assert stats["examples"] == 1 and stats["trained_tokens"] == len(ids)


def test_train_on_inputs_false_masks_exactly_the_prompt(tok):
    ds, _ = tokenize(tok, [rec()], train_on_inputs=False)
    ids, labels = ds[0]["input_ids"], ds[0]["labels"]
    n_prompt = len(tok(get_template("llm_adapters").train_prompt_part("What is 2+2?"))["input_ids"])
    assert labels[:n_prompt] == [IGNORE_INDEX] * n_prompt
    assert labels[n_prompt:] == ids[n_prompt:] and labels[-1] == tok.eos_token_id  # EOS is learned


def test_eos_equal_to_pad_still_learned(tok):
    tok = AutoTokenizer.from_pretrained(tok.name_or_path)
    tok.pad_token = tok.eos_token  # the Llama-2 trap: pad == EOS
    ds, _ = tokenize(tok, [rec()], train_on_inputs=False)
    assert ds[0]["labels"][-1] == tok.eos_token_id == tok.pad_token_id


def test_eos_only_when_it_fits_and_overlength_policies(tok):
    text_len = len(
        tok(get_template("llm_adapters").render_train("What is 2+2?", "The answer is 4."))["input_ids"]
    )
    exact, _ = tokenize(tok, [rec()], cutoff_len=text_len)
    assert len(exact[0]["input_ids"]) == text_len and exact[0]["input_ids"][-1] != tok.eos_token_id
    short, stats = tokenize(tok, [rec(), rec(o="x" * 2000)], cutoff_len=text_len + 1)
    assert short[1]["length"] == text_len + 1 and short[1]["input_ids"][-1] != tok.eos_token_id
    assert stats["overlength"] == {"policy": "truncate", "count": 1, "truncated": 1, "dropped": 0}
    dropped, stats = tokenize(tok, [rec(), rec(o="x" * 2000)], cutoff_len=text_len + 1, overlength="drop")
    assert len(dropped) == 1 and stats["overlength"]["dropped"] == 1
    with pytest.raises(RoCoFTError, match=r"1 record\(s\) are longer than cutoff_len"):
        tokenize(tok, [rec(), rec(o="x" * 2000)], cutoff_len=text_len + 1, overlength="error")


def test_parallel_tokenization_equals_serial(tok):
    records = [rec(f"What is {i}+{i}?", f"The answer is {2 * i}.") for i in range(40)]
    serial, _ = tokenize(tok, records)
    parallel, _ = tokenize(tok, records, num_proc=2)
    assert serial["input_ids"] == parallel["input_ids"] and serial["labels"] == parallel["labels"]
