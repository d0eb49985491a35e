"""How instruction data is read and tokenized - declared once.

:class:`DataOptions` is shared by the recipe's ``data:`` section and by ``rocoft-llm prepare``
(whose command-line options and their defaults are derived from these fields), so a default or
a rule lives in one place. Each field's docstring is its documentation.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from ..errors import RoCoFTError
from ..strict_settings import StrictModel


class DataOptions(StrictModel):
    """Where records come from and how they become training text and tokens."""

    source: Literal["llm_adapters", "hub"] = Field(
        "llm_adapters", json_schema_extra={"cli": ["--from", "--source"]}
    )
    """Where dataset ids are read from: the LLM-Adapters JSON files, or the original datasets (converted)."""
    llm_adapters_dir: str | None = None
    """A clone of github.com/AGI-Edgerunners/LLM-Adapters (test sets in dataset/<task>/test.json, training
    sets in ft-training_set/), its dataset/ folder, or a flat copy of both; default $ROCOFT_LLM_ADAPTERS_DIR."""
    hub_dir: str | None = None
    """Offline copies of the original datasets: DIR/<id>/<split>.jsonl|.json|.parquet|.csv."""
    format: Literal["auto", "instruction", "messages", "sharegpt"] = "auto"
    """Record format of the data files: instruction ({instruction, input, output[, answer]}), messages (OpenAI
    chat: role/content turns) or sharegpt (conversations: from/value turns); auto detects it per file."""
    template: Annotated[str, Field(min_length=1)] = "llm_adapters"
    """Prompt template: llm_adapters (exact upstream text), alpaca_clean, a custom string with {instruction},
    optionally {input}, and {output} last, or chat (the tokenizer's own chat template; needed by chat records)."""
    chat_template: str | None = None
    """With template chat: a Jinja chat template file used instead of the tokenizer's own."""
    cutoff_len: Annotated[int, Field(ge=8)] = 256
    """Maximum tokens per example (prompt + response + EOS)."""
    train_on_inputs: bool = False
    """Loss on the prompt tokens too (LLM-Adapters' choice, set by the paper recipes), or only on the response
    (default; with template chat: on the assistant turns)."""
    add_eos: bool = True
    """Append the EOS token when it fits, so the model learns to stop."""
    overlength: Literal["truncate", "drop", "error"] = "truncate"
    """Examples longer than cutoff_len: truncate them, drop them (counted), or stop with an error."""
    bad_records: Literal["error", "drop"] = "error"
    """Malformed records: stop listing every one (error), or drop them with counts per reason (drop)."""
    num_proc: Annotated[int, Field(ge=1)] = 1
    """Processes for tokenization."""

    @field_validator("template")
    @classmethod
    def _known_template(cls, spec: str) -> str:
        from .templates import get_template

        try:
            get_template(spec)  # the rule prepare/train/eval apply
        except RoCoFTError as e:
            raise ValueError(str(e)) from None
        return spec


class PrepareOptions(DataOptions):
    """Everything ``rocoft-llm prepare`` needs: the data options plus what to read and with which tokenizer."""

    datasets: list[str] = Field(json_schema_extra={"cli": ["--dataset"]})
    """Dataset ids (boolq, gsm8k, commonsense, math ...), aliases, or LLM-Adapters JSON files."""
    tokenizer_path: str = Field(json_schema_extra={"cli": ["--tokenizer"]})
    """Tokenizer id or directory."""
    split: Literal["train", "test"] = "train"
    """train, or test (per-task test sets)."""
    test_dir: str | None = None
    """LLM-Adapters test sets for the contamination report (default: llm_adapters_dir)."""

    @classmethod
    def from_recipe(cls, recipe, **changes) -> PrepareOptions:
        """The training data a recipe means (its ``data`` section and tokenizer), with ``changes`` on top."""
        shared = recipe.data.model_dump(include=set(DataOptions.model_fields))
        return cls.model_validate(
            {
                **shared,
                "datasets": list(recipe.data.train),
                "tokenizer_path": recipe.model.tokenizer or recipe.model.name_or_path,
                **changes,
            }
        )
