"""Index selection: first / random / Wanda max, min, mixed, and BLOOM's fused query_key_value."""

import pytest
import torch
from torch import nn

from rocoft_llm import RoCoFTConfig, apply_rocoft
from rocoft_llm.errors import RoCoFTError
from rocoft_llm.rocoft.apply import rocoft_modules
from rocoft_llm.rocoft.selection import pick, row_groups, run_calibration, wanda_scores
from tests.helpers.models import batch, tiny_model


def test_pick_semantics():
    scores = torch.tensor([5.0, 1.0, 9.0, 3.0, 7.0, 0.0])
    assert pick(scores, 6, 2, "max", 0, "m").tolist() == [2, 4]
    assert pick(scores, 6, 2, "min", 0, "m").tolist() == [1, 5]
    assert pick(scores, 6, 3, "mixed", 0, "m").tolist() == [2, 4, 5]  # two top, one bottom
    assert pick(None, 6, 3, "first", 0, "m").tolist() == [0, 1, 2]
    r1, r2 = pick(None, 100, 5, "random", 7, "a"), pick(None, 100, 5, "random", 7, "a")
    assert torch.equal(r1, r2) and r1.unique().numel() == 5
    assert not torch.equal(r1, pick(None, 100, 5, "random", 8, "a"))
    assert not torch.equal(r1, pick(None, 100, 5, "random", 7, "b"))  # modules differ
    with pytest.raises(RoCoFTError, match="exceeds"):
        pick(None, 4, 5, "first", 0, "m")


def test_wanda_scores_match_definition():
    w = torch.randn(5, 7)
    xn = torch.rand(7)
    s = w.abs() * xn  # S_ij
    torch.testing.assert_close(wanda_scores(w, xn, "row"), s.sum(1))
    torch.testing.assert_close(wanda_scores(w, xn, "column"), s.sum(0))


def test_calibration_norms_exclude_padding():
    model = tiny_model("llama")
    b = batch(seed=1, pad=4)
    target = model.model.layers[0].self_attn.q_proj
    seen = []
    h = target.register_forward_hook(lambda m, a, o: seen.append(a[0].detach()))
    norms = run_calibration(model, {"q": target}, [b])
    h.remove()
    x = seen[0] * b["attention_mask"].unsqueeze(-1)
    torch.testing.assert_close(norms["q"], x.reshape(-1, x.shape[-1]).norm(dim=0))


@pytest.mark.parametrize("arch", ["llama", "bloom", "gptj"])
@pytest.mark.parametrize("selection", ["max", "min", "mixed"])
@pytest.mark.parametrize("mode", ["row", "column"])
def test_scored_selection_uses_real_activation_norms(arch, selection, mode):
    model = tiny_model(arch)
    calib = [batch(seed=s) for s in range(2)]
    names = [
        n
        for n, m in model.named_modules()
        if isinstance(m, nn.Linear) and n.endswith(("down_proj", "fc_out", "dense_4h_to_h"))
    ]
    ref_norms = run_calibration(model, {n: model.get_submodule(n) for n in names}, calib)
    weights = {n: model.get_submodule(n).weight.detach().clone() for n in names}
    apply_rocoft(model, RoCoFTConfig(mode=mode, rank=3, selection=selection), calibration=calib)
    for n in names:
        scores = wanda_scores(weights[n], ref_norms[n], mode)
        order = torch.argsort(scores, descending=True)
        expect = {"max": order[:3], "min": order[-3:], "mixed": torch.cat([order[:2], order[-1:]])}[selection]
        assert rocoft_modules(model)[n].rocoft_index.tolist() == sorted(expect.tolist())


def test_scored_selection_without_calibration_is_an_error():
    with pytest.raises(RoCoFTError, match="calibration"):
        apply_rocoft(tiny_model("llama"), RoCoFTConfig(selection="max"))


