""":class:`RoCoFTConfig`: what to train - declared once, used by the Python API, adapters, ``select``
and (as the ``rocoft:`` section) by recipes. Each field's docstring is its documentation."""

from __future__ import annotations

import typing
from typing import Annotated, Literal

from pydantic import Field, ValidationError

from ..errors import RoCoFTError
from ..strict_settings import Float, StrictModel, describe_errors

Mode = Literal["row", "column", "row_column", "entries"]
#: every selection strategy; the Wanda-scored ones need calibration data (or an indices file)
ScoredSelection = Literal["max", "min", "mixed"]
Selection = Literal["first", "random", ScoredSelection]
SCORED_SELECTIONS: tuple[str, ...] = typing.get_args(ScoredSelection)
SELECTIONS: tuple[str, ...] = typing.get_args(Selection)


class RoCoFTConfig(StrictModel):
    """What to train: r rows (``mode: row``, output features), r columns (``column``, input features),
    both (``row_column``), or a random fraction of single entries (``entries``) of every targeted
    linear. Invalid values raise :class:`RoCoFTError` naming each field."""

    mode: Mode = "column"
    """column (the default: the best RoCoFT configuration measured against LoRA r=8, at the floor's
    step cost and memory; RESULTS.md) = r input features per weight (slice out x r); row = r output
    features (slice r x in);
    row_column = r rows AND r columns (the rows own the entries where both cross: a rank-2r update);
    entries = the paper's random-entry variant, a seeded `density` fraction of each weight's entries
    (not compute-efficient: its gradient costs a full weight gradient; no exact LoRA export)."""
    rank: Annotated[int, Field(ge=1)] = 3
    """r: rows or columns trained per weight (paper default 3; fused BLOOM query_key_value: r rows per
    part). row_column trains r rows and r columns. Not used by mode entries."""
    density: Annotated[Float, Field(gt=0, le=1)] | None = None
    """mode entries only: the fraction p of each weight's entries trained (round(p x numel), at least 1;
    the paper's LLM table uses 0.01). Null for every other mode."""
    selection: Selection = "random"
    """Which rows/columns: random (the default and the paper's Table 10 setting; seeded per module),
    first (the paper's text: indices 0..r-1), or the Wanda-scored max, min, mixed (these need
    calibration data or an indices_file)."""
    targets: Annotated[list[str], Field(min_length=1)] | None = None
    """nn.Linear names (or dotted path suffixes) to adapt; null = the architecture table's q/k/v/o + feed-forward."""
    train_bias: bool = False
    """Also train the full bias of every adapted linear (architectures whose linears have one)."""
    seed: int = 0
    """Seed of the random selection (combined with each module's name)."""
    indices_file: str | None = None
    """Indices computed once by `rocoft-llm select` (overrides selection)."""
    also_train: list[str] = Field(default_factory=list)
    """Regexes of extra parameter names to train in full (norms, lm_head); empty = everything else frozen."""
    calibration_batches: Annotated[int, Field(ge=1)] | None = 32
    """At most this many calibration batches score the Wanda selections (max/min/mixed); null = all given."""

    def __init__(self, **data):
        try:
            super().__init__(**data)
        except ValidationError as e:  # the Python API raises the library's own error, worded like a recipe's
            raise RoCoFTError(
                "invalid RoCoFTConfig: " + "; ".join(describe_errors(type(self), e, data))
            ) from None
        problems = combination_problems(self)
        if problems:
            raise RoCoFTError("invalid RoCoFTConfig: " + "; ".join(problems))


def combination_problems(cfg: RoCoFTConfig, prefix: str = "") -> list[str]:
    """Settings valid one by one that do not go together (recipes report them with ``prefix`` "rocoft.")."""
    problems = []
    if cfg.mode == "entries":
        if cfg.density is None:
            problems.append(
                f"{prefix}density: mode 'entries' needs the fraction of entries to train; set "
                f"{prefix}density, for example 0.01 (the paper's value)"
            )
        if cfg.selection != "random":
            problems.append(
                f"{prefix}selection: {cfg.selection!r} picks rows or columns; mode 'entries' samples its "
                f"entries at random: set {prefix}selection: random"
            )
        if cfg.indices_file:
            problems.append(
                f"{prefix}indices_file: `rocoft-llm select` writes row or column indices; mode 'entries' "
                f"draws its own (seeded by {prefix}seed): remove {prefix}indices_file"
            )
    elif cfg.density is not None:
        problems.append(
            f"{prefix}density: {cfg.density} applies to mode 'entries' only (mode is {cfg.mode!r}); "
            f"remove it, or set {prefix}mode: entries"
        )
    return problems
