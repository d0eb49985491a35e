"""Prompt templates. ``llm_adapters`` reproduces the upstream text byte for byte: training text has
TWO spaces after "request." and 16-space indents; the evaluation prompt has ONE space after
"request." and no indents, and ends at "### Response:\\n". ``alpaca_clean`` is the same wording
with clean whitespace for both (tloen/alpaca-lora ``templates/alpaca.json``).

A record with a non-empty ``input`` is rendered the upstream way (LLM-Adapters ``finetune.py`` /
``evaluate.py`` ``generate_prompt``, Alpaca's ``prompt_input``): its own preamble ("... paired with
an input that provides further context. ...") and an "### Input:" block after the instruction. A
custom template is a string with {instruction} and {output} (last), and {input} where the input
goes; a custom template without {input} refuses records that have one (text is never dropped).

``chat`` renders through the tokenizer's own chat template (or a template file given with
``data.chat_template``): :mod:`.chat_template` binds the template text and computes the loss mask.
Instruction records become a one-turn chat there (:func:`.chat.instruction_messages`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import RoCoFTError

_PREAMBLE = "Below is an instruction that describes a task. Write a response that appropriately completes the request."
_PREAMBLE_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request."
)
_INDENT = " " * 16
_FIELD = re.compile(r"\{(instruction|input|output)\}")


def _fill(text: str, **values: str) -> str:
    """One pass over the placeholders, so text inside a record (``{output}``, ``{0}``) is never re-expanded."""
    return _FIELD.sub(lambda m: values.get(m.group(1), m.group(0)), text)


@dataclass(frozen=True)
class Template:
    name: str
    #: full training text of a record without input; has {instruction} and {output}
    train: str
    #: generation prompt of a record without input; has {instruction}; the model continues after it
    prompt: str
    #: the same two for a record with a non-empty input (with {input}); None = the template cannot show an input
    train_input: str | None = None
    prompt_input: str | None = None
    #: the Jinja chat template text (template ``chat`` once bound to a tokenizer; see .chat_template)
    chat: str | None = None

    @property
    def is_chat(self) -> bool:
        return self.name == CHAT_NAME

    @property
    def takes_input(self) -> bool:
        return self.is_chat or self.train_input is not None

    def _pick(self, with_input: str, without: str, input: str) -> str:
        if self.is_chat:
            raise RoCoFTError(
                "template 'chat' renders through the tokenizer's chat template; use "
                "rocoft_llm.data.chat_template (training) or rocoft_llm.eval.prompts (generation)."
            )
        if not input:
            return without
        if with_input is None:
            raise RoCoFTError(
                f"template {self.name!r} has no {{input}}, but a record has the input {input[:60]!r}; "
                "add {input} to the template, use llm_adapters or alpaca_clean, or remove the input."
            )
        return with_input

    def render_train(self, instruction: str, output: str, input: str = "") -> str:
        return _fill(
            self._pick(self.train_input, self.train, input),
            instruction=instruction,
            input=input,
            output=output,
        )

    def render_prompt(self, instruction: str, input: str = "") -> str:
        return _fill(self._pick(self.prompt_input, self.prompt, input), instruction=instruction, input=input)

    def train_prompt_part(self, instruction: str, input: str = "") -> str:
        """The training text up to where {output} starts (the part masked when train_on_inputs=false)."""
        text = self._pick(self.train_input, self.train, input)
        return _fill(text.split("{output}", 1)[0], instruction=instruction, input=input)


LLM_ADAPTERS = Template(
    name="llm_adapters",
    train=(
        f"{_PREAMBLE}  \n\n{_INDENT}### Instruction:\n{_INDENT}{{instruction}}\n{_INDENT}\n"
        f"{_INDENT}### Response:\n{_INDENT}{{output}}"
    ),
    prompt=f"{_PREAMBLE} \n\n### Instruction:\n{{instruction}}\n\n### Response:\n",
    # upstream: ONE space after "request." in the training text with input, none in the prompt with input
    train_input=(
        f"{_PREAMBLE_INPUT} \n\n{_INDENT}### Instruction:\n{_INDENT}{{instruction}}\n{_INDENT}\n"
        f"{_INDENT}### Input:\n{_INDENT}{{input}}\n{_INDENT}\n{_INDENT}### Response:\n{_INDENT}{{output}}"
    ),
    prompt_input=f"{_PREAMBLE_INPUT}\n\n### Instruction:\n{{instruction}}\n\n### Input:\n{{input}}\n\n### Response:\n",
)

_ALPACA_INPUT = (
    f"{_PREAMBLE_INPUT}\n\n### Instruction:\n{{instruction}}\n\n### Input:\n{{input}}\n\n### Response:\n"
)
ALPACA_CLEAN = Template(
    name="alpaca_clean",
    train=f"{_PREAMBLE}\n\n### Instruction:\n{{instruction}}\n\n### Response:\n{{output}}",
    prompt=f"{_PREAMBLE}\n\n### Instruction:\n{{instruction}}\n\n### Response:\n",
    train_input=_ALPACA_INPUT + "{output}",
    prompt_input=_ALPACA_INPUT,
)

CHAT_NAME = "chat"
#: the model's own chat template (bound to the tokenizer's, or a file's, by .chat_template.bind_chat)
CHAT = Template(name=CHAT_NAME, train="", prompt="")

BUILTIN = {t.name: t for t in (LLM_ADAPTERS, ALPACA_CLEAN, CHAT)}


def get_template(spec: str) -> Template:
    """A built-in template by name, or a custom one from a string with {instruction}, [{input},] {output}."""
    if spec in BUILTIN:
        return BUILTIN[spec]
    if "{instruction}" in spec and "{output}" in spec:
        if not spec.rstrip(" ").endswith("{output}"):
            raise RoCoFTError(
                f"custom template must end with {{output}} (the response is generated after it): {spec!r}"
            )
        prompt = spec.split("{output}", 1)[0]
        with_input = "{input}" in spec
        return Template(
            name="custom",
            train=spec,
            prompt=prompt,
            train_input=spec if with_input else None,
            prompt_input=prompt if with_input else None,
        )
    raise RoCoFTError(
        f"template {spec!r} is neither built-in ({', '.join(BUILTIN)}) nor a string containing "
        "{instruction} and {output}."
    )


def input_problem(records: Iterable, template: Template, source: str) -> str | None:
    """Why ``records`` cannot be rendered with ``template`` (records with an input it cannot show), or None."""
    if template.takes_input:
        return None
    bad, first = 0, None  # one pass: ``records`` may be a stream
    for i, r in enumerate(records):
        if isinstance(r, dict) and r.get("input"):
            bad += 1
            first = first or (i, r["input"][:60])
    if not bad:
        return None
    return (
        f"{source}: {bad} record(s) have a non-empty 'input' (e.g. record {first[0]}: "
        f"{first[1]!r}) but the custom template has no {{input}}; add {{input}} to the template "
        "(data.template / --template), use llm_adapters or alpaca_clean, or remove the input text"
    )


def format_problem(fmt: str, template: Template, source: str) -> str | None:
    """Why records of format ``fmt`` cannot be rendered with ``template`` (chat records need ``chat``), or None."""
    if fmt == "instruction" or template.is_chat:
        return None
    return (
        f"{source}: the records are chat records ({fmt} format), which the {template.name!r} template cannot "
        "show (it renders instruction records); set data.template: chat (--template chat) to render them "
        "through the tokenizer's chat template"
    )
