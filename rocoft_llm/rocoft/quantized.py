"""RoCoFT on a bitsandbytes-quantized frozen weight (``model.quantize``: nf4, fp4, int8).

A packed 4- or 8-bit weight cannot be written into, so the trainable slices act ADDITIVELY on the
output of the frozen quantized linear instead of being copied into the weight (as
:class:`~.layer.RoCoFTLinear` does). With ``W0`` the dequantized weight and ``Wq x`` what the frozen
bitsandbytes linear computes:

* rows:       ``y[..., idx] = x @ S^T``            (the frozen rows' output is replaced)
* columns:    ``y += x[..., idx] @ (S - W0[:, idx])^T``
* row_column: both; the columns' correction on the rows outside ``idx`` only
* entries:    ``y[..., i_k] += x[..., j_k] * (s_k - W0[i_k, j_k])`` for each entry ``k``

then the bias (frozen or trained) is added. The result equals ``x @ W'^T + b`` with ``W'`` the
dequantized weight holding the slices at the placement (:mod:`.placement` declares where each mode's
values live), so training, merging and exporting are exact with respect to the dequantized base.
What is kept per layer besides the packed weight is small: the frozen values at the placement for
columns / row_column / entries (``rocoft_frozen``: ``out x r``, ``(out-r) x r`` or ``k`` values).
The full dequantized weight is only built transiently (when wrapping, and when merging).

Autograd does the backward: the slices' gradients are the same products as in the unquantized layer
(rows ``grad_y[..., idx]^T @ x``, columns ``grad_y^T @ x[..., idx]``), and the input gradient goes
through bitsandbytes' own backward of the frozen linear.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

from .layer import RoCoFTLinear, _autocast_dtype, _master_copy, register_placement
from .placement import COLUMN, COLUMN_SLICE_NAME, ENTRIES, MODES, ROW, ROW_COLUMN

#: bitsandbytes' name of each 4-bit storage type, and the recipe's name for 8-bit LLM.int8 storage
QUANT_TYPES = ("nf4", "fp4", "int8")
#: 4-bit storage quantizes its block scales too (QLoRA's double quantization: ~0.4 bits less per weight)
DOUBLE_QUANT = True


def _bnb():
    return sys.modules.get("bitsandbytes")


def is_quantized_linear(module: nn.Module) -> bool:
    """A bitsandbytes 4-bit or 8-bit linear (only when bitsandbytes has been imported: a model
    without quantization never imports it)."""
    bnb = _bnb()
    return bnb is not None and isinstance(module, (bnb.nn.Linear4bit, bnb.nn.Linear8bitLt))


def quantization(module: nn.Module) -> str | None:
    """The storage of a linear's weight: ``nf4``, ``fp4``, ``int8``, or None (not quantized)."""
    if not is_quantized_linear(module):
        return None
    state = getattr(module.weight, "quant_state", None)
    return state.quant_type if state is not None else "int8"


def dequantized_weight(module: nn.Module) -> torch.Tensor:
    """A new fp32 ``(out, in)`` tensor: the weight a quantized linear multiplies by (its plain weight
    for an ``nn.Linear``)."""
    bnb = _bnb()
    weight = module.weight
    if not is_quantized_linear(module):
        return weight.detach().float()
    if isinstance(module, bnb.nn.Linear4bit):
        if getattr(weight.quant_state, "packing_format_for_cpu", False):
            # repacked for bitsandbytes' CPU inference kernel: back to the standard layout, as
            # bitsandbytes itself does before saving (its inverse re-quantizes double-quantized block
            # constants: close, not bitwise; rocoft-llm's loaders turn the repacking off)
            inverse = bnb.functional._convert_weight_packed_for_cpu_inverse
            weight.data, weight.quant_state = inverse(weight.data, weight.quant_state)
        return bnb.functional.dequantize_4bit(weight.data, weight.quant_state).float()
    state = module.state  # LLM.int8: int8 rows and one scale per row (moved into ``state`` by a forward)
    codes = state.CB if state.CB is not None else weight.data
    scales = state.SCB if state.SCB is not None else weight.SCB
    return bnb.functional.int8_vectorwise_dequant(codes, scales).float()


