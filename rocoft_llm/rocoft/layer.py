"""The RoCoFT linear layer: the design that is both fast and shardable (BENCHMARKS.md has the step
times and memory against the alternatives).

A wrapped linear keeps its ORIGINAL full-shape ``weight`` as a frozen ``nn.Parameter`` (same HF
state-dict key, sharded by FSDP2 / ZeRO-3 like any weight, GEMMs stay aligned) plus small trainable
fp32 parameters: ``rocoft_slice`` (the selected r rows ``r x in``, r columns ``out x r``, or the
selected entries) and, in ``row_column`` mode, ``rocoft_column_slice`` (the r columns outside the
selected rows). :mod:`.placement` says where each lives in the weight.

:class:`RowColumnLinearFunction` writes the slices into the (possibly just all-gathered) weight
under ``no_grad`` and runs ONE ``F.linear``. In backward it writes them again (a weight that
FSDP2 / ZeRO-3 re-gathered for backward holds the shard's original values), computes the input
gradient ``grad_y @ W`` and ONLY the slices' gradients:

* rows:    ``grad_S = grad_y[..., idx]^T @ x``          (x saved)
* columns: ``grad_S = grad_y^T @ x[..., idx]``          (only ``x[..., idx]`` saved)
* row_column: both, the columns' restricted to the rows outside ``idx``  (x saved)
* entries: the full ``grad_y^T @ x`` read at the entries  (x saved; full-weight cost, by design)

so no full-weight gradient is formed for the low-rank modes, and column mode saves no more
activations than a frozen layer does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .placement import (
    COLUMN,
    COLUMN_SLICE_NAME,
    ENTRIES,
    MODES,
    ROW,
    ROW_COLUMN,
    SLICE_NAME,
    Placement,
    make_placement,
)

__all__ = ["COLUMN", "ENTRIES", "ROW", "ROW_COLUMN", "SLICE_NAME", "RoCoFTLinear", "master_dtype"]


def _autocast_dtype(x: torch.Tensor) -> torch.dtype | None:
    device_type = x.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return None


def master_dtype(dtype: torch.dtype) -> torch.dtype:
    """Trainable tensors are fp32 masters (fp64 stays fp64, for exactness tests)."""
    return torch.promote_types(dtype, torch.float32)


class RowColumnLinearFunction(torch.autograd.Function):
    """y = x @ W'^T + b where W' is ``weight`` with the slices written at ``placement``."""

    @staticmethod
    def forward(ctx, x, weight, bias, placement: Placement, *slices):
        placement.write(weight, slices)
        compute_dtype = _autocast_dtype(x) or weight.dtype
        with torch.autocast(x.device.type, enabled=False):
            xc = x.to(compute_dtype)
            w = weight.to(compute_dtype)
            b = bias.to(compute_dtype) if bias is not None else None
            out = F.linear(xc, w, b)
        # ``weight`` is NOT saved through save_for_backward: FSDP2/ZeRO-3 free and re-gather its
        # storage between forward and backward, which would trip autograd's version check. We keep
        # the parameter object itself and read its (re-gathered) data in backward.
        ctx.weight = weight
        ctx.placement = placement
        ctx.compute_dtype = compute_dtype
        ctx.bias_requires_grad = bias is not None and bias.requires_grad
        ctx.bias_dtype = bias.dtype if bias is not None else None
        ctx.slices_require_grad = any(s.requires_grad for s in slices)
        ctx.slice_dtypes = [s.dtype for s in slices]
        ctx.x_dtype = x.dtype
        saved_x = placement.saved_input(xc) if ctx.slices_require_grad else None
        ctx.save_for_backward(saved_x, *slices)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        saved_x, *slices = ctx.saved_tensors
        weight, placement = ctx.weight, ctx.placement
        grad_x = grad_bias = None
        grad_slices = [None] * len(slices)
        gy = grad_out.to(ctx.compute_dtype)
        if ctx.needs_input_grad[0]:
            placement.write(weight, tuple(slices))
            grad_x = (gy @ weight.to(ctx.compute_dtype)).to(ctx.x_dtype)
        if ctx.slices_require_grad:
            gy2 = gy.reshape(-1, gy.shape[-1])
            x2 = saved_x.reshape(-1, saved_x.shape[-1])
            grads = placement.gradients(gy2, x2)
            grad_slices = [g.to(dt) for g, dt in zip(grads, ctx.slice_dtypes)]
        if ctx.bias_requires_grad:
            grad_bias = gy.reshape(-1, gy.shape[-1]).sum(0).to(ctx.bias_dtype)
        ctx.weight = ctx.placement = None
        return grad_x, None, grad_bias, None, *grad_slices


def register_placement(module: nn.Module, mode: str, index, column_index, device):
    """The placement of ``module``'s slices (``module.out_features`` x ``in_features``), its index
    tensors registered as non-persistent buffers (``rocoft_index``, ``rocoft_column_index``,
    ``rocoft_rest``) so they follow the module across devices; one construction for the plain and
    the quantized layer. A bad index raises ValueError naming the layer class."""
    try:
        placement = make_placement(
            mode,
            torch.as_tensor(index).to(device),
            (module.out_features, module.in_features),
            None if column_index is None else torch.as_tensor(column_index).to(device),
        )
    except ValueError as e:
        raise ValueError(f"{type(module).__name__}: {e}") from None
    module.register_buffer("rocoft_index", placement.index, persistent=False)
    module.register_buffer("rocoft_column_index", placement.column_index, persistent=False)
    module.register_buffer("rocoft_rest", placement.rest, persistent=False)
    return placement


class RoCoFTLinear(nn.Module):
    """Drop-in replacement of an ``nn.Linear`` that trains only its selected rows, columns, both, or
    entries (``mode``).

    Attributes keep the HF names: ``weight`` (frozen, full shape) and ``bias`` (frozen unless
    ``train_bias``; then fp32). ``rocoft_slice`` (and ``rocoft_column_slice`` in row_column mode)
    are the trainable fp32 values; ``rocoft_index`` (and ``rocoft_column_index``) non-persistent
    buffers with the selected indices (the adapter file stores them), so the model's state dict keeps
    exactly the HF keys plus the slices.
    """

    def __init__(
        self,
        linear: nn.Linear,
        index: torch.Tensor,
        mode: str,
        train_bias: bool = False,
        column_index: torch.Tensor | None = None,
    ):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        self.mode = mode
        self.weight = linear.weight
        self.weight.requires_grad_(False)
        self.bias = linear.bias
        if self.bias is not None:
            if train_bias:
                self.bias = nn.Parameter(
                    self.bias.detach().to(master_dtype(self.bias.dtype)), requires_grad=True
                )
            else:
                self.bias.requires_grad_(False)
        self.train_bias = bool(train_bias and self.bias is not None)
        placement = register_placement(self, mode, index, column_index, self.weight.device)
        with torch.no_grad():
            initial = placement.read(self.weight)
        self.rocoft_slice = nn.Parameter(_master_copy(initial[0]), requires_grad=True)
        if mode == ROW_COLUMN:
            self.rocoft_column_slice = nn.Parameter(_master_copy(initial[1]), requires_grad=True)
        #: float64 sum of |W0| at the placement at wrap time: the adapter stores it to recognise its base.
        self.base_checksum = float(sum(t.double().abs().sum() for t in initial))

    @property
    def placement(self) -> Placement:
        """The current indices (read from the buffers, so they follow ``.to(device)``)."""
        return Placement(self.mode, self.rocoft_index, self.rocoft_column_index, self.rocoft_rest)

    def slices(self) -> tuple[nn.Parameter, ...]:
        if self.mode == ROW_COLUMN:
            return self.rocoft_slice, self.rocoft_column_slice
        return (self.rocoft_slice,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return RowColumnLinearFunction.apply(x, self.weight, self.bias, self.placement, *self.slices())

    def trainable_parameters(self) -> dict[str, nn.Parameter]:
        params = {SLICE_NAME: self.rocoft_slice}
        if self.mode == ROW_COLUMN:
            params[COLUMN_SLICE_NAME] = self.rocoft_column_slice
        if self.train_bias:
            params["bias"] = self.bias
        return params

    def merged_linear(self) -> nn.Linear:
        """A plain ``nn.Linear`` sharing this module's weight with the slices written into it."""
        self.placement.write(self.weight, tuple(s.detach() for s in self.slices()))
        linear = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None, device="meta")
        linear.weight = nn.Parameter(self.weight.detach(), requires_grad=False)
        if self.bias is not None:
            linear.bias = nn.Parameter(self.bias.detach().to(self.weight.dtype), requires_grad=False)
        return linear

    def extra_repr(self) -> str:
        count = (
            f"entries={self.rocoft_index.numel()}"
            if self.mode == ENTRIES
            else (
                f"rank={self.rocoft_index.numel()}"
                + (f"+{self.rocoft_column_index.numel()}" if self.mode == ROW_COLUMN else "")
            )
        )
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, mode={self.mode}, "
            f"{count}, train_bias={self.train_bias}"
        )


def _master_copy(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to(master_dtype(t.dtype)).clone()
