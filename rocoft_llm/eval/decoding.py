"""How responses are generated: the one declaration of the decoding settings and their defaults
(the LLM-Adapters protocol's). A recipe's ``eval:`` section, ``rocoft-llm eval``'s flags and the
evaluation code all read them from here."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ..strict_settings import StrictModel

PositiveInt = Annotated[int, Field(ge=1)]


class GenerationSettings(StrictModel):
    """Decoding settings shared by a recipe's ``eval:`` section and ``rocoft-llm eval``."""

    num_beams: PositiveInt = 4
    """Beam search width; 1 = greedy."""
    max_new_tokens: PositiveInt | None = None
    """null = protocol default (32 commonsense, 256 math)."""
    batch_size: PositiveInt = 8
    """Prompts per generate call on one device (and records per forward of eval.nll_data)."""


class Decoding(GenerationSettings):
    """What one evaluation generates with: the settings plus the prompt template."""

    chat_template: str | None = None
    """With template chat: a Jinja chat template file instead of the tokenizer's own (the run's data.chat_template)."""
    template: str = "llm_adapters"
    """Prompt template (the run's data.template by default)."""


class Sampling(StrictModel):
    """How ``rocoft-llm generate`` decodes one reply: greedy (as ``eval`` with num_beams 1) unless a
    temperature is given, then sampling with nucleus (top-p) filtering."""

    max_new_tokens: PositiveInt = 256
    """Most tokens of one reply (the math protocol's length)."""
    temperature: Annotated[float, Field(ge=0)] = 0.0
    """0 = greedy (deterministic, the default); above 0 samples, higher = more varied."""
    top_p: Annotated[float, Field(gt=0, le=1)] = 1.0
    """With --temperature: sample from the smallest token set whose probability reaches top-p."""
    seed: int = 0
    """Random seed of sampling (with --temperature): the same seed and prompt give the same reply."""

    def sampling_kwargs(self) -> dict:
        """What ``model.generate`` needs beyond greedy decoding (nothing when greedy)."""
        if self.temperature == 0:
            return {}
        return {"do_sample": True, "temperature": self.temperature, "top_p": self.top_p}
