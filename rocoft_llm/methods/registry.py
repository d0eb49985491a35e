"""The registry of finetuning methods by name (built-in ones registered at import)."""

from __future__ import annotations

from ..errors import RoCoFTError
from .base import Method
from .full import FullMethod
from .lora import LoRAMethod
from .rocoft import RoCoFTMethod

_METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add ``method`` to the registry (a name already taken by another method is an error)."""
    known = _METHODS.get(method.name)
    if known is not None and type(known) is not type(method):
        raise RoCoFTError(f"method {method.name!r} is already registered by {type(known).__name__}")
    _METHODS[method.name] = method
    return method


def unregister(name: str) -> None:
    """Remove a method (tests that register a toy method clean up with this)."""
    _METHODS.pop(name, None)


def method_names() -> list[str]:
    return list(_METHODS)


def get_method(name: str) -> Method:
    """The method called ``name``; an unknown name is an error that lists the registered ones."""
    try:
        return _METHODS[name]
    except KeyError:
        raise RoCoFTError(
            f"method {name!r} is not a registered method; use one of {', '.join(_METHODS)}"
        ) from None


def all_methods() -> list[Method]:
    return list(_METHODS.values())


for _m in (RoCoFTMethod(), LoRAMethod(), FullMethod()):
    register(_m)
