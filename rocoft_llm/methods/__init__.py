"""The finetuning methods, looked up by name: ``get_method(recipe.method)``.

Built in: ``rocoft`` (rows or columns, the default), ``lora`` (peft baseline) and ``full``. A
method is a :class:`Method` subclass; ``register(MyMethod())`` makes ``method: my-name`` valid in
recipes and lets train, resume and eval use it with no other edits.
"""

from __future__ import annotations

from .base import Method
from .registry import all_methods, get_method, method_names, register, unregister
from .runs import peft_export_source

__all__ = [
    "Method",
    "all_methods",
    "get_method",
    "method_names",
    "peft_export_source",
    "register",
    "unregister",
]