def keep_exact_cpu_path(model: nn.Module) -> None:
    """Turn off bitsandbytes' CPU inference repacking (on CPUs with AVX512-BF16, a 4-bit linear in eval
    mode under no_grad repacks its weight for a kernel that computes in bf16): evaluation then
    computes what training computed, x @ dequantized(W)^T in the compute dtype."""
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


def weight_dims(module: nn.Module) -> tuple[int, int]:
    """``(out, in)`` of a linear, quantized (packed storage) or not."""
    return module.out_features, module.in_features


class QuantizedRoCoFTLinear(RoCoFTLinear):
    """A :class:`RoCoFTLinear` over a frozen bitsandbytes linear: same slices, indices, trainable
    parameters and adapter, but the slices act additively on the quantized linear's output (module
    docstring). The bitsandbytes linear is kept as ``base_layer`` (its bias moved to this module)."""

    def __init__(
        self,
        linear: nn.Module,
        index: torch.Tensor,
        mode: str,
        train_bias: bool = False,
        column_index: torch.Tensor | None = None,
        dtype: torch.dtype = torch.float32,
    ):
        nn.Module.__init__(self)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if not is_quantized_linear(linear):
            raise ValueError(
                f"QuantizedRoCoFTLinear wraps a bitsandbytes linear, got {type(linear).__name__}"
            )
        self.out_features, self.in_features = weight_dims(linear)
        self.mode = mode
        self.quantization = quantization(linear)
        #: dtype of the merged (dequantized) weight: the model's dtype
        self.merge_dtype = dtype
        for p in linear.parameters():
            p.requires_grad_(False)
        keep_exact_cpu_path(linear)
        bias = linear.bias
        linear.bias = None  # the base computes x @ Wq^T; the bias is added after the slices
        self.base_layer = linear
        if bias is not None and train_bias:
            bias = nn.Parameter(bias.detach().to(torch.float32), requires_grad=True)
        elif bias is not None:
            bias.requires_grad_(False)
        self.bias = bias
        self.train_bias = bool(train_bias and bias is not None)
        device = bias.device if bias is not None else linear.weight.device
        placement = register_placement(self, mode, index, column_index, device)
        initial = placement.read(dequantized_weight(linear))  # the full copy dies with this line
        self.rocoft_slice = nn.Parameter(_master_copy(initial[0]), requires_grad=True)
        if mode == ROW_COLUMN:
            self.rocoft_column_slice = nn.Parameter(_master_copy(initial[1]), requires_grad=True)
        # the frozen values the additive correction subtracts (rows replace their output: nothing kept)
        frozen = None if mode == ROW else _master_copy(initial[-1])
        self.register_buffer("rocoft_frozen", frozen, persistent=False)
        self.base_checksum = float(sum(t.double().abs().sum() for t in initial))

    @property
    def weight(self) -> torch.Tensor:
        """The packed frozen weight (``base_layer.weight``)."""
        return self.base_layer.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base_layer(x)
        # the slices' products run in the compute dtype (autocast's, else the output's), as the
        # unquantized layer's; their fp32 masters receive fp32 gradients through the casts
        dt = _autocast_dtype(x) or y.dtype
        x = x.to(dt)
        p, s = self.placement, self.rocoft_slice
        if self.mode == COLUMN:
            y = y + (x.index_select(-1, p.index) @ (s - self.rocoft_frozen).to(dt).t()).to(y.dtype)
        elif self.mode == ENTRIES:
            rows, cols = p.index // self.in_features, p.index % self.in_features
            contrib = x.index_select(-1, cols) * (s - self.rocoft_frozen).to(dt)
            y = y.index_add(-1, rows, contrib.to(y.dtype))
        else:  # row, row_column
            if self.mode == ROW_COLUMN:
                c = getattr(self, COLUMN_SLICE_NAME)
                delta = x.index_select(-1, p.column_index) @ (c - self.rocoft_frozen).to(dt).t()
                y = y.index_add(-1, p.rest, delta.to(y.dtype))
            y = y.index_copy(-1, p.index, (x @ s.to(dt).t()).to(y.dtype))
        if self.bias is not None:
            y = y + self.bias.to(y.dtype)
        return y

    def dequantized_weight(self) -> torch.Tensor:
        """The trained weight in fp32: the dequantized base with the slices written in (a new tensor)."""
        w = dequantized_weight(self.base_layer)
        self.placement.write(w, tuple(t.detach() for t in self.slices()))
        return w

    def merged_linear(self) -> nn.Linear:
        """A plain ``nn.Linear`` in the model's dtype holding the dequantized weight with the slices
        written in: merging a quantized base gives a full-precision layer."""
        w = self.dequantized_weight().to(self.merge_dtype)
        linear = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None, device="meta")
        linear.weight = nn.Parameter(w, requires_grad=False)
        if self.bias is not None:
            linear.bias = nn.Parameter(self.bias.detach().to(self.merge_dtype), requires_grad=False)
        return linear

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, quantization={self.quantization}"


