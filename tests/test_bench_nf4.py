"""bench/methods.py's NF4 variants: the quantized copy stores every linear but the head in NF4, its
byte count includes the quantization constants, and a *-nf4 method trains as many parameters as its
fp32 counterpart and leaves the model as it found it."""

import argparse

import pytest
import torch
from torch import nn

bnb = pytest.importorskip("bitsandbytes")

from tests.helpers.bench import load_bench_script  # noqa: E402

methods = load_bench_script("methods")


def tiny(seed=0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=4
    )
    return LlamaForCausalLM(config)


def test_nf4_copy_quantizes_every_linear_but_the_head():
    model = tiny()
    q = methods.nf4_copy(model, "float32")
    linears = {n: type(m) for n, m in q.named_modules() if isinstance(m, nn.Linear)}
    assert linears.pop("lm_head") is nn.Linear
    assert set(linears.values()) == {bnb.nn.Linear4bit} and len(linears) == 7
    assert all(
        type(m) is nn.Linear for m in model.modules() if isinstance(m, nn.Linear)
    )  # original untouched
    fp32 = sum(methods.tensor_bytes([m.weight]) for n, m in model.named_modules() if n in linears)
    packed = sum(methods.tensor_bytes([m.weight]) for n, m in q.named_modules() if n in linears)
    numel = sum(m.weight.numel() for n, m in model.named_modules() if n in linears)
    # 4 bits a weight plus the constants: per block of 64 a 1-byte absmax, per layer the code tables
    # (NF4's 16 values, double quantization's 256) and one fp32 scale per 256 blocks
    constants = sum(
        4 * (16 + 256) + w // 64 + 4 * -(-w // (64 * 256)) for w in (4096, 4096, 4096, 4096, 8192, 8192, 8192)
    )
    assert numel == 40960 and packed == numel // 2 + constants and packed < fp32 / 5


@pytest.mark.parametrize("kind", ["floor", "rocoft-columns", "rocoft-rowcol", "lora-r8"])
def test_nf4_method_trains_what_the_fp32_method_trains_and_restores_the_model(kind):
    model = tiny()
    q = methods.nf4_copy(model, "float32")
    args = argparse.Namespace(rank=3)
    ids = torch.randint(0, 64, (2, 8))
    embeds = model.get_input_embeddings()(ids).detach()
    before = {n: type(m) for n, m in q.named_modules()}
    _, n_fp32 = methods.train_steps(methods.Method(kind, args), model, embeds, ids, 1, "cpu")
    _, n_nf4 = methods.train_steps(methods.Method(kind + "-nf4", args), q, embeds, ids, 1, "cpu")
    assert n_nf4 == n_fp32 and (n_fp32 > 0) == (kind != "floor")
    assert {n: type(m) for n, m in q.named_modules()} == before


def test_full_and_paper_refuse_an_nf4_base():
    for name in ("full-nf4", "paper-nf4"):
        with pytest.raises(ValueError, match="only floor, rocoft-\\* and lora-r8 run on an NF4 base"):
            methods.Method(name, argparse.Namespace(rank=3))
