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

    template: str = "llm_adapters"
    """Prompt template (the run's data.template by default)."""
