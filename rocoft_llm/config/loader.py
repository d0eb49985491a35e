"""Strict recipe loading: YAML -> dotted overrides -> typed :class:`Recipe`.

Every problem of a file (unknown key with a "did you mean", wrong type, value outside its
choices, missing required key) is collected and raised together as one :class:`RecipeError`.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from ..errors import RecipeError
from .schema import REQUIRED, Recipe

PRIMITIVE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
PLURALS = {int: "integers", float: "numbers", str: "strings", bool: "booleans"}


def did_you_mean(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}? " if close else ""


def _describe(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return " or ".join(_describe(a) for a in args) + " (or null)"
    if origin is list:
        inner = typing.get_args(tp)[0]
        return f"a list of {PLURALS.get(inner, _describe(inner))}"
    return PRIMITIVE_NAMES.get(tp, getattr(tp, "__name__", str(tp)))


_INVALID = object()


def _coerce(value: Any, tp) -> Any:
    """``value`` as type ``tp``, or _INVALID. Lenient only where YAML is surprising (``1e-3``)."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return value if value in typing.get_args(tp) else _INVALID
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(tp):
            return None
        for arg in typing.get_args(tp):
            if arg is not type(None):
                out = _coerce(value, arg)
                if out is not _INVALID:
                    return out
        return _INVALID
    if origin is list:
        if not isinstance(value, list):
            return _INVALID
        inner = typing.get_args(tp)[0]
        items = [_coerce(v, inner) for v in value]
        return _INVALID if any(i is _INVALID for i in items) else items
    if tp is bool:
        return value if isinstance(value, bool) else _INVALID
    if tp is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else _INVALID
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # PyYAML reads 1e-3 as a string
            try:
                return float(value)
            except ValueError:
                return _INVALID
        return _INVALID
    if tp is str:
        return value if isinstance(value, str) else _INVALID
    raise TypeError(f"unsupported recipe type {tp}")


def parse_section(cls, raw: Any, prefix: str, problems: list[str]):
    """Build dataclass ``cls`` from mapping ``raw``, appending every problem to ``problems``."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    where = prefix or "the recipe"
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        problems.append(f"{where}: expected a mapping of keys, got {type(raw).__name__} {raw!r}")
        raw = {}
    for key in raw:
        if key not in fields:
            problems.append(f"{prefix + '.' if prefix else ''}{key}: unknown key; {did_you_mean(str(key), list(fields))}"
                            f"valid keys{' of ' + prefix if prefix else ''}: {', '.join(fields)}")
    kwargs, incomplete = {}, False
    for name, f in fields.items():
        key = f"{prefix}.{name}" if prefix else name
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            if name not in raw and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                problems.append(f"{key}: required section is missing; add `{name}:` with its keys")
            kwargs[name] = parse_section(tp, raw.get(name), key, problems)
            incomplete = incomplete or kwargs[name] is None
            continue
        if name not in raw:
            if f.default is REQUIRED:
                problems.append(f"{key}: required key is missing; set it to {_describe(tp)}")
                incomplete = True
            continue
        value = _coerce(raw[name], tp)
        if value is _INVALID:
            hint = ""
            if typing.get_origin(tp) is Literal and isinstance(raw[name], str):
                hint = "; " + did_you_mean(raw[name], [str(a) for a in typing.get_args(tp)]).strip()
            problems.append(f"{key}: {raw[name]!r} is not {_describe(tp)}{hint.rstrip('; ')}")
        else:
            kwargs[name] = value
    # With a required key missing the section cannot be built: the problem is recorded already.
    return None if incomplete else cls(**kwargs)


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise RecipeError("command line", [f"override {text!r} is not KEY=VALUE (e.g. train.lr=1e-4)"])
    key, _, value = text.partition("=")
    return key.strip().split("."), yaml.safe_load(value) if value.strip() else ""


def apply_overrides(raw: dict, overrides: list[str]) -> list[str]:
    """Apply ``a.b=value`` overrides to the raw mapping; returns problems (unknown paths)."""
    problems = []
    for text in overrides:
        path, value = parse_override(text)
        cls, node = Recipe, raw
        for i, part in enumerate(path):
            names = [f.name for f in dataclasses.fields(cls)]
            if part not in names:
                prefix = ".".join(path[:i]) or "the recipe"
                problems.append(f"override {text!r}: {prefix} has no key {part!r}; {did_you_mean(part, names)}"
                                f"valid keys: {', '.join(names)}")
                break
            tp = typing.get_type_hints(cls)[part]
            if i == len(path) - 1:
                node[part] = value
            elif dataclasses.is_dataclass(tp):
                if not isinstance(node.get(part), dict):
                    node[part] = {}
                cls, node = tp, node[part]
            else:
                problems.append(f"override {text!r}: {'.'.join(path[:i + 1])} is a value, not a section")
                break
    return problems


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise RecipeError(str(path), ["file not found; pass the path of a recipe YAML (see recipes/)"]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise RecipeError(str(path), [f"invalid YAML: {e}"]) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RecipeError(str(path), [f"the top level must be a mapping of sections, got {type(raw).__name__}"])
    return raw


def load_recipe_raw(path: str | Path, overrides: list[str] | None = None) -> tuple[Recipe | None, dict, list[str]]:
    """(recipe or None, raw mapping after overrides, problems) without raising: ``validate`` reports."""
    raw = read_yaml(path)
    problems = apply_overrides(raw, list(overrides or []))
    recipe = parse_section(Recipe, raw, "", problems)
    return recipe, raw, problems


def recipe_to_dict(recipe: Recipe) -> dict:
    return dataclasses.asdict(recipe)


def dump_recipe(recipe: Recipe) -> str:
    return yaml.safe_dump(recipe_to_dict(recipe), sort_keys=False)
