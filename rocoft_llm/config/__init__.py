"""Recipes: the typed config tree, strict YAML loading with dotted overrides, and checks."""

from __future__ import annotations

from pathlib import Path

from ..errors import RecipeError
from .checks import CheckResult, check_recipe, gradient_accumulation, model_dir_problem
from .loader import dump_recipe, load_recipe_raw, recipe_to_dict
from .schema import Recipe

__all__ = ["Recipe", "CheckResult", "load_recipe", "dump_recipe", "recipe_to_dict", "gradient_accumulation"]


def load_recipe(
    path: str | Path,
    overrides: list[str] | None = None,
    world_size: int = 1,
    strict: bool = False,
    offline_checks: bool = True,
    training: bool = True,
    need_model: bool = False,
) -> tuple[Recipe, CheckResult]:
    """Load, override and check a recipe; raises :class:`RecipeError` listing EVERY problem.
    ``training=False`` (data preparation) skips the checks that concern only a training run;
    ``need_model`` (train, prepare) makes a missing local model directory an error, not a warning."""
    recipe, raw, problems = load_recipe_raw(path, overrides)
    result = CheckResult()
    if recipe is not None:  # type problems left defaults in place: still report every other problem
        result = check_recipe(
            recipe,
            raw,
            world_size=world_size,
            strict=strict,
            offline_checks=offline_checks,
            training=training,
        )
        problems = problems + [p for p in result.problems if p not in problems]
        missing = model_dir_problem(recipe, path)
        if missing:
            (problems if need_model or strict else result.warnings).append(missing)
    if problems:
        raise RecipeError(str(path), problems)
    return recipe, result
