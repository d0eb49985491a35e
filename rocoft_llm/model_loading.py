"""Loading base models and tokenizers from a Hub id or a local directory (never downloading in
tests), with the recipe's dtype, dropout override and random-init option."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from .architectures import find_architecture
from .errors import RoCoFTError

log = logging.getLogger("rocoft_llm")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def torch_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise RoCoFTError(f"dtype {name!r} is not one of {', '.join(DTYPES)}.")
    return DTYPES[name]


def load_model(
    name_or_path: str,
    dtype: str = "bfloat16",
    random_init: bool = False,
    device: str | None = None,
    trust_remote_code: bool = False,
    dropout: float | None = None,
    revision: str | None = None,
    seed: int = 0,
    attn_implementation: str | None = None,
    quantize: str | None = None,
):
    """A causal LM from ``name_or_path``; ``random_init`` builds it from its config.json only;
    ``quantize`` (nf4, fp4, int8) stores its linear weights through bitsandbytes (:func:`quantized_load`)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    if trust_remote_code:
        announce_remote_code(name_or_path)
    try:
        config = AutoConfig.from_pretrained(
            name_or_path, trust_remote_code=trust_remote_code, revision=revision
        )
    except OSError as e:
        raise RoCoFTError(
            f"cannot load the model config of {name_or_path!r} ({e}); pass a local model directory "
            "or make the Hub reachable."
        ) from None
    if attn_implementation:
        config._attn_implementation = attn_implementation
    if dropout is not None:
        arch = find_architecture(config.model_type)
        for attr in arch.dropout_attrs if arch else ():
            setattr(config, attr, dropout)
    if random_init:
        torch.manual_seed(seed)
        # built in the target dtype: a 7B bf16 model takes half the host memory and init time of fp32
        model = AutoModelForCausalLM.from_config(
            config, trust_remote_code=trust_remote_code, dtype=torch_dtype(dtype)
        )
        model.to(torch_dtype(dtype))  # buffers / modules that ignored the dtype argument
        model.config._name_or_path = str(name_or_path)
    else:
        model = AutoModelForCausalLM.from_pretrained(
            name_or_path,
            config=config,
            dtype=torch_dtype(dtype),
            trust_remote_code=trust_remote_code,
            revision=revision,
            **(quantized_load(quantize, dtype, device) if quantize else {}),
        )
    if device and not quantize:  # a quantized model is placed by from_pretrained (device_map)
        model.to(device)
    if quantize:
        from .rocoft.quantized import keep_exact_cpu_path

        keep_exact_cpu_path(model)
    return model


def bitsandbytes_missing(quantize: str) -> str:
    """The one message for ``model.quantize`` without bitsandbytes installed (validate and load)."""
    return f"model.quantize: {quantize} needs bitsandbytes, which is not installed; run pip install 'rocoft-llm[quant]'"


def quantized_load(quantize: str, dtype: str, device: str | None = None) -> dict:
    """``from_pretrained`` arguments that store the linear weights (all but the output head) in
    bitsandbytes' nf4 / fp4 (4-bit, computing in ``dtype``) or LLM.int8 storage, placed on ``device``
    (default: this rank's GPU, else the CPU). ``RoCoFTError`` with the install line when bitsandbytes
    is missing."""
    from transformers import BitsAndBytesConfig

    from .distributed import device_for_rank
    from .rocoft.quantized import DOUBLE_QUANT

    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise RoCoFTError(bitsandbytes_missing(quantize)) from None
    if quantize == "int8":
        config = BitsAndBytesConfig(load_in_8bit=True)
    elif quantize in ("nf4", "fp4"):
        config = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=quantize,
            bnb_4bit_compute_dtype=torch_dtype(dtype),
            bnb_4bit_use_double_quant=DOUBLE_QUANT,
        )
    else:
        raise RoCoFTError(f"model.quantize: {quantize!r} is not one of nf4, fp4, int8 (or null).")
    return {"quantization_config": config, "device_map": {"": str(device or device_for_rank())}}


def remote_code_files(name_or_path: str) -> list[str]:
    """The Python files ``trust_remote_code`` lets transformers import from a local model directory:
    the modules its config.json / tokenizer_config.json ``auto_map`` names, plus any other .py there."""
    path = Path(name_or_path)
    if not path.is_dir():
        return []
    named = set()
    for name in ("config.json", "tokenizer_config.json"):
        try:
            auto_map = json.loads((path / name).read_text()).get("auto_map") or {}
        except (OSError, ValueError, AttributeError):
            continue
        for ref in auto_map.values():
            for item in ref if isinstance(ref, list) else [ref]:
                if isinstance(item, str) and "." in item:
                    named.add(item.split("--")[-1].rsplit(".", 1)[0] + ".py")
    return sorted(named | {p.name for p in path.glob("*.py")})


def announce_remote_code(name_or_path: str) -> None:
    """Say, before it runs, which model code ``trust_remote_code: true`` executes."""
    files = remote_code_files(name_or_path)
    where = Path(name_or_path)
    if files:
        log.warning(
            "model.trust_remote_code: true - running Python code from %s: %s",
            where.resolve(),
            ", ".join(files),
        )
    elif not where.is_dir():
        log.warning(
            "model.trust_remote_code: true - running the Python files of the Hub repository %s", where
        )


def load_tokenizer(name_or_path: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    if trust_remote_code:
        announce_remote_code(name_or_path)

    try:
        return AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        hint = " (it has no tokenizer files)" if Path(name_or_path).is_dir() else ""
        raise RoCoFTError(
            f"cannot load a tokenizer from {name_or_path!r}{hint}: {e}. Pass --tokenizer / "
            "model.tokenizer with a tokenizer directory."
        ) from None