def model_quantization(model: nn.Module) -> dict | None:
    """What the adapter records about a quantized base: ``{"type": nf4|fp4|int8, "modules": [...]}``,
    every linear stored by bitsandbytes (wrapped or not), by its name in the unwrapped model; None for
    a model without quantized linears."""
    found = {}
    for name, module in model.named_modules():
        q = quantization(module)
        if q is not None:
            found[name.removesuffix(".base_layer")] = q
    if not found:
        return None
    kinds = sorted(set(found.values()))
    dtype = str(getattr(model, "dtype", torch.float32)).removeprefix("torch.")
    return {"type": kinds[0] if len(kinds) == 1 else kinds, "dtype": dtype, "modules": sorted(found)}


def quantize_roundtrip(weight: torch.Tensor, quant: str, dtype: str) -> torch.Tensor:
    """``weight`` (out, in) as a model loaded with ``model.quantize: quant`` and ``model.dtype: dtype``
    multiplies by it: cast to ``dtype``, quantized by bitsandbytes on the CPU as transformers does at
    load, and dequantized (fp32). Merge and export-peft read a quantized run's base through this."""
    import bitsandbytes as bnb

    w = weight.detach().to("cpu", getattr(torch, dtype)).contiguous()
    if quant == "int8":  # Int8Params: fp16 rows, one absmax scale per row
        codes, scales, _ = bnb.functional.int8_vectorwise_quant(w.to(torch.float16))
        return bnb.functional.int8_vectorwise_dequant(codes, scales).float()
    packed, state = bnb.functional.quantize_4bit(
        w, blocksize=64, compress_statistics=DOUBLE_QUANT, quant_type=quant
    )
    return bnb.functional.dequantize_4bit(packed, state).float()


def quantization_mismatch(model: nn.Module, recorded: dict | None) -> str | None:
    """Why ``model``'s storage differs from the one an adapter was trained on (None: it does not)."""
    have = model_quantization(model)
    want_type = recorded["type"] if recorded else None
    have_type = have["type"] if have else None
    if want_type == have_type:
        return None
    if want_type is None:
        return (
            f"the adapter was trained on a full-precision base but this base is quantized ({have_type}); "
            "load the base without quantization"
        )
    return (
        f"the adapter was trained on an {want_type}-quantized base (model.quantize: {want_type}) but this "
        f"base is {'quantized ' + str(have_type) if have_type else 'full precision'}; load the base with "
        f"quantize {want_type} (eval --run and the held-out NLL do so from the run's recipe; "
        "merge and export-peft quantize the base checkpoint themselves)"
    )


#: written beside a peft LoRA trained for a quantized base (a LoRA run's adapter, or export-peft of a
#: quantized RoCoFT adapter): peft's own config has no place for it; ``eval`` reads it
QUANTIZATION_FILE = "rocoft_quantization.json"


def write_quantization_record(folder, quantize: str) -> None:
    from ..io_utils import atomic_write_json

    atomic_write_json(Path(folder) / QUANTIZATION_FILE, {"type": quantize})


def recorded_quantization(folder) -> str | None:
    """The ``model.quantize`` a peft LoRA directory belongs to (its :data:`QUANTIZATION_FILE`), or None."""
    from ..io_utils import read_json

    path = Path(folder) / QUANTIZATION_FILE
    if not path.is_file():
        return None
    return read_json(path, "quantization record", "export or train the LoRA again").get("type")
