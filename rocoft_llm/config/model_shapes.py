"""Shapes of a model's linears without loading weights: from a local config.json, the HF cache,
or the built-in table of the paper's models (known_models.json), instantiated on the meta device."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..architectures import fused_layout
from ..shipped import read_shipped_text


@dataclass(frozen=True)
class LinearShape:
    out_features: int
    in_features: int
    #: number of logical parts of a fused projection's rows (BLOOM qkv: 3), else 1.
    row_parts: int = 1


def known_models() -> dict[str, dict]:
    data = json.loads(read_shipped_text("config", "known_models.json"))
    return {k: v for k, v in data.items() if not k.startswith("_")}


def _known_config(name: str):
    from transformers import AutoConfig

    for key, fields in known_models().items():
        if key.lower() == name.lower():
            fields = dict(fields)
            model_type = fields.pop("model_type")
            return AutoConfig.for_model(model_type, **fields)
    return None


def resolve_config(name_or_path: str, trust_remote_code: bool = False):
    """(config, where it came from) or (None, reason) when it cannot be reached offline."""
    from transformers import AutoConfig

    path = Path(name_or_path)
    if path.is_dir():
        if not (path / "config.json").is_file():
            return None, f"{path} is a directory without config.json"
        return AutoConfig.from_pretrained(
            str(path), trust_remote_code=trust_remote_code
        ), f"{path}/config.json"
    cfg = _known_config(name_or_path)
    if cfg is not None:
        return cfg, "rocoft-llm's table of known models"
    try:
        return AutoConfig.from_pretrained(
            name_or_path, local_files_only=True, trust_remote_code=trust_remote_code
        ), "the local HF cache"
    except Exception:  # noqa: BLE001 - any failure means "not reachable offline"
        return None, f"{name_or_path!r} is neither a local directory, a known model, nor in the HF cache"


@lru_cache(maxsize=16)
def _linear_shapes_cached(config_json: str, model_type: str) -> dict[str, LinearShape]:
    import torch
    from torch import nn
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model(model_type, **json.loads(config_json))
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    shapes: dict[str, LinearShape] = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            leaf = name.rsplit(".", 1)[-1]
            layout = fused_layout(model_type, leaf)
            shapes.setdefault(
                leaf, LinearShape(module.out_features, module.in_features, len(layout.parts) if layout else 1)
            )
    return shapes


def _config_key(config) -> tuple[str, str]:
    d = config.to_dict()
    for k in ("model_type", "transformers_version", "architectures", "_name_or_path"):
        d.pop(k, None)
    return json.dumps(d, sort_keys=True, default=str), config.model_type


def linear_shapes(config) -> dict[str, LinearShape]:
    """Leaf name -> shape of every nn.Linear of the model ``config`` describes (first occurrence)."""
    return _linear_shapes_cached(*_config_key(config))


@dataclass(frozen=True)
class ParameterShape:
    """One parameter of the model (tied parameters once): its name, shape, and the leaf name of the
    nn.Linear it belongs to (None for embeddings, norms and the like)."""

    name: str
    shape: tuple[int, ...]
    linear: str | None
    #: the parameter is the output head's weight (bitsandbytes leaves it unquantized)
    output_head: bool = False


@lru_cache(maxsize=16)
def _parameter_shapes_cached(config_json: str, model_type: str) -> tuple[ParameterShape, ...]:
    import torch
    from torch import nn
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model(model_type, **json.loads(config_json))
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    head = model.get_output_embeddings()
    owner = {id(p): m for m in model.modules() for p in m.parameters(recurse=False)}
    out = []
    for name, p in model.named_parameters():  # tied parameters are listed once
        module = owner[id(p)]
        leaf = name.rsplit(".", 2)[-2] if isinstance(module, nn.Linear) and "." in name else None
        out.append(ParameterShape(name, tuple(p.shape), leaf, module is head))
    return tuple(out)


def parameter_shapes(config) -> tuple[ParameterShape, ...]:
    """Every parameter of the model ``config`` describes, built on the meta device (no weights)."""
    return _parameter_shapes_cached(*_config_key(config))
