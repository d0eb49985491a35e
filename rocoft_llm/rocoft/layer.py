"""The RoCoFT linear layer: the design that is both fast and shardable (BENCHMARKS.md has the step
times and memory against the alternatives).

A wrapped linear keeps its ORIGINAL full-shape ``weight`` as a frozen ``nn.Parameter`` (same HF
state-dict key, sharded by FSDP2 / ZeRO-3 like any weight, GEMMs stay aligned) plus ONE small
trainable fp32 parameter ``rocoft_slice``: the selected r rows (r x in) or r columns (out x r).

:class:`RowColumnLinearFunction` writes the slice into the (possibly just all-gathered) weight
under ``no_grad`` and runs ONE ``F.linear``. In backward it writes the slice again (a weight that
FSDP2 / ZeRO-3 re-gathered for backward holds the shard's original values), computes the input
gradient ``grad_y @ W`` and ONLY the slice gradient:

* rows:    ``grad_S = grad_y[..., idx]^T @ x``          (x saved)
* columns: ``grad_S = grad_y^T @ x[..., idx]``          (only ``x[..., idx]`` saved)

so no full-weight gradient is ever formed, and column mode saves no more activations than a
frozen layer does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ROW = "row"
COLUMN = "column"
SLICE_NAME = "rocoft_slice"


def _autocast_dtype(x: torch.Tensor) -> torch.dtype | None:
    device_type = x.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return None


def master_dtype(dtype: torch.dtype) -> torch.dtype:
    """Trainable tensors are fp32 masters (fp64 stays fp64, for exactness tests)."""
    return torch.promote_types(dtype, torch.float32)


def write_slice(weight: torch.Tensor, slice_: torch.Tensor, index: torch.Tensor, mode: str) -> None:
    """Write the trainable slice into ``weight`` at ``index`` (rows: dim 0, columns: dim 1)."""
    with torch.no_grad():
        weight.index_copy_(0 if mode == ROW else 1, index, slice_.to(weight.dtype))


class RowColumnLinearFunction(torch.autograd.Function):
    """y = x @ W'^T + b where W' is ``weight`` with the slice written at ``index``."""

    @staticmethod
    def forward(ctx, x, weight, slice_, index, bias, mode):
        write_slice(weight, slice_, index, mode)
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
        ctx.mode = mode
        ctx.compute_dtype = compute_dtype
        ctx.bias_requires_grad = bias is not None and bias.requires_grad
        ctx.bias_dtype = bias.dtype if bias is not None else None
        ctx.slice_requires_grad = slice_.requires_grad
        ctx.slice_dtype = slice_.dtype
        ctx.x_dtype = x.dtype
        if slice_.requires_grad:
            saved_x = xc if mode == ROW else xc.index_select(-1, index)
        else:
            saved_x = None
        ctx.save_for_backward(saved_x, slice_, index)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        saved_x, slice_, index = ctx.saved_tensors
        weight, mode = ctx.weight, ctx.mode
        grad_x = grad_slice = grad_bias = None
        gy = grad_out.to(ctx.compute_dtype)
        if ctx.needs_input_grad[0]:
            write_slice(weight, slice_, index, mode)
            grad_x = (gy @ weight.to(ctx.compute_dtype)).to(ctx.x_dtype)
        if ctx.slice_requires_grad:
            gy2 = gy.reshape(-1, gy.shape[-1])
            x2 = saved_x.reshape(-1, saved_x.shape[-1])
            if mode == ROW:
                grad_slice = gy2.index_select(1, index).t() @ x2
            else:
                # (x_idx^T @ gy)^T, not gy^T @ x_idx: same numbers, ~3x faster skinny GEMM on CPU
                grad_slice = (x2.t() @ gy2).t()
            grad_slice = grad_slice.to(ctx.slice_dtype)
        if ctx.bias_requires_grad:
            grad_bias = gy.reshape(-1, gy.shape[-1]).sum(0).to(ctx.bias_dtype)
        ctx.weight = None
        return grad_x, None, grad_slice, None, grad_bias, None


class RoCoFTLinear(nn.Module):
    """Drop-in replacement of an ``nn.Linear`` that trains only r rows or r columns.

    Attributes keep the HF names: ``weight`` (frozen, full shape) and ``bias`` (frozen unless
    ``train_bias``; then fp32). ``rocoft_slice`` is the trainable fp32 slice and ``rocoft_index``
    a non-persistent buffer with the selected indices (the adapter file stores them), so the
    model's state dict keeps exactly the HF keys plus one ``.rocoft_slice`` per wrapped module.
    """

    def __init__(self, linear: nn.Linear, index: torch.Tensor, mode: str, train_bias: bool = False):
        super().__init__()
        if mode not in (ROW, COLUMN):
            raise ValueError(f"mode must be 'row' or 'column', got {mode!r}")
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
        index = torch.sort(index.to(device=self.weight.device, dtype=torch.long).reshape(-1)).values
        n = self.out_features if mode == ROW else self.in_features
        if (
            index.numel() == 0
            or index[0] < 0
            or index[-1] >= n
            or torch.unique(index).numel() != index.numel()
        ):
            raise ValueError(f"RoCoFTLinear: indices must be distinct and in [0, {n}), got {index.tolist()}")
        self.register_buffer("rocoft_index", index, persistent=False)
        with torch.no_grad():
            initial = self.weight.index_select(0 if mode == ROW else 1, index)
        self.rocoft_slice = nn.Parameter(
            initial.detach().to(master_dtype(initial.dtype)).clone(), requires_grad=True
        )
        #: float64 sum of |W0[idx]| at wrap time: the adapter stores it to recognise its base model.
        self.base_checksum = float(initial.double().abs().sum())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return RowColumnLinearFunction.apply(
            x, self.weight, self.rocoft_slice, self.rocoft_index, self.bias, self.mode
        )

    def trainable_parameters(self) -> dict[str, nn.Parameter]:
        params = {SLICE_NAME: self.rocoft_slice}
        if self.train_bias:
            params["bias"] = self.bias
        return params

    def merged_linear(self) -> nn.Linear:
        """A plain ``nn.Linear`` sharing this module's weight with the slice written into it."""
        write_slice(self.weight, self.rocoft_slice.detach(), self.rocoft_index, self.mode)
        linear = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None, device="meta")
        linear.weight = nn.Parameter(self.weight.detach(), requires_grad=False)
        if self.bias is not None:
            linear.bias = nn.Parameter(self.bias.detach().to(self.weight.dtype), requires_grad=False)
        return linear

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, mode={self.mode}, "
            f"rank={self.rocoft_index.numel()}, train_bias={self.train_bias}"
        )
