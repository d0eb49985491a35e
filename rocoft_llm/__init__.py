"""rocoft-llm: parameter-efficient finetuning of LLMs by training only r rows or r columns
of each targeted weight matrix (RoCoFT), sharded with FSDP2 or DeepSpeed ZeRO-3.
"""

from .rocoft.adapter import load_adapter, save_adapter
from .rocoft.apply import RoCoFTConfig, apply_rocoft, merge_rocoft, trainable_parameters
from .version import __version__

__all__ = [
    "RoCoFTConfig",
    "apply_rocoft",
    "trainable_parameters",
    "merge_rocoft",
    "save_adapter",
    "load_adapter",
    "__version__",
]
