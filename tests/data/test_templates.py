"""Templates are byte-exact (LLM-Adapters training text vs evaluation prompt differ in whitespace)."""

import pytest

from rocoft_llm.data.templates import get_template
from rocoft_llm.errors import RoCoFTError

TRAIN = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.  \n\n"
    "                ### Instruction:\n                Q?\n                \n                ### Response:\n"
    "                A."
)
PROMPT = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request. \n\n"
    "### Instruction:\nQ?\n\n### Response:\n"
)


def test_llm_adapters_text_is_byte_exact():
    t = get_template("llm_adapters")
    assert t.render_train("Q?", "A.") == TRAIN
    assert t.render_prompt("Q?") == PROMPT
    assert TRAIN.startswith(t.train_prompt_part("Q?")) and TRAIN[len(t.train_prompt_part("Q?")) :] == "A."


def test_alpaca_clean_and_custom():
    clean = get_template("alpaca_clean")
    assert clean.render_train("Q", "A").endswith("### Instruction:\nQ\n\n### Response:\nA")
    assert clean.render_train("Q", "A") == clean.render_prompt("Q") + "A"
    custom = get_template("User: {instruction}\nBot: {output}")
    assert (
        custom.render_prompt("hi") == "User: hi\nBot: "
        and custom.render_train("hi", "yo") == "User: hi\nBot: yo"
    )
    with pytest.raises(RoCoFTError, match="neither built-in"):
        get_template("alpaca")
    with pytest.raises(RoCoFTError, match="must end with"):
        get_template("{output} after {instruction}")


def test_braces_in_data_are_not_formatted():
    assert "{x} {0}" in get_template("llm_adapters").render_train("use {x} {0}", "ok")


# upstream LLM-Adapters finetune.py / evaluate.py generate_prompt with a non-empty input, and Alpaca's prompt_input
PREAMBLE_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request."
)
I16 = " " * 16
TRAIN_INPUT = (
    f"{PREAMBLE_INPUT} \n\n{I16}### Instruction:\n{I16}Q?\n{I16}\n{I16}### Input:\n{I16}ctx\n{I16}\n"
    f"{I16}### Response:\n{I16}A."
)
PROMPT_INPUT = f"{PREAMBLE_INPUT}\n\n### Instruction:\nQ?\n\n### Input:\nctx\n\n### Response:\n"


def test_input_is_rendered_byte_exact_like_upstream():
    t = get_template("llm_adapters")
    assert t.render_train("Q?", "A.", "ctx") == TRAIN_INPUT
    assert t.render_prompt("Q?", "ctx") == PROMPT_INPUT
    assert t.render_train("Q?", "A.", "") == TRAIN  # empty input: the plain text, as upstream (`if input:`)
    assert TRAIN_INPUT.startswith(t.train_prompt_part("Q?", "ctx")) and TRAIN_INPUT.endswith(I16 + "A.")
    clean = get_template("alpaca_clean")
    assert clean.render_prompt("Q?", "ctx") == PROMPT_INPUT
    assert clean.render_train("Q?", "A.", "ctx") == PROMPT_INPUT + "A."
    custom = get_template("User: {instruction} [{input}]\nBot: {output}")
    assert custom.render_train("hi", "yo", "x") == "User: hi [x]\nBot: yo"
    assert custom.render_prompt("hi") == "User: hi []\nBot: "
    # placeholders inside a record are text, never expanded
    assert "{input} {output}" in t.render_train("use {input} {output}", "ok", "i")


def test_custom_template_without_input_refuses_input_records():
    from rocoft_llm.data.templates import input_problem

    custom = get_template("User: {instruction}\nBot: {output}")
    with pytest.raises(RoCoFTError, match="has no \\{input\\}"):
        custom.render_train("hi", "yo", "some context")
    problem = input_problem([{"input": ""}, {"input": "ctx"}], custom, "f.json")
    assert "f.json: 1 record(s)" in problem and "record 1" in problem and "add {input}" in problem
    assert input_problem([{"input": "ctx"}], get_template("llm_adapters"), "f.json") is None
