"""Chat records and the ``chat`` template: format detection, validation, and the loss mask computed by
rendering conversation prefixes (checked token by token, against transformers' ``{% generation %}``
masks, and on a template whose prompt/answer boundary merges into one token)."""

import pytest
from transformers import AutoTokenizer

from rocoft_llm.data.chat import chat_problem, detect_format, normalise_chat
from rocoft_llm.data.chat_template import assistant_spans, chat_template_text, encode_chat
from rocoft_llm.data.templates import get_template
from rocoft_llm.data.tokenize import IGNORE_INDEX, tokenize_records
from rocoft_llm.data.validate import validate_records
from rocoft_llm.errors import RoCoFTError
from tests.helpers.chat_templates import (
    GEMMA3_CHAT_TEMPLATE,
    MERGING_CHAT_TEMPLATE,
    SMOLLM2_CHAT_TEMPLATE,
    TINY_CHAT_TEMPLATE,
    TURNS,
    gemma3_segments,
    hand_mask,
    smollm2_segments,
)
from tests.helpers.tokenizers import save_chatml_tokenizer, save_gemma3_tokenizer, save_tiny_tokenizer

SYSTEM = {"role": "system", "content": "Write a response that completes the request."}


@pytest.fixture(scope="module")
def chatml(tmp_path_factory):
    return AutoTokenizer.from_pretrained(save_chatml_tokenizer(tmp_path_factory.mktemp("chatml")))


@pytest.fixture(scope="module")
def gemma3(tmp_path_factory):
    return AutoTokenizer.from_pretrained(save_gemma3_tokenizer(tmp_path_factory.mktemp("gemma3")))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return AutoTokenizer.from_pretrained(save_tiny_tokenizer(tmp_path_factory.mktemp("tiny")))


@pytest.fixture(scope="module")
def merging(tmp_path_factory):
    """Vocabulary large enough for whole words with their leading space ('Ġthe')."""
    return AutoTokenizer.from_pretrained(save_tiny_tokenizer(tmp_path_factory.mktemp("m"), vocab_size=400))


def test_formats_are_detected_and_normalised():
    assert detect_format([{"instruction": "q", "output": "a"}]) == "instruction"
    assert detect_format([{"messages": TURNS}]) == "messages"
    sharegpt = {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]}
    assert detect_format([sharegpt]) == "sharegpt"
    assert normalise_chat(sharegpt, "sharegpt") == {
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    }
    kept, drops = validate_records([{"messages": [SYSTEM, *TURNS], "id": 7}], {}, "c.jsonl")
    assert (
        kept == [{"messages": [SYSTEM, *TURNS]}] and drops.format == "messages" and drops.ignored == {"id": 1}
    )


@pytest.mark.parametrize(
    "turns,reason",
    [
        ([{"role": "tool", "content": "x"}], "unknown_role: turn 0"),
        ([TURNS[0], {"role": "assistant", "content": " "}], "empty_content: turn 1 (assistant)"),
        ([TURNS[0]], "no_assistant_turn"),
        (TURNS[:3], "ends_on_user_turn: turn 2"),
        ([TURNS[0], TURNS[0], TURNS[1]], "non_alternating: turn 1 is 'user' after 'user'"),
        ([TURNS[0], {"role": "assistant", "content": ["a"]}], "non_string_content: turn 1 (assistant)"),
        ([TURNS[0], TURNS[1], SYSTEM], "misplaced_system: turn 2"),
        ([], "not_a_turn_list"),
    ],
)
def test_bad_conversations_are_named(turns, reason):
    assert chat_problem({"messages": turns}, "messages").startswith(reason)


