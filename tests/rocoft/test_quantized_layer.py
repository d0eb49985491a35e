"""The RoCoFT layer over a bitsandbytes-quantized frozen weight (nf4, fp4, int8) against the
unquantized layer on the DEQUANTIZED fp32 weight: the same forward, input gradient and slice
gradients in every mode, at init and after the slices moved; merging gives the dequantized weight
with the slices written in; no full-size fp32 weight is kept by the module."""

import pytest
import torch
from torch import nn

bnb = pytest.importorskip("bitsandbytes")

from rocoft_llm.rocoft.layer import RoCoFTLinear  # noqa: E402
from rocoft_llm.rocoft.quantized import (  # noqa: E402
    QUANT_TYPES,
    QuantizedRoCoFTLinear,
    dequantized_weight,
    quantization,
)

OUT, IN = 48, 64
#: fp32 GEMMs of different shapes (the quantized base's full product plus a slice correction against
#: one product with the written weight) agree to a few ulps of the output's magnitude
TOL = dict(rtol=1e-5, atol=1e-5)
MODES = {
    "row": dict(index=[5, 0, 31]),
    "column": dict(index=[63, 2, 17]),
    "row_column": dict(index=[4, 40], column_index=[1, 33, 60]),
    "entries": dict(index=[0, 7, 100, 64 * 47 + 63, 1500]),
}


def quantized_linear(quant: str, bias: bool, seed: int = 0) -> nn.Module:
    """A CPU bitsandbytes linear made from a random fp32 ``nn.Linear``."""
    torch.manual_seed(seed)
    lin = nn.Linear(IN, OUT, bias=bias)
    if quant == "int8":
        q = bnb.nn.Linear8bitLt(IN, OUT, bias=bias, has_fp16_weights=False, threshold=0.0)
    else:
        q = bnb.nn.Linear4bit(IN, OUT, bias=bias, compute_dtype=torch.float32, quant_type=quant)
    q.load_state_dict(lin.state_dict())
    return q.to("cpu")


def pair(quant, mode, bias, train_bias):
    """(quantized RoCoFT layer, unquantized RoCoFT layer on the dequantized fp32 weight)."""
    q = quantized_linear(quant, bias)
    ref_lin = nn.Linear(IN, OUT, bias=bias)
    with torch.no_grad():
        ref_lin.weight.copy_(dequantized_weight(q))
        if bias:
            ref_lin.bias.copy_(q.bias.float())
    idx = {k: torch.tensor(v) for k, v in MODES[mode].items()}
    args = (idx["index"], mode, train_bias, idx.get("column_index"))
    return QuantizedRoCoFTLinear(q, *args), RoCoFTLinear(ref_lin, *args)


def compare(qm, ref, seed=1):
    torch.manual_seed(seed)
    x = torch.randn(2, 5, IN)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = qm(xa), ref(xb)
    torch.testing.assert_close(ya, yb, **TOL)
    g = torch.randn_like(ya)
    ya.backward(g)
    yb.backward(g)
    torch.testing.assert_close(xa.grad, xb.grad, **TOL)
    for name, p in qm.trainable_parameters().items():
        other = ref.trainable_parameters()[name]
        assert p.shape == other.shape and p.dtype == other.dtype == torch.float32
        torch.testing.assert_close(p.grad, other.grad, **TOL)


@pytest.mark.parametrize("quant", QUANT_TYPES)
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("bias,train_bias", [(False, False), (True, True), (True, False)])
def test_forward_and_gradients_equal_the_dequantized_reference(quant, mode, bias, train_bias):
    qm, ref = pair(quant, mode, bias, train_bias)
    assert quantization(qm.base_layer) == quant
    for a, b in zip(qm.slices(), ref.slices()):
        assert torch.equal(a, b)  # the slices start at the dequantized values
    assert qm.base_checksum == pytest.approx(ref.base_checksum, rel=1e-12)
    compare(qm, ref)  # identity at init
    torch.manual_seed(3)
    with torch.no_grad():  # trained slices (and bias): the quantized layer follows the written weight
        for a, b in zip(qm.slices(), ref.slices()):
            a.add_(torch.randn_like(a))
            b.copy_(a)
        if train_bias:
            qm.bias.add_(1.0)
            ref.bias.copy_(qm.bias)
    for p in (*qm.trainable_parameters().values(), *ref.trainable_parameters().values()):
        p.grad = None
    compare(qm, ref, seed=4)
    merged = qm.merged_linear()
    ref_merged = ref.merged_linear()
    assert isinstance(merged, nn.Linear) and merged.weight.dtype == torch.float32
    torch.testing.assert_close(merged.weight, ref_merged.weight, rtol=0, atol=0)


