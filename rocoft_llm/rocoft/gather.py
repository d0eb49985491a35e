"""Reading full tensors out of sharded parameters, one tensor at a time.

Under FSDP2 a parameter is a DTensor (``full_tensor()`` all-gathers just that tensor); under
DeepSpeed ZeRO-3 it is partitioned (``ds_shape`` holds the real shape and
``GatheredParameters`` materialises it). Selecting, saving and merging only ever gather the
tensors they need - never the whole model.
"""

from __future__ import annotations

import contextlib
import math

import torch


@contextlib.contextmanager
def full_weight(weight: torch.Tensor):
    """Yield the full weight: a no-op except for DeepSpeed ZeRO-3 partitioned params."""
    if hasattr(weight, "ds_shape"):
        import deepspeed

        with deepspeed.zero.GatheredParameters([weight], modifier_rank=None):
            yield weight
    else:
        yield weight


def weight_shape(weight: torch.Tensor) -> tuple[int, ...]:
    """The real shape of a weight, also when ZeRO-3 has partitioned it (``ds_shape``) or bitsandbytes
    has packed it into 4 bits (``quant_state.shape``)."""
    state = getattr(weight, "quant_state", None)
    if state is not None:
        return tuple(state.shape)
    return tuple(getattr(weight, "ds_shape", weight.shape))


def real_numel(tensor: torch.Tensor) -> int:
    """Elements of the whole tensor (partitioned by ZeRO-3 or packed by bitsandbytes alike)."""
    return math.prod(weight_shape(tensor))


def full_tensor_copy(param: torch.Tensor) -> torch.Tensor:
    """A detached CPU copy of the whole tensor (collective under FSDP2 / ZeRO-3: call on every rank)."""
    if hasattr(param, "full_tensor"):
        return param.detach().full_tensor().cpu().clone()
    with full_weight(param) as p:
        return p.detach().cpu().clone()


def gather_on_main(named: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Full copies of ``named`` for rank 0 (the only writer), gathered one tensor at a time; the other ranks
    take part in each collective and drop the copy at once, so no rank but the writer ever holds a full model
    (method: full checkpoints and final saves). Collective: call on every rank."""
    from ..distributed import is_main

    keep = is_main()
    out = {}
    for name, tensor in named.items():
        full = full_tensor_copy(tensor)
        if keep:
            out[name] = full
    return out
