"""RoCoFT under FSDP2 with 2 CPU ranks (gloo) == a single-process run on the same global batch."""

import copy
import os
from pathlib import Path

import pytest
import torch

from rocoft_llm import load_adapter, trainable_parameters
from rocoft_llm.rocoft.adapter import read_adapter_config, read_adapter_tensors
from rocoft_llm.rocoft.apply import rocoft_modules
from rocoft_llm.rocoft.placement import slice_names
from tests.helpers.models import ROCOFT_MODES, batch, tiny_model
from tests.helpers.torchrun import torchrun

STEPS = int(os.environ.get("ROCOFT_TEST_STEPS", "3"))


def torchrun_script(script: str, *args, timeout: int = 180) -> None:
    """Run ``tests/rocoft/dist_scripts/<script>.py`` as a module under torchrun."""
    torchrun("-m", f"tests.rocoft.dist_scripts.{script.removesuffix('.py')}", *args, timeout=timeout)


def check_against_single_process(adapter: Path, mode: str, arch: str = "llama") -> None:
    """Train the same indices in one process on the full global batch; compare saved slices."""
    info = read_adapter_config(adapter)
    # single-process reference with the indices rank 0 chose (the adapter stores them)
    ref = load_adapter(copy.deepcopy(tiny_model(arch)), adapter)
    initial = tiny_model(arch)
    start = {}
    with torch.no_grad():
        for name, m in rocoft_modules(ref).items():
            w0 = initial.get_submodule(name).weight
            for (pname, p), value in zip(m.trainable_parameters().items(), m.placement.read(w0)):
                p.copy_(value)
                start[f"{name}.{pname}"] = p.detach().clone()
    opt = torch.optim.AdamW(trainable_parameters(ref).values(), lr=0.02)
    for s in range(STEPS):
        b = batch(seed=s, bsz=4)
        ref(**b, labels=b["input_ids"]).loss.backward()
        opt.step()
        opt.zero_grad()
    got = read_adapter_tensors(adapter, info)
    assert len(got) == len(start) == 14 * len(slice_names(mode))
    moved = 0
    for name, p in trainable_parameters(ref).items():
        torch.testing.assert_close(got[name], p.detach(), rtol=1e-5, atol=1e-6)
        moved += int(not torch.equal(got[name], start[name]))
    assert moved == len(start)


FSDP2_CASES = [(mode, "llama") for mode in ROCOFT_MODES] + [("column", "gemma3_text")]
"""Every mode on Llama, and Gemma-3 (Gemma3DecoderLayer blocks, a tied embedding in the root,
sliding-window layers) in column mode."""


@pytest.fixture(scope="module")
def fsdp2_adapters(tmp_path_factory) -> Path:
    """One 2-rank FSDP2 launch trains every case of FSDP2_CASES (the process start is paid once)."""
    out = tmp_path_factory.mktemp("fsdp2")
    torchrun_script(
        "fsdp2_rocoft.py", out, STEPS, *(f"{mode}:{arch}" for mode, arch in FSDP2_CASES), timeout=400
    )
    return out


@pytest.fixture(scope="module")
def zero3_adapters(tmp_path_factory) -> Path:
    """One 2-rank ZeRO-3 launch trains every mode from a partitioned load of the same saved base."""
    pytest.importorskip("deepspeed")
    out = tmp_path_factory.mktemp("zero3")
    tiny_model("llama").save_pretrained(out / "base")
    torchrun_script("zero3_rocoft.py", out, STEPS, out / "base", *ROCOFT_MODES, timeout=600)
    return out


@pytest.mark.distributed
@pytest.mark.slow
@pytest.mark.parametrize("mode,arch", FSDP2_CASES)
def test_fsdp2_matches_single_process(fsdp2_adapters, mode, arch):
    check_against_single_process(fsdp2_adapters / f"adapter-{mode}-{arch}", mode, arch)


@pytest.mark.distributed
@pytest.mark.slow
@pytest.mark.parametrize("mode", ROCOFT_MODES)
def test_zero3_partitioned_load_matches_single_process(zero3_adapters, mode):
    check_against_single_process(zero3_adapters / f"adapter-{mode}", mode)
