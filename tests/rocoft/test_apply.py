"""Numerical properties of RoCoFT on tiny Llama / BLOOM / GPT-J models, against the unwrapped model."""

import copy

import pytest
import torch

from rocoft_llm import (
    RoCoFTConfig,
    apply_rocoft,
    load_adapter,
    merge_rocoft,
    save_adapter,
    trainable_parameters,
)
from rocoft_llm.architectures import get_architecture
from rocoft_llm.rocoft.apply import rocoft_modules
from tests.helpers.models import ARCHS, TEST_DENSITY, batch, tiny_model

MODES = ("row", "column", "row_column")
SELECTIONS = ("first", "random", "max")
CASES = [(a, m, s) for a in ARCHS for m in MODES for s in SELECTIONS] + [
    (a, "entries", "random") for a in ARCHS
]


def calib():
    return [batch(seed=s, pad=3) for s in range(3)]


def wrapped(arch, mode, selection, dtype=torch.float32, **kw):
    base = tiny_model(arch, dtype=dtype)
    model = apply_rocoft(
        copy.deepcopy(base),
        RoCoFTConfig(
            mode=mode,
            rank=2,
            selection=selection,
            seed=1,
            density=TEST_DENSITY if mode == "entries" else None,
            **kw,
        ),
        calibration=calib(),
    )
    return base, model


def logits(model, b):
    return model(**b).logits


def owned(module) -> torch.Tensor:
    """Boolean mask of the weight entries the module's trainable values hold."""
    probe = torch.zeros(module.out_features, module.in_features)
    module.placement.write(probe, tuple(torch.ones_like(s) for s in module.slices()))
    return probe.bool()


@pytest.mark.parametrize("arch,mode,selection", CASES)
def test_identity_at_init_and_only_slices_trainable(arch, mode, selection):
    base, model = wrapped(arch, mode, selection)
    b = batch(seed=7)
    assert torch.equal(logits(base, b), logits(model, b))
    train = trainable_parameters(model)
    assert train and all(n.endswith((".rocoft_slice", ".rocoft_column_slice")) for n in train)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == set(train)
    n_targets = len(rocoft_modules(model))
    assert n_targets == 2 * len(get_architecture(arch).targets)
    # state-dict keys: the base's HF keys plus one slice per wrapped module
    assert set(model.state_dict()) == set(base.state_dict()) | set(train)


@pytest.mark.parametrize("arch,mode,selection", CASES)
def test_slice_gradient_equals_slice_of_full_gradient(arch, mode, selection):
    base, model = wrapped(arch, mode, selection, dtype=torch.float64)
    # transformers' BLOOM returns NaN for padded rows in float64 (its own mask arithmetic, also
    # without RoCoFT), so BLOOM is checked on an unpadded batch here.
    b = batch(seed=3, pad=0 if arch == "bloom" else 2)
    for p in base.parameters():
        p.requires_grad_(True)
    logits(base, b).pow(2).mean().backward()
    logits(model, b).pow(2).mean().backward()
    base_params = dict(base.named_parameters())
    for name, module in rocoft_modules(model).items():
        expected = module.placement.read(base_params[name + ".weight"].grad)
        for got, expect in zip(module.slices(), expected, strict=True):
            torch.testing.assert_close(got.grad, expect, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("arch,mode,selection", CASES)
def test_training_moves_only_selected_and_merge_and_adapter_roundtrip(arch, mode, selection, tmp_path):
    base, model = wrapped(arch, mode, selection)
    opt = torch.optim.AdamW(trainable_parameters(model).values(), lr=1e-2, weight_decay=0.0)
    for step in range(4):
        logits(model, batch(seed=10 + step)).logsumexp(-1).mean().backward()
        opt.step()
        opt.zero_grad()
    b = batch(seed=99)
    with torch.no_grad():
        trained = logits(model, b)  # the forward writes the current slices into the weights
    base_params = dict(base.named_parameters())
    for name, module in rocoft_modules(model).items():
        w0 = base_params[name + ".weight"]
        w = module.weight.detach()
        mask = owned(module)
        assert torch.equal(w[~mask], w0[~mask]), name
        assert not torch.equal(w[mask], w0[mask]), name
        for held, value in zip(module.placement.read(w), module.slices(), strict=True):
            assert torch.equal(held, value.detach().to(w.dtype)), name
    with torch.no_grad():
        assert not torch.allclose(trained, logits(base, b))
        save_adapter(model, tmp_path / "adapter")
        reloaded = load_adapter(copy.deepcopy(base), tmp_path / "adapter")
        assert torch.equal(logits(reloaded, b), trained)
        merged = merge_rocoft(model)
        assert not rocoft_modules(merged)
        assert type(merged.get_submodule(name)) is torch.nn.Linear
        torch.testing.assert_close(logits(merged, b), trained, rtol=0, atol=0)


@pytest.mark.parametrize("mode", MODES)
def test_trainable_bias_is_fp32_and_trains(mode):
    base, model = wrapped("bloom", mode, "first", dtype=torch.bfloat16, train_bias=True)
    train = trainable_parameters(model)
    biases = [n for n in train if n.endswith(".bias")]
    assert biases and all(train[n].dtype == torch.float32 for n in train)
    logits(model, batch()).float().pow(2).mean().backward()
    assert all(train[n].grad is not None and train[n].grad.abs().sum() > 0 for n in biases)


def test_bf16_model_matches_fp32_reference_within_tolerance():
    base, model = wrapped("llama", "row", "first", dtype=torch.bfloat16)
    ref32 = tiny_model("llama", dtype=torch.float32)
    b = batch(seed=5)
    torch.testing.assert_close(logits(model, b).float(), logits(ref32, b), rtol=0.05, atol=0.05)
    # identity is exact in the model's own dtype
    assert torch.equal(logits(model, b), logits(base, b))


def test_trainable_count_is_reported(caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="rocoft_llm"):
        _, model = wrapped("llama", "row", "first")
    n = sum(p.numel() for p in trainable_parameters(model).values())
    # 2 layers x (q,k,v,o: 2x32 each; gate, up: 2x32; down: 2x64)
    assert n == 2 * (4 * 2 * 32 + 2 * 2 * 32 + 2 * 64)
    assert f"{n:,} trainable parameters" in caplog.text


@pytest.mark.parametrize("arch", ARCHS)
def test_gradient_checkpointing_gives_the_same_slice_gradients(arch):
    _, plain = wrapped(arch, "column", "random")
    ckpt = copy.deepcopy(plain)
    ckpt.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    ckpt.enable_input_require_grads()  # frozen embeddings: checkpointed blocks still need input grads
    ckpt.train()
    plain.train()
    b = batch(seed=4)
    for m in (plain, ckpt):
        m(**b, labels=b["input_ids"]).loss.backward()
    for (n, p), (_, q) in zip(trainable_parameters(plain).items(), trainable_parameters(ckpt).items()):
        assert p.grad is not None and q.grad is not None, n
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-5, atol=1e-7)
