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


@pytest.mark.distributed
@pytest.mark.slow
@pytest.mark.parametrize(
    "mode,arch",
    [(mode, "llama") for mode in ROCOFT_MODES]
    # Gemma-3 (Gemma3DecoderLayer blocks, a tied embedding in the root, sliding-window layers)
    + [("column", "gemma3_text")],
)
def test_fsdp2_matches_single_process(tmp_path, mode, arch):
    torchrun_script("fsdp2_rocoft.py", tmp_path, STEPS, mode, arch)
    check_against_single_process(tmp_path / "adapter", mode, arch)


@pytest.mark.distributed
@pytest.mark.slow
@pytest.mark.parametrize("mode", ROCOFT_MODES)
def test_zero3_partitioned_load_matches_single_process(tmp_path, mode):
    pytest.importorskip("deepspeed")
    tiny_model("llama").save_pretrained(tmp_path / "base")
    torchrun_script("zero3_rocoft.py", tmp_path, STEPS, mode, tmp_path / "base", timeout=400)
    check_against_single_process(tmp_path / "adapter", mode)
