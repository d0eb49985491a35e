"""rocoft-llm: parameter-efficient finetuning of LLMs by training only r rows or r columns
of each targeted weight matrix (RoCoFT), sharded with FSDP2 or DeepSpeed ZeRO-3.
"""

import logging

# bitsandbytes (imported by peft whenever it is installed, so also by unquantized runs) asks the
# HuggingFace Hub for an optional CPU kernel at import on AVX512-BF16 CPUs and logs a warning that
# reads like an instruction (`trust_remote_code=True`) when the Hub refuses or is unreachable; it then
# uses its own CPU path, which is what every number here was measured with (docs/quantization.md)
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)

from .rocoft.adapter import load_adapter, save_adapter  # noqa: E402 - after the logger set-up
from .rocoft.apply import RoCoFTConfig, apply_rocoft, merge_rocoft, trainable_parameters  # noqa: E402
from .version import __version__  # noqa: E402

__all__ = [
    "RoCoFTConfig",
    "apply_rocoft",
    "trainable_parameters",
    "merge_rocoft",
    "save_adapter",
    "load_adapter",
    "__version__",
]
