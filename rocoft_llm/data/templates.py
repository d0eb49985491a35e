"""Prompt templates. ``llm_adapters`` reproduces the upstream text byte for byte: training text has
TWO spaces after "request." and 16-space indents; the evaluation prompt has ONE space after
"request." and no indents, and ends at "### Response:\\n". ``alpaca_clean`` is the same wording
with clean whitespace for both. A custom template is a string with {instruction} and {output}.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import RoCoFTError

_PREAMBLE = "Below is an instruction that describes a task. Write a response that appropriately completes the request."
_INDENT = " " * 16


@dataclass(frozen=True)
class Template:
    name: str
    #: full training text; has {instruction} and {output}
    train: str
    #: generation prompt; has {instruction}; the model continues after it
    prompt: str

    def render_train(self, instruction: str, output: str) -> str:
        return self.train.replace("{instruction}", instruction).replace("{output}", output)

    def render_prompt(self, instruction: str) -> str:
        return self.prompt.replace("{instruction}", instruction)

    def train_prompt_part(self, instruction: str) -> str:
        """The training text up to where {output} starts (the part masked when train_on_inputs=false)."""
        return self.train.split("{output}", 1)[0].replace("{instruction}", instruction)


LLM_ADAPTERS = Template(
    name="llm_adapters",
    train=(f"{_PREAMBLE}  \n\n{_INDENT}### Instruction:\n{_INDENT}{{instruction}}\n{_INDENT}\n"
           f"{_INDENT}### Response:\n{_INDENT}{{output}}"),
    prompt=f"{_PREAMBLE} \n\n### Instruction:\n{{instruction}}\n\n### Response:\n",
)

ALPACA_CLEAN = Template(
    name="alpaca_clean",
    train=f"{_PREAMBLE}\n\n### Instruction:\n{{instruction}}\n\n### Response:\n{{output}}",
    prompt=f"{_PREAMBLE}\n\n### Instruction:\n{{instruction}}\n\n### Response:\n",
)

BUILTIN = {t.name: t for t in (LLM_ADAPTERS, ALPACA_CLEAN)}


def get_template(spec: str) -> Template:
    """A built-in template by name, or a custom one from a string with {instruction} and {output}."""
    if spec in BUILTIN:
        return BUILTIN[spec]
    if "{instruction}" in spec and "{output}" in spec:
        if not spec.rstrip(" ").endswith("{output}"):
            raise RoCoFTError(f"custom template must end with {{output}} (the response is generated after it): {spec!r}")
        return Template(name="custom", train=spec, prompt=spec.split("{output}", 1)[0])
    raise RoCoFTError(f"template {spec!r} is neither built-in ({', '.join(BUILTIN)}) nor a string containing "
                      "{instruction} and {output}.")
