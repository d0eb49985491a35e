"""Command-line options derived from settings classes, so a flag's name, type, choices, default and help
come from the one declaration of the field (:mod:`rocoft_llm.strict_settings`) instead of a hand-typed copy.

A field may set ``json_schema_extra={"cli": ["--flag", "--alias"], "multiple": True}`` for flag names
that differ from ``--field-name``; required fields become optional flags (another option, such as
``--recipe``, may supply them) and the command checks them.
"""

from __future__ import annotations

import types
import typing
from typing import Literal

import click
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from ..strict_settings import unwrap


def _bounds(info) -> dict:
    out = {}
    for meta in info.metadata:
        for attr, key in (("ge", "min"), ("le", "max"), ("gt", "min"), ("lt", "max")):
            if getattr(meta, attr, None) is not None:
                out[key] = getattr(meta, attr)
                if attr in ("gt", "lt"):
                    out[f"{key}_open"] = True
    return out


def click_option(name: str, info) -> typing.Callable:
    """One click option for field ``name`` of a settings class."""
    extra = info.json_schema_extra or {}
    flags = list(extra.get("cli") or [f"--{name.replace('_', '-')}"])
    tp = unwrap(info.annotation)
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and len(args) == 1:
        tp = unwrap(args[0])
    default = None if info.default is PydanticUndefined else info.default
    kwargs = {
        "help": " ".join((info.description or "").split()),
        "default": default,
        "show_default": default not in (None, [], ""),
    }
    if tp is bool:
        flags = [f"{flags[0]}/--no-{flags[0][2:]}"]
    elif typing.get_origin(tp) is Literal:
        kwargs["type"] = click.Choice([str(a) for a in typing.get_args(tp)])
    elif tp is int:
        kwargs["type"] = click.IntRange(**_bounds(info)) if _bounds(info) else int
    elif tp is float:
        kwargs["type"] = click.FloatRange(**_bounds(info)) if _bounds(info) else float
    elif typing.get_origin(tp) is list or extra.get("multiple"):
        kwargs.update(multiple=True, default=None, show_default=False)
    return click.option(*flags, name, **kwargs)


def options_from(model: type[BaseModel], names: list[str] | None = None):
    """A decorator adding a click option for each field of ``model`` (all, or ``names`` in that order)."""

    def decorate(fn):
        for name in reversed(names or list(model.model_fields)):
            fn = click_option(name, model.model_fields[name])(fn)
        return fn

    return decorate


def prompt_and_dtype_options(fn):
    """``--template``, ``--chat-template`` and ``--dtype``: how a loaded model is prompted and held, the
    same for ``eval`` and ``generate``."""
    fn = click.option(
        "--dtype",
        type=click.Choice(["float32", "bfloat16", "float16"]),
        default=None,
        help="Default: bfloat16 on GPU, float32 on CPU.",
    )(fn)
    fn = click.option(
        "--chat-template",
        type=click.Path(exists=True, dir_okay=False),
        help="With --template chat: a Jinja chat template file instead of the tokenizer's own (default: "
        "the run's data.chat_template).",
    )(fn)
    return click.option(
        "--template",
        default=None,
        help="Prompt template: llm_adapters, alpaca_clean, chat (the tokenizer's chat template) or a "
        "string with {instruction} and {output} (default: the run's data.template, else llm_adapters). "
        "'{instruction}{output}' sends the text as it is.",
    )(fn)


def model_dtype(dtype: str | None, device) -> str:
    """``--dtype``, or its declared default: bfloat16 on GPU, float32 on CPU."""
    return dtype or ("bfloat16" if device.type == "cuda" else "float32")


class RecipeFile(click.ParamType):
    """A recipe argument: a YAML file, or a shipped recipe by name (``llama2-13b-math``) when no such file
    exists; anything else is refused with the way to list and copy the shipped recipes."""

    name = "recipe"

    def convert(self, value, param, ctx):
        from ..errors import RoCoFTError
        from ..shipped import resolve_recipe

        try:
            return resolve_recipe(value)
        except RoCoFTError as e:
            self.fail(str(e), param, ctx)
