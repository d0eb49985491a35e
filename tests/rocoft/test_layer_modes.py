"""The row_column and entries modes of the RoCoFT layer against nn.Linear in float64: identity at
init, the slices' gradients equal the matching entries of the full weight gradient, no entry is
parameterised twice, and merging writes exactly the trained values."""

import pytest
import torch
from torch import nn

from rocoft_llm.rocoft.layer import RoCoFTLinear
from rocoft_llm.rocoft.placement import make_placement, other_rows, slice_shapes


def pair(bias=True, seed=0):
    torch.manual_seed(seed)
    ref = nn.Linear(24, 16, bias=bias).double()
    lin = nn.Linear(24, 16, bias=bias).double()
    lin.load_state_dict(ref.state_dict())
    for p in ref.parameters():
        p.requires_grad_(True)
    return ref, lin


def run_both(ref, m, seed=1):
    torch.manual_seed(seed)
    x = torch.randn(3, 5, 24, dtype=torch.float64)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = ref(xa), m(xb)
    g = torch.randn_like(ya)
    ya.backward(g)
    yb.backward(g)
    return ya, yb, xa, xb


def test_row_column_gradients_are_the_full_gradient_at_rows_and_other_rows_columns():
    ref, lin = pair()
    rows, cols = [11, 3, 7], [0, 20, 5]
    m = RoCoFTLinear(lin, torch.tensor(rows), "row_column", train_bias=True, column_index=torch.tensor(cols))
    ya, yb, xa, xb = run_both(ref, m)
    assert torch.equal(ya, yb)  # identity at init
    full = ref.weight.grad
    r, c = torch.tensor(sorted(rows)), torch.tensor(sorted(cols))
    rest = torch.tensor([i for i in range(16) if i not in rows])
    torch.testing.assert_close(m.rocoft_slice.grad, full[r], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(m.rocoft_column_slice.grad, full[rest][:, c], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(xb.grad, xa.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(m.bias.grad, ref.bias.grad, rtol=1e-12, atol=1e-12)
    assert m.weight.grad is None and not m.weight.requires_grad


def test_row_column_owns_each_entry_once():
    """Every entry of the weight is held by at most one trainable value: the slices together hold
    r*in + (out-r)*r values, one per distinct (row, column) of the union of the rows and columns."""
    _, lin = pair(bias=False)
    rows, cols = torch.tensor([2, 9]), torch.tensor([2, 9, 17])
    m = RoCoFTLinear(lin, rows, "row_column", column_index=cols)
    owner = torch.zeros(16, 24, dtype=torch.long)
    # mark every entry each slice writes: write distinct markers and count who wrote where
    probe = torch.zeros(16, 24, dtype=torch.float64)
    m.placement.write(probe, (torch.ones_like(m.rocoft_slice), torch.zeros_like(m.rocoft_column_slice)))
    owner += (probe == 1).long()
    probe.zero_()
    m.placement.write(probe, (torch.zeros_like(m.rocoft_slice), torch.ones_like(m.rocoft_column_slice)))
    owner += (probe == 1).long()
    assert owner.max() == 1
    union = torch.zeros(16, 24, dtype=torch.bool)
    union[rows] = True
    union[:, cols] = True
    assert torch.equal(owner.bool(), union)
    n_params = m.rocoft_slice.numel() + m.rocoft_column_slice.numel()
    assert n_params == int(union.sum()) == 2 * 24 + (16 - 2) * 3
    assert [tuple(t.shape) for t in m.slices()] == slice_shapes("row_column", (16, 24), 2, 3)


def test_row_column_merge_and_training_step_move_only_the_union():
    ref, lin = pair(bias=False)
    m = RoCoFTLinear(lin, torch.tensor([1, 4]), "row_column", column_index=torch.tensor([0, 7]))
    w0 = ref.weight.detach().clone()
    opt = torch.optim.SGD([m.rocoft_slice, m.rocoft_column_slice], lr=0.1)
    m(torch.randn(4, 24, dtype=torch.float64)).pow(2).sum().backward()
    opt.step()
    merged = m.merged_linear().weight.detach()
    changed = merged != w0
    allowed = torch.zeros_like(changed)
    allowed[[1, 4]] = True
    allowed[:, [0, 7]] = True
    assert changed.any() and not (changed & ~allowed).any()
    torch.testing.assert_close(merged[[1, 4]], m.rocoft_slice.detach())
    rest = other_rows(16, torch.tensor([1, 4]))
    torch.testing.assert_close(merged[rest][:, [0, 7]], m.rocoft_column_slice.detach())


def test_entries_gradient_is_the_masked_full_gradient():
    ref, lin = pair()
    flat = torch.tensor([0, 5, 23, 24, 100, 383])
    m = RoCoFTLinear(lin, flat, "entries")
    ya, yb, xa, xb = run_both(ref, m)
    assert torch.equal(ya, yb)
    mask = torch.zeros(16 * 24, dtype=torch.bool)
    mask[flat] = True
    masked = (ref.weight.grad.reshape(-1) * mask)[mask]
    torch.testing.assert_close(m.rocoft_slice.grad, masked, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(xb.grad, xa.grad, rtol=1e-12, atol=1e-12)
    with torch.no_grad():
        m.rocoft_slice.add_(1.0)
    merged = m.merged_linear().weight.detach().reshape(-1)
    w0 = ref.weight.detach().reshape(-1)
    assert torch.equal(merged[~mask], w0[~mask])
    torch.testing.assert_close(merged[mask], w0[mask] + 1.0)


@pytest.mark.parametrize(
    "mode,index,columns,match",
    [
        ("row_column", [1, 2], None, "needs column indices"),
        ("row_column", [1, 2], [30], r"column indices must be distinct and in \[0, 24\)"),
        ("entries", [384], None, r"in \[0, 384\)"),
        ("entries", [3, 3], None, "distinct"),
        ("row", [1], [2], "takes no column indices"),
        ("diagonal", [1], None, "mode must be one of"),
    ],
)
def test_bad_placements_are_refused(mode, index, columns, match):
    with pytest.raises(ValueError, match=match):
        make_placement(
            mode, torch.tensor(index), (16, 24), None if columns is None else torch.tensor(columns)
        )