@pytest.mark.parametrize(
    "tokenizer,template,segments",
    [("chatml", SMOLLM2_CHAT_TEMPLATE, smollm2_segments), ("gemma3", GEMMA3_CHAT_TEMPLATE, gemma3_segments)],
    ids=["smollm2", "gemma3"],
)
def test_multi_turn_mask_equals_hand_computed(request, tokenizer, template, segments):
    """A real model's chat template, no generation markers: the prefix mask equals the hand-built one
    (see each ``*_segments``), and the generation prompt is exactly what the first answer followed."""
    tok = request.getfixturevalue(tokenizer)
    assert chat_template_text(tok) == template
    want_ids, want_labels = hand_mask(tok, segments([t["content"] for t in TURNS]))
    enc = encode_chat(tok, template, TURNS, 512, train_on_inputs=False, add_eos=True)
    assert enc["input_ids"] == want_ids
    assert enc["labels"] == want_labels
    assert enc["prompt_tokens"] == next(k for k, t in enumerate(want_labels) if t != IGNORE_INDEX)
    everything = encode_chat(tok, template, TURNS, 512, train_on_inputs=True, add_eos=True)
    assert everything["labels"] == want_ids
    prompt = tok.apply_chat_template(TURNS[:1], tokenize=False, add_generation_prompt=True)
    assert tok(prompt, add_special_tokens=False)["input_ids"] == want_ids[: enc["prompt_tokens"]]


def test_prefix_mask_agrees_with_generation_markers(tiny):
    """On a template with {% generation %} markers, transformers' assistant mask and the prefix mask agree."""
    for turns in (TURNS, [SYSTEM, *TURNS], TURNS[:2]):
        hf = tiny.apply_chat_template(
            turns,
            chat_template=TINY_CHAT_TEMPLATE,
            tokenize=True,
            return_dict=True,
            return_assistant_tokens_mask=True,
        )
        ids, spans = assistant_spans(tiny, TINY_CHAT_TEMPLATE, turns)
        ours = [0] * len(ids)
        for start, end in spans:
            ours[start:end] = [1] * (end - start)
        assert ids == list(hf["input_ids"]) and ours == list(hf["assistant_masks"]), turns


def test_merged_boundary_token_is_trained(merging):
    """'A: ' + answer: the prompt's trailing space and the answer's first word are ONE token in the full
    text. Token-id prefixes find it (counting the prompt's own tokens would mask the first answer token)."""
    turns = [
        {"role": "user", "content": "is 8 > 3?"},
        {"role": "assistant", "content": "the correct answer is true"},
    ]
    prompt = merging("Q: is 8 > 3?\nA: ", add_special_tokens=False)["input_ids"]
    enc = encode_chat(merging, MERGING_CHAT_TEMPLATE, turns, 512, train_on_inputs=False, add_eos=True)
    ids, labels = enc["input_ids"], enc["labels"]
    first = next(k for k, t in enumerate(labels) if t != IGNORE_INDEX)
    assert prompt[:first] == ids[:first] and prompt[first] != ids[first]  # the boundary merged
    assert merging.decode(ids[first:]) == " the correct answer is true</s>"
    assert labels[first:] == ids[first:] and first == len(prompt) - 1