def test_quantization_error_is_what_the_reference_removes():
    """Guard against a vacuous comparison: the dequantized weight is NOT the fp32 weight it came from."""
    torch.manual_seed(0)
    lin = nn.Linear(IN, OUT)
    q = quantized_linear("nf4", True)
    assert (dequantized_weight(q) - lin.weight).abs().max() > 1e-3


def test_module_keeps_no_full_size_float_weight():
    """Besides the packed weight, only the slices and the frozen values at the placement are kept."""
    for mode in MODES:
        qm, _ = pair("nf4", mode, True, False)
        big = [
            n
            for n, t in [*qm.named_parameters(), *qm.named_buffers()]
            if t.is_floating_point() and t.numel() >= OUT * IN
        ]
        assert big == [], (mode, big)
        assert qm.weight.dtype == torch.uint8 and not qm.weight.requires_grad


def test_wrapping_refuses_a_plain_linear():
    with pytest.raises(ValueError, match="wraps a bitsandbytes linear"):
        QuantizedRoCoFTLinear(nn.Linear(4, 4), torch.tensor([0]), "row")


def test_eval_mode_computes_what_training_computed():
    """bitsandbytes repacks a 4-bit weight for a bf16 CPU kernel in eval mode under no_grad (on CPUs
    with AVX512-BF16); the wrapped layer keeps the exact path, so evaluation equals training's forward."""
    qm, ref = pair("nf4", "column", True, False)
    x = torch.randn(4, IN)
    with torch.no_grad():
        train_y = qm(x)
        qm.eval()
        torch.testing.assert_close(qm(x), train_y, rtol=0, atol=0)
        torch.testing.assert_close(qm(x), ref(x), **TOL)


def test_dequantizing_a_weight_repacked_for_the_cpu_kernel():
    if not bnb.functional.has_avx512bf16():
        pytest.skip("bitsandbytes repacks for its CPU kernel only on CPUs with AVX512-BF16")
    torch.manual_seed(0)
    lin = nn.Linear(IN, 64, bias=False)  # the CPU layout packs blocks of 32 output rows
    q = bnb.nn.Linear4bit(IN, 64, bias=False, compute_dtype=torch.float32, quant_type="nf4")
    q.load_state_dict(lin.state_dict())
    q = q.to("cpu")
    before = dequantized_weight(q)
    q.eval()
    with torch.no_grad():
        q(torch.randn(2, IN))
    assert q.weight.quant_state.packing_format_for_cpu  # repacked
    # bitsandbytes' inverse re-quantizes the (double-quantized) block constants: close, not bitwise
    # (a wrong layout would be off by the weights' own size, ~0.1)
    torch.testing.assert_close(dequantized_weight(q), before, rtol=0, atol=1e-3)
    assert not q.weight.quant_state.packing_format_for_cpu


@pytest.mark.parametrize("mode", list(MODES))
def test_bf16_base_computes_in_bf16_with_fp32_slice_gradients(mode):
    """A bf16 model (4-bit storage computing in bf16): the forward runs in bf16 and the fp32 slices get
    fp32 gradients, close to the fp32 reference within bf16's precision."""
    torch.manual_seed(0)
    lin = nn.Linear(IN, OUT, bias=False)
    q = bnb.nn.Linear4bit(IN, OUT, bias=False, compute_dtype=torch.bfloat16, quant_type="nf4")
    q.load_state_dict({"weight": lin.weight.to(torch.bfloat16)})
    q = q.to("cpu")
    ref_lin = nn.Linear(IN, OUT, bias=False)
    with torch.no_grad():
        ref_lin.weight.copy_(dequantized_weight(q))
    idx = {k: torch.tensor(v) for k, v in MODES[mode].items()}
    args = (idx["index"], mode, False, idx.get("column_index"))
    qm, ref = QuantizedRoCoFTLinear(q, *args, dtype=torch.bfloat16), RoCoFTLinear(ref_lin, *args)
    x = torch.randn(2, 5, IN)
    y = qm(x.to(torch.bfloat16))
    assert y.dtype == torch.bfloat16
    y_ref = ref(x)
    torch.testing.assert_close(y.float(), y_ref, rtol=0.05, atol=0.05)
    g = torch.randn_like(y_ref)
    y.backward(g.to(torch.bfloat16))
    y_ref.backward(g)
    for a, b in zip(qm.slices(), ref.slices()):
        assert a.grad.dtype == torch.float32
        torch.testing.assert_close(a.grad, b.grad, rtol=0.05, atol=0.1)
