"""`rocoft-llm merge`: streamed shard-by-shard merge into a plain HF directory."""

import copy
import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from rocoft_llm import RoCoFTConfig, apply_rocoft, save_adapter, trainable_parameters
from rocoft_llm.errors import AdapterError, RoCoFTError
from rocoft_llm.rocoft.merge_dir import merge_to_directory
from tests.helpers.models import ARCHS, ROCOFT_MODES, batch, mode_settings, tiny_model


def trained_adapter(arch, mode, tmp_path, train_bias=False):
    base = tiny_model(arch)
    base_dir = tmp_path / "base"
    base.save_pretrained(base_dir, max_shard_size="40KB")  # several shards
    model = apply_rocoft(
        copy.deepcopy(base),
        RoCoFTConfig(**{"rank": 2, "selection": "random", "train_bias": train_bias, **mode_settings(mode)}),
    )
    opt = torch.optim.AdamW(trainable_parameters(model).values(), lr=0.05)
    for s in range(3):
        model(**batch(seed=s)).logits.pow(2).mean().backward()
        opt.step()
        opt.zero_grad()
    save_adapter(model, tmp_path / "adapter")
    return base_dir, model


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("mode", ROCOFT_MODES)
def test_merged_directory_loads_in_plain_transformers(arch, mode, tmp_path):
    base_dir, model = trained_adapter(arch, mode, tmp_path, train_bias=arch != "llama")
    assert json.loads((base_dir / "model.safetensors.index.json").read_text())["weight_map"]
    out = merge_to_directory(str(base_dir), tmp_path / "adapter", tmp_path / "merged", progress=False)
    merged = AutoModelForCausalLM.from_pretrained(out).eval()
    b = batch(seed=42)
    with torch.no_grad():
        torch.testing.assert_close(merged(**b).logits, model(**b).logits, rtol=1e-5, atol=1e-5)
    assert sorted(p.name for p in base_dir.glob("*.safetensors")) == sorted(
        p.name for p in out.glob("*.safetensors")
    )


def test_merge_refuses_wrong_base_and_existing_output(tmp_path):
    _, _ = trained_adapter("llama", "row", tmp_path)
    other = tmp_path / "other"
    tiny_model("gptj").save_pretrained(other)
    with pytest.raises(AdapterError, match="model_type 'llama'"):
        merge_to_directory(str(other), tmp_path / "adapter", tmp_path / "m1", progress=False)
    assert not (tmp_path / "m1").exists()
    (tmp_path / "m2").mkdir()
    with pytest.raises(RoCoFTError, match="already exists"):
        merge_to_directory(str(tmp_path / "base"), tmp_path / "adapter", tmp_path / "m2", progress=False)
    with pytest.raises(RoCoFTError, match="not a local directory"):
        merge_to_directory(str(tmp_path / "nowhere"), tmp_path / "adapter", tmp_path / "m3", progress=False)
    assert not any(p.name.startswith(".m") for p in tmp_path.iterdir())  # no temp dirs left behind


def test_merge_refuses_pickled_checkpoints(tmp_path):
    trained_adapter("llama", "row", tmp_path)
    pt = tmp_path / "pt"
    tiny_model("llama").save_pretrained(pt)
    for f in pt.glob("*.safetensors*"):
        f.unlink()
    (pt / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(RoCoFTError, match="safetensors only"):
        merge_to_directory(str(pt), tmp_path / "adapter", tmp_path / "m", progress=False)
