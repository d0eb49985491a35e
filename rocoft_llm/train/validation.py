"""Held-out NLL during training (``eval.nll_data`` every ``eval.nll_steps`` steps): the learning
curve of a run on a FIXED subset of held-out records (the first ``eval.nll_records``).

The records are tokenized once, with the run's own data options, so the measured tokens are the
ones training would put loss on. The model is switched to eval mode (no dropout) for the measure and
back after it; no random number is drawn, so a run trains the same steps with or without it
(tested). The time it takes is not training time: the loop reports ``train_seconds`` (optimizer
steps only) beside ``val_nll``.
"""

from __future__ import annotations

from collections.abc import Callable

from ..data.sources import resolve_source
from ..eval.nll import NLLOptions, check_records, encode_records, validation_nll
from ..model_loading import load_tokenizer


def make_validator(recipe, backend, pad_id: int) -> Callable[[], tuple[float, int]] | None:
    """``validate() -> (mean NLL per target token, target tokens)``, or None without ``eval.nll_data``."""
    spec = recipe.eval.nll_data
    if not spec:
        return None
    d = recipe.data
    src = resolve_source(spec, "test", d.source, d.llm_adapters_dir, d.hub_dir)
    records = src.records[: recipe.eval.nll_records] if recipe.eval.nll_records else src.records
    records = check_records(records, f"eval.nll_data {spec!r}")
    opts = NLLOptions.from_data_section(d.model_dump(), recipe.eval.batch_size)
    examples = encode_records(
        records, load_tokenizer(recipe.model.tokenizer or recipe.model.name_or_path), opts
    )

    def validate() -> tuple[float, int]:
        model = backend.model
        was_training = model.training
        model.eval()
        try:
            return validation_nll(backend.forward, examples, opts.batch_size, pad_id, backend.device)
        finally:
            model.train(was_training)

    return validate
