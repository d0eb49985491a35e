"""`rocoft-llm prepare --recipe R [options]`: the recipe's data options with the command line's on top."""

from __future__ import annotations

import json

from ..data.settings import DataOptions, PrepareOptions
from . import load_recipe

#: where each `prepare` option lands in a recipe (the data options are data.<name>)
RECIPE_KEY_OF_PREPARE_OPTION = {"datasets": "data.train", "tokenizer_path": "model.tokenizer"}


def prepare_options_from_recipe(recipe: str, overrides: list[str], on_command_line: dict) -> PrepareOptions:
    """Data options and --dataset/--tokenizer given on the command line become recipe overrides (checked like
    any override, so a flag is never ignored); --split/--test-dir apply to the preparation itself."""
    extra, local = [], {}
    for name, value in on_command_line.items():
        key = RECIPE_KEY_OF_PREPARE_OPTION.get(name) or (
            f"data.{name}" if name in DataOptions.model_fields else None
        )
        if key is None:
            local[name] = value
        else:
            extra.append(f"{key}={json.dumps(value)}")
    from ..models.gguf_import import materialize_recipe_model

    r, _ = load_recipe(recipe, overrides + extra, offline_checks=False, training=False, need_model=True)
    return PrepareOptions.from_recipe(
        materialize_recipe_model(r), **local
    )  # a .gguf model: its converted dir
