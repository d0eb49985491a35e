"""Adapter files: what is written, and every way a bad adapter is refused."""

import copy
import json

import pytest
import torch
from safetensors.torch import load_file

from rocoft_llm import RoCoFTConfig, apply_rocoft, load_adapter, save_adapter
from rocoft_llm.errors import AdapterError, RoCoFTError
from rocoft_llm.rocoft.adapter import CONFIG_FILE, WEIGHTS_FILE, read_adapter_tensors
from tests.helpers.models import tiny_model


@pytest.fixture
def saved(tmp_path):
    base = tiny_model("llama")
    model = apply_rocoft(copy.deepcopy(base), RoCoFTConfig(mode="column", rank=2, selection="random", seed=5))
    with torch.no_grad():
        for m in model.modules():
            if hasattr(m, "rocoft_slice"):
                m.rocoft_slice.add_(0.01)
    path = save_adapter(model, tmp_path / "adapter", metadata={"run": "test"})
    return base, model, path


def test_adapter_contents(saved):
    base, model, path = saved
    cfg = json.loads((path / CONFIG_FILE).read_text())
    assert (
        cfg["format_version"] == 2
        and cfg["config_sha256"]
        and cfg["model_type"] == "llama"
        and cfg["mode"] == "column"
    )
    assert cfg["rank"] == 2 and cfg["selection"] == "random" and cfg["metadata"] == {"run": "test"}
    tensors = load_file(path / WEIGHTS_FILE)
    assert len(tensors) == len(cfg["modules"]) == 14
    for name, info in cfg["modules"].items():
        t = tensors[name + ".rocoft_slice"]
        assert t.dtype == torch.float32 and t.shape == (info["weight_shape"][0], 2)
        assert len(info["indices"]) == 2
    assert cfg["num_trainable_parameters"] == sum(t.numel() for t in tensors.values())
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".adapter")]  # temp dir renamed away


def test_refuses_existing_directory_unless_overwrite(saved):
    _, model, path = saved
    with pytest.raises(RoCoFTError, match="already exists"):
        save_adapter(model, path)
    first = next(m for m in model.modules() if hasattr(m, "rocoft_slice"))
    with torch.no_grad():
        first.rocoft_slice.add_(1.0)
    save_adapter(model, path, overwrite=True)
    saved_now = read_adapter_tensors(path)
    assert any(
        torch.equal(t, first.rocoft_slice.detach().cpu()) for t in saved_now.values()
    )  # the new values


def test_truncated_or_modified_tensor_file(saved):
    base, _, path = saved
    data = (path / WEIGHTS_FILE).read_bytes()
    (path / WEIGHTS_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(AdapterError, match="truncated or was modified"):
        load_adapter(copy.deepcopy(base), path)


def test_partial_save_without_config(saved):
    base, _, path = saved
    (path / CONFIG_FILE).unlink()
    with pytest.raises(AdapterError, match="did not finish"):
        load_adapter(copy.deepcopy(base), path)


def test_corrupt_config(saved):
    base, _, path = saved
    (path / CONFIG_FILE).write_text("{not json")
    with pytest.raises(AdapterError, match="not valid JSON"):
        load_adapter(copy.deepcopy(base), path)


def test_wrong_architecture(saved):
    _, _, path = saved
    with pytest.raises(AdapterError, match="trained on a 'llama' model but the base is 'gptj'"):
        load_adapter(tiny_model("gptj"), path)


def test_wrong_shapes(saved):
    from transformers import LlamaForCausalLM

    from tests.helpers.models import tiny_config

    _, _, path = saved
    cfg = tiny_config("llama")
    cfg.intermediate_size = 48
    with pytest.raises(AdapterError, match="does not fit this base model"):
        load_adapter(LlamaForCausalLM(cfg), path)


def test_same_shapes_different_weights_is_refused(saved):
    _, _, path = saved
    with pytest.raises(AdapterError, match="differ from the model it was trained on"):
        load_adapter(tiny_model("llama", seed=123), path)
    load_adapter(tiny_model("llama", seed=123), path, check_base=False)  # explicit opt-out works


def test_nan_slices_are_never_saved(tmp_path):
    model = apply_rocoft(tiny_model("llama"), RoCoFTConfig())
    with torch.no_grad():
        model.model.layers[0].self_attn.q_proj.rocoft_slice[0, 0] = float("nan")
    with pytest.raises(AdapterError, match="NaN"):
        save_adapter(model, tmp_path / "a")
    assert not (tmp_path / "a").exists()


def test_save_requires_rocoft(tmp_path):
    with pytest.raises(AdapterError, match="apply_rocoft"):
        save_adapter(tiny_model("llama"), tmp_path / "a")
