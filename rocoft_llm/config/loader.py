"""Recipe loading: YAML -> dotted overrides -> the pydantic :class:`Recipe`.

pydantic does the typing (unknown keys, wrong types, values outside their choices or ranges,
missing required keys - every error with its location); :mod:`rocoft_llm.strict_settings` words them the
rocoft-llm way ("did you mean", the valid keys, what is allowed). Kept by hand on purpose:
overrides (``train.lr=1e-4`` must name a real key, with a hint), and *recovery* - keys that fail
are dropped and the recipe rebuilt on their defaults, so the cross-field and file checks still run
and ``validate`` reports every problem of a file at once, not just the type errors.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ..errors import RecipeError, preview
from ..io_utils import read_yaml, safe_yaml_load
from ..strict_settings import describe_errors, did_you_mean, error_path, is_section, unwrap
from .schema import Recipe


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise RecipeError("command line", [f"override {preview(text)} is not KEY=VALUE (e.g. train.lr=1e-4)"])
    key, _, value = text.partition("=")
    try:
        parsed = safe_yaml_load(value) if value.strip() else ""
    except (yaml.YAMLError, RecursionError):
        parsed = value  # not YAML (e.g. an unbalanced bracket): the schema says what it should be
    return key.strip().split("."), parsed


def apply_overrides(raw: dict, overrides: list[str]) -> list[str]:
    """Apply ``a.b=value`` overrides to the raw mapping; returns problems (unknown paths)."""
    problems = []
    for text in overrides:
        path, value = parse_override(text)
        cls, node = Recipe, raw
        for i, part in enumerate(path):
            names = list(cls.model_fields)
            if part not in names:
                prefix = ".".join(path[:i]) or "the recipe"
                problems.append(
                    f"override {preview(text)}: {prefix} has no key {preview(part)}; {did_you_mean(part, names)}"
                    f"valid keys: {', '.join(names)}"
                )
                break
            tp = cls.model_fields[part].annotation
            if i == len(path) - 1:
                node[part] = value
            elif is_section(tp):
                if not isinstance(node.get(part), dict):
                    node[part] = {}
                cls, node = unwrap(tp), node[part]
            else:
                problems.append(
                    f"override {preview(text)}: {'.'.join(path[: i + 1])} is a value, not a section"
                )
                break
    return problems


def read_recipe_yaml(path: str | Path) -> dict:
    raw = read_yaml(
        path,
        "recipe",
        "pass a recipe YAML file or a shipped recipe's name (`rocoft-llm recipes` lists them, "
        "`rocoft-llm recipes --copy DIR` writes them out to edit)",
    )
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RecipeError(
            str(path), [f"the top level must be a mapping of sections, got {type(raw).__name__}"]
        )
    return raw


def _error_paths(error: ValidationError) -> tuple[list[list[str]], bool]:
    """The keys that failed, and whether a required key is missing (then no recipe can be built)."""
    errors = error.errors()
    return [error_path(Recipe, err) for err in errors], any(err["type"] == "missing" for err in errors)


def parse_recipe(raw: dict) -> tuple[Recipe | None, list[str]]:
    """(recipe or None, problems). With bad keys the recipe is rebuilt without them (their defaults), so the
    other checks still run; None only when a required key is missing."""
    # an empty section (`rocoft:` or the override rocoft=null) means its defaults
    data = {
        k: v
        for k, v in raw.items()
        if not (v is None and k in Recipe.model_fields and is_section(Recipe.model_fields[k].annotation))
    }
    try:
        return Recipe.model_validate(data), []
    except ValidationError as e:
        problems = describe_errors(Recipe, e, data)
        paths, missing = _error_paths(e)
    if missing:
        return None, problems
    pruned = copy.deepcopy(data)
    for path in paths:
        node = pruned
        for part in path[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and path:
            node.pop(path[-1], None)
    try:
        return Recipe.model_validate(pruned), problems
    except ValidationError:
        return None, problems


def load_recipe_raw(
    path: str | Path, overrides: list[str] | None = None
) -> tuple[Recipe | None, dict, list[str]]:
    """(recipe or None, raw mapping after overrides, problems) without raising: ``validate`` reports."""
    raw = read_recipe_yaml(path)
    problems = apply_overrides(raw, list(overrides or []))
    recipe, type_problems = parse_recipe(raw)
    return recipe, raw, problems + type_problems


def recipe_to_dict(recipe: Recipe) -> dict:
    return recipe.model_dump()


def dump_recipe(recipe: Recipe) -> str:
    return yaml.safe_dump(recipe_to_dict(recipe), sort_keys=False)
