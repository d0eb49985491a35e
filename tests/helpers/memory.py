"""Bytes held by tensors, measured on CPU without torch.cuda: a dispatch mode that remembers every
storage an operator creates and sums those still alive (the activations a graph keeps, the peak of
a training step), and the bytes of a model's parameters, buffers and quantization states."""

from __future__ import annotations

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class LiveStorages(TorchDispatchMode):
    """Inside ``with LiveStorages() as live:``, every NEW storage an aten operator returns (not a view
    or an in-place result, which share an input's storage) is recorded (weakly); :meth:`live_bytes` sums the recorded storages still alive, each counted once however
    many tensors view it. ``track_peak`` also keeps the maximum of that sum after every operator
    (the CPU analogue of ``torch.cuda.max_memory_allocated`` for memory created inside the block)."""

    def __init__(self, track_peak: bool = False):
        super().__init__()
        self.track_peak = track_peak
        self.peak = 0
        self._refs: dict[int, tuple[StorageWeakRef, int, str]] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {
            StorageWeakRef(t.untyped_storage()).cdata
            for t in tree_flatten((args, kwargs))[0]
            if isinstance(t, torch.Tensor) and t.device.type != "meta"
        }
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                storage = t.untyped_storage()
                ref = StorageWeakRef(storage)
                # a view or an in-place result shares an input's storage: not new memory
                if ref.cdata not in self._refs and ref.cdata not in inputs:
                    self._refs[ref.cdata] = (ref, storage.nbytes(), str(func))
        if self.track_peak:
            self.peak = max(self.peak, self.live_bytes())
        return out

    def live_bytes(self) -> int:
        for key in [k for k, (ref, _, _) in self._refs.items() if ref.expired()]:
            del self._refs[key]
        return sum(n for _, n, _ in self._refs.values())

    def live(self) -> list[tuple[int, str]]:
        """(bytes, creating operator) of every live recorded storage (to read a mismatch)."""
        self.live_bytes()
        return [(n, op) for _, n, op in self._refs.values()]


def training_forward(model, ids: torch.Tensor):
    """The training loop's forward and loss on ``ids`` (every next token a target): the logits only
    at the targets (``logits_to_keep``), the summed token loss. Returns the loss."""
    from rocoft_llm.train.backends import model_inputs
    from rocoft_llm.train.model_setup import target_mask, token_loss_sum

    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}
    batch["logits_to_keep"] = target_mask(ids)
    return token_loss_sum(model(**model_inputs(batch)).logits, ids, batch["logits_to_keep"])


def kept_by_forward(model, ids: torch.Tensor) -> tuple[int, torch.Tensor, list]:
    """(bytes created by the forward and still alive after it - what autograd keeps for the
    backward, plus the scalar loss -, the loss, the live storages), measured on a second step.

    A first forward and backward runs before, outside the count: state a kernel may create once and
    keep on the module or in a cache (bitsandbytes repacks 4-bit weights for its CPU kernel on CPUs
    with AVX512-BF16) is the model's, not activations: the count is the steady state of training."""
    training_forward(model, ids).backward()
    model.zero_grad(set_to_none=True)
    with LiveStorages() as live:
        loss = training_forward(model, ids)
        kept = live.live_bytes()
    return kept, loss, live.live()


def quant_state_tensors(module) -> list[torch.Tensor]:
    """The tensors of the bitsandbytes quantisation state of ``module``'s 4-bit weights (absmax,
    code book, nested absmax and code, offset) and LLM.int8 scales: storage the weight needs that
    is not a parameter."""
    found = []
    for m in module.modules():
        weight = getattr(m, "weight", None)
        state = getattr(weight, "quant_state", None)
        while state is not None:
            found += [t for t in (state.absmax, state.code, getattr(state, "offset", None)) if t is not None]
            state = getattr(state, "state2", None)
        scales = getattr(weight, "SCB", None)
        if scales is not None:
            found.append(scales)
    return found


def storage_bytes(tensors) -> int:
    """Bytes of the distinct storages behind ``tensors``."""
    seen = {}
    for t in tensors:
        s = t.untyped_storage()
        seen[StorageWeakRef(s).cdata] = s.nbytes()
    return sum(seen.values())