def test_cutoff_never_trains_on_a_prompt_alone(chatml):
    n = encode_chat(chatml, SMOLLM2_CHAT_TEMPLATE, TURNS, 10**6, False, True)["length"]
    long = [{"role": "user", "content": "the correct answer is true " * (n // 10)}, TURNS[1]]
    ds, stats = tokenize_records(
        [{"messages": long}, {"messages": TURNS}],
        chatml,
        _bound(chatml),
        cutoff_len=n,
        train_on_inputs=True,
        progress=False,
    )
    assert stats["examples"] == 1 and stats["overlength"]["dropped_prompt_only"] == 1
    assert stats["overlength"]["count"] == 1 and stats["overlength"]["truncated"] == 0
    cut = encode_chat(chatml, SMOLLM2_CHAT_TEMPLATE, TURNS, n - 3, train_on_inputs=False, add_eos=True)
    assert cut["overlength"] and cut["assistant_tokens"] > 0 and cut["length"] == n - 3


def test_instruction_records_render_as_one_turn_chat(chatml):
    rec = {
        "instruction": "What is 3 + 5?",
        "input": "Use digits.",
        "output": "The answer is 8",
        "answer": "8",
    }
    ds, _ = tokenize_records([rec], chatml, _bound(chatml), 256, train_on_inputs=False, progress=False)
    ids, labels = ds[0]["input_ids"], ds[0]["labels"]
    assert "<|im_start|>user\nWhat is 3 + 5?\n\nUse digits.<|im_end|>" in chatml.decode(ids)
    assert chatml.decode([t for t in labels if t != IGNORE_INDEX]) == "The answer is 8<|im_end|>"


def test_a_tokenizer_without_chat_template_is_refused(tmp_path):
    tok = AutoTokenizer.from_pretrained(save_tiny_tokenizer(tmp_path / "t", chat_template=None))
    with pytest.raises(
        RoCoFTError, match="has no chat template; use data.template llm_adapters, alpaca_clean"
    ):
        chat_template_text(tok)
    (tmp_path / "t.jinja").write_text(TINY_CHAT_TEMPLATE)
    assert chat_template_text(tok, str(tmp_path / "t.jinja")) == TINY_CHAT_TEMPLATE


def test_chat_records_need_the_chat_template(chatml):
    with pytest.raises(RoCoFTError, match="set data.template: chat"):
        tokenize_records([{"messages": TURNS}], chatml, get_template("alpaca_clean"), progress=False)


def _bound(tok):
    from rocoft_llm.data.chat_template import bind_chat

    return bind_chat(get_template("chat"), tok)


def test_chat_files_split_by_their_first_user_turn():
    from rocoft_llm.data.file_split import FILE_PARTS, split_file_records

    records = [{"messages": [{"role": "user", "content": f"q{i}"}, TURNS[1]]} for i in range(40)]
    records += [
        {"conversations": [{"from": "human", "value": f"s{i}"}, {"from": "gpt", "value": "a"}]}
        for i in range(10)
    ]
    parts = [split_file_records(records, part, "c.jsonl") for part in FILE_PARTS]
    assert sorted(map(id, sum(parts, []))) == sorted(map(id, records))  # every record in exactly one part
    with pytest.raises(
        RoCoFTError, match=r"record\(s\) \[0\] have no string 'instruction' \(a chat record: no user"
    ):
        split_file_records([{"messages": [TURNS[1]]}], "train", "c.jsonl")


def test_instruction_template_mask_keeps_a_merged_first_token(merging):
    """The same rule for instruction templates: a custom template whose prompt ends with a space."""
    template = get_template("Q: {instruction}\nA: {output}")
    rec = {"instruction": "is 8 > 3?", "input": "", "output": "the correct answer is true"}
    ds, _ = tokenize_records([rec], merging, template, 512, train_on_inputs=False, progress=False)
    ids, labels = ds[0]["input_ids"], ds[0]["labels"]
    prompt = merging(template.train_prompt_part(rec["instruction"]))["input_ids"]
    first = next(k for k, t in enumerate(labels) if t != IGNORE_INDEX)
    assert first == len(prompt) - 1 and merging.decode(ids[first:]) == " the correct answer is true</s>"


#: a template that writes no EOS of its own, so ``add_eos`` has to append one
NO_EOS_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)


def test_eos_is_appended_only_when_it_fits(merging):
    """As for instruction records: a conversation that fills the cutoff exactly is not cut (and not
    counted over-length) to make room for an EOS it does not hold."""
    turns = [{"role": "user", "content": "is 8 > 3?"}, {"role": "assistant", "content": "true"}]
    bare = encode_chat(merging, NO_EOS_TEMPLATE, turns, 512, train_on_inputs=False, add_eos=False)
    roomy = encode_chat(merging, NO_EOS_TEMPLATE, turns, 512, train_on_inputs=False, add_eos=True)
    assert roomy["length"] == bare["length"] + 1 and roomy["input_ids"][-1] == merging.eos_token_id
    full = encode_chat(merging, NO_EOS_TEMPLATE, turns, bare["length"], train_on_inputs=False, add_eos=True)
    assert full["input_ids"] == bare["input_ids"] and not full["overlength"]
