"""The RoCoFT linear layer alone, against nn.Linear in float64."""

import pytest
import torch
from torch import nn

from rocoft_llm.rocoft.layer import RoCoFTLinear


def make(mode, idx, bias=True, train_bias=False, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    ref = nn.Linear(24, 16, bias=bias).to(dtype)
    lin = nn.Linear(24, 16, bias=bias).to(dtype)
    lin.load_state_dict(ref.state_dict())
    return ref, RoCoFTLinear(lin, torch.tensor(idx), mode, train_bias=train_bias)


@pytest.mark.parametrize("mode", ["row", "column"])
@pytest.mark.parametrize("idx", [[0, 1, 2], [11, 3, 7], [15]])
def test_forward_identity_and_gradients(mode, idx):
    ref, m = make(mode, idx, train_bias=True)
    for p in ref.parameters():
        p.requires_grad_(True)
    x = torch.randn(3, 5, 24, dtype=torch.float64)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = ref(xa), m(xb)
    assert torch.equal(ya, yb)
    g = torch.randn_like(ya)
    ya.backward(g)
    yb.backward(g)
    sidx = torch.sort(torch.tensor(idx)).values
    full = ref.weight.grad
    torch.testing.assert_close(
        m.rocoft_slice.grad, full[sidx] if mode == "row" else full[:, sidx], rtol=1e-12, atol=1e-12
    )
    torch.testing.assert_close(xb.grad, xa.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(m.bias.grad, ref.bias.grad, rtol=1e-12, atol=1e-12)
    assert m.weight.grad is None and not m.weight.requires_grad


@pytest.mark.parametrize("mode,expected_cols", [("row", 24), ("column", 2)])
def test_saved_activations(mode, expected_cols):
    """Column mode keeps only x[..., idx] for backward; row mode keeps x."""
    _, m = make(mode, [4, 9], bias=False, dtype=torch.float32)
    x = torch.randn(4, 6, 24, requires_grad=True)
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        m(x)
    activations = [t for t in saved if t.dim() == 3]
    assert len(activations) == 1 and activations[0].shape == (4, 6, expected_cols)
    assert not any(t.shape == m.weight.shape for t in saved)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_inputs_close_to_fp64(dtype):
    ref, m = make("row", [2, 5, 6], dtype=torch.float64)
    m.to(dtype)
    m.rocoft_slice.data = m.rocoft_slice.data.float()
    x = torch.randn(2, 4, 24, dtype=torch.float64)
    y = m(x.to(dtype))
    assert y.dtype == dtype
    torch.testing.assert_close(y.double(), ref(x), rtol=0.05, atol=0.05)
    y.float().sum().backward()
    assert m.rocoft_slice.grad.dtype == torch.float32


def test_autocast_bf16_on_cpu():
    ref, m = make("column", [1, 2], dtype=torch.float32)
    x = torch.randn(2, 3, 24)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = m(x)
        yr = ref(x)
    assert y.dtype == torch.bfloat16 == yr.dtype
    torch.testing.assert_close(y.float(), yr.float(), rtol=0.02, atol=0.02)
    y.float().sum().backward()
    assert m.rocoft_slice.grad.dtype == torch.float32 and m.rocoft_slice.grad.abs().sum() > 0


def test_slice_update_reaches_output():
    ref, m = make("row", [3], bias=False)
    with torch.no_grad():
        m.rocoft_slice.add_(1.0)
    x = torch.randn(2, 24, dtype=torch.float64)
    diff = m(x) - ref(x)
    torch.testing.assert_close(diff[:, 3], x.sum(-1))
    assert torch.equal(diff[:, [i for i in range(16) if i != 3]], torch.zeros(2, 15, dtype=torch.float64))
