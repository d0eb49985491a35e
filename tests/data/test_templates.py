"""Templates are byte-exact (LLM-Adapters training text vs evaluation prompt differ in whitespace)."""

import pytest

from rocoft_llm.data.templates import get_template
from rocoft_llm.errors import RoCoFTError

TRAIN = ("Below is an instruction that describes a task. Write a response that appropriately completes the request.  \n\n"
         "                ### Instruction:\n                Q?\n                \n                ### Response:\n"
         "                A.")
PROMPT = ("Below is an instruction that describes a task. Write a response that appropriately completes the request. \n\n"
          "### Instruction:\nQ?\n\n### Response:\n")


def test_llm_adapters_text_is_byte_exact():
    t = get_template("llm_adapters")
    assert t.render_train("Q?", "A.") == TRAIN
    assert t.render_prompt("Q?") == PROMPT
    assert TRAIN.startswith(t.train_prompt_part("Q?")) and TRAIN[len(t.train_prompt_part("Q?")):] == "A."


def test_alpaca_clean_and_custom():
    clean = get_template("alpaca_clean")
    assert clean.render_train("Q", "A").endswith("### Instruction:\nQ\n\n### Response:\nA")
    assert clean.render_train("Q", "A") == clean.render_prompt("Q") + "A"
    custom = get_template("User: {instruction}\nBot: {output}")
    assert custom.render_prompt("hi") == "User: hi\nBot: " and custom.render_train("hi", "yo") == "User: hi\nBot: yo"
    with pytest.raises(RoCoFTError, match="neither built-in"):
        get_template("alpaca")
    with pytest.raises(RoCoFTError, match="must end with"):
        get_template("{output} after {instruction}")


def test_braces_in_data_are_not_formatted():
    assert "{x} {0}" in get_template("llm_adapters").render_train("use {x} {0}", "ok")