def test_bloom_fused_qkv_rows_are_r_rows_of_each_of_q_k_v():
    model = tiny_model("bloom")  # hidden 32, 4 heads -> head_dim 8, fused rows (4, 3, 8)
    apply_rocoft(model, RoCoFTConfig(mode="row", rank=2, selection="first"))
    qkv = model.transformer.h[0].self_attention.query_key_value
    assert qkv.rocoft_index.tolist() == [0, 1, 8, 9, 16, 17]  # head 0: q dims 0-1, k dims 0-1, v dims 0-1
    assert qkv.rocoft_slice.shape == (6, 32)
    # the row groups follow transformers' own split of the fused projection
    fused = torch.arange(96.0).view(1, 1, 96)
    q, k, v = model.transformer.h[0].self_attention._reshape(fused)  # transformers' own split
    groups = row_groups(96, 3, 4)
    for part, g in zip((q, k, v), groups):
        assert part.reshape(-1).long().tolist() == g.tolist()
    # dense (not fused) gets plain rank-2 rows; column mode on qkv: r input columns
    assert model.transformer.h[0].self_attention.dense.rocoft_index.tolist() == [0, 1]
    col = apply_rocoft(tiny_model("bloom"), RoCoFTConfig(mode="column", rank=2))
    assert col.transformer.h[0].self_attention.query_key_value.rocoft_slice.shape == (96, 2)


def test_bloom_random_rows_pick_rank_per_part():
    model = apply_rocoft(tiny_model("bloom"), RoCoFTConfig(mode="row", rank=3, selection="random", seed=3))
    idx = model.transformer.h[1].self_attention.query_key_value.rocoft_index
    parts = (idx // 8) % 3
    assert sorted(parts.tolist()) == [0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_unknown_model_needs_targets_and_bad_targets_are_named():
    class Toy(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(4, 4)

        def forward(self, x):
            return self.proj(x)

    with pytest.raises(RoCoFTError, match="no default RoCoFT targets"):
        apply_rocoft(Toy(), RoCoFTConfig())
    with pytest.raises(RoCoFTError, match=r"\['nope'\] matched no nn.Linear.*proj"):
        apply_rocoft(Toy(), RoCoFTConfig(targets=["nope"]))
    toy = apply_rocoft(Toy(), RoCoFTConfig(targets=["proj"], rank=1, mode="row"))
    assert toy.proj.rocoft_slice.shape == (1, 4)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (
            {"mode": "rows"},
            "mode: 'rows' is not one of 'row', 'column', 'row_column', 'entries'; did you mean 'row'",
        ),
        ({"mode": "entries"}, "density: mode 'entries' needs the fraction"),
        (
            {"mode": "entries", "density": 0.1, "selection": "first"},
            "selection: 'first' picks rows or columns",
        ),
        ({"mode": "entries", "density": 0.0, "selection": "random"}, "density: 0.0 must be > 0"),
        ({"density": 0.1}, "density: 0.1 applies to mode 'entries' only"),
        ({"rank": 0}, "rank: 0 must be >= 1"),
        ({"selection": "best"}, "selection: 'best' is not one of"),
        ({"targets": "q_proj"}, "targets: 'q_proj' is not a list of strings"),
        ({"targets": []}, "targets: .* at least 1"),
        ({"rank": 2.5}, "rank: 2.5 is not an integer"),
        ({"rnak": 2}, "rnak: unknown key; did you mean 'rank'"),
    ],
)
def test_config_errors(kwargs, match):
    with pytest.raises(RoCoFTError, match=match):
        RoCoFTConfig(**kwargs)


def test_rank_larger_than_dimension_and_bad_explicit_indices():
    with pytest.raises(RoCoFTError, match="exceeds"):
        apply_rocoft(tiny_model("llama"), RoCoFTConfig(mode="column", rank=33))
    model = tiny_model("llama")
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n.endswith("q_proj")]
    good = {n: [0, 1] for n in names}
    with pytest.raises(RoCoFTError, match="out of range"):
        apply_rocoft(
            tiny_model("llama"), RoCoFTConfig(rank=2, targets=["q_proj"]), indices={**good, names[0]: [0, 99]}
        )
    with pytest.raises(RoCoFTError, match="duplicate"):
        apply_rocoft(
            tiny_model("llama"), RoCoFTConfig(rank=2, targets=["q_proj"]), indices={**good, names[0]: [3, 3]}
        )
    with pytest.raises(RoCoFTError, match="expected 2 indices"):
        apply_rocoft(
            tiny_model("llama"), RoCoFTConfig(rank=2, targets=["q_proj"]), indices={**good, names[0]: [1]}
        )
