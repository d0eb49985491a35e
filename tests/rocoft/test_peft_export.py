"""`rocoft-llm export-peft`: a RoCoFT adapter as an exact peft LoRA - peft, transformers' load_adapter and
merge_and_unload all give the RoCoFT model's logits (fp32, 1e-5), rows and columns, padded or not."""

import copy
import json

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from rocoft_llm import RoCoFTConfig, apply_rocoft, merge_rocoft, save_adapter, trainable_parameters
from rocoft_llm.cli import main
from rocoft_llm.errors import AdapterError, RoCoFTError
from rocoft_llm.rocoft.peft_export import export_peft
from tests.helpers.models import ARCHS, batch, tiny_model

TOL = {"rtol": 1e-5, "atol": 1e-5}


def trained(arch, mode, tmp_path, **cfg):
    """(base dir, trained RoCoFT model, adapter dir): 3 AdamW steps on random rows/columns."""
    base = tiny_model(arch)
    base_dir = tmp_path / "base"
    base.save_pretrained(base_dir, max_shard_size="40KB")
    model = apply_rocoft(copy.deepcopy(base), RoCoFTConfig(mode=mode, rank=2, selection="random", **cfg))
    opt = torch.optim.AdamW(trainable_parameters(model).values(), lr=0.05)
    for s in range(3):
        model(**batch(seed=s)).logits.pow(2).mean().backward()
        opt.step()
        opt.zero_grad()
    save_adapter(model, tmp_path / "adapter", base_model=str(base_dir))
    return base_dir, model.eval(), tmp_path / "adapter"


def peft_logits(base_dir, out, b):
    """Logits of the export through PeftModel, transformers' load_adapter and merge_and_unload."""
    from peft import PeftModel

    with torch.no_grad():
        peft_model = PeftModel.from_pretrained(
            AutoModelForCausalLM.from_pretrained(base_dir), str(out)
        ).eval()
        via_peft = peft_model(**b).logits
        merged = peft_model.merge_and_unload()(**b).logits
        hf = AutoModelForCausalLM.from_pretrained(base_dir).eval()
        hf.load_adapter(str(out))
        via_hf = hf(**b).logits
    return {"PeftModel": via_peft, "load_adapter": via_hf, "merge_and_unload": merged}


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("mode", ["row", "column", "row_column"])
def test_export_reproduces_the_rocoft_model(arch, mode, tmp_path):
    base_dir, model, adapter = trained(arch, mode, tmp_path)
    b = batch(seed=42, pad=3)
    with torch.no_grad():
        want = model(**b).logits
        base_logits = AutoModelForCausalLM.from_pretrained(base_dir).eval()(**b).logits
    assert (want - base_logits).abs().max() > 1e-3  # the adapter changes the output
    # rank 2 rows, 2 columns, or both (row_column: 2 + 2); BLOOM's fused qkv has 2 rows per part
    rank = 4 if mode == "row_column" else 2
    fused = {"row": 6, "row_column": 8}.get(mode) if arch == "bloom" else None
    for pad in (None, 8):
        out = export_peft(adapter, tmp_path / f"peft-{pad}", pad_rank=pad)
        cfg = json.loads((out / "adapter_config.json").read_text())
        assert cfg["base_model_name_or_path"] == str(base_dir)
        assert cfg["r"] == cfg["lora_alpha"] == (pad or rank)
        assert (
            cfg["rank_pattern"]
            == cfg["alpha_pattern"]
            == ({"query_key_value": fused} if fused and not pad else {})
        )
        tensors = load_file(str(out / "adapter_model.safetensors"))
        assert all(
            k.startswith("base_model.model.") and k.endswith((".lora_A.weight", ".lora_B.weight"))
            for k in tensors
        )
        for name, got in peft_logits(base_dir, out, b).items():
            torch.testing.assert_close(
                got, want, **TOL, msg=lambda m, name=name, pad=pad: f"{name} pad={pad}: {m}"
            )


def test_one_hot_factor_is_exactly_one_hot(tmp_path):
    _, model, adapter = trained("llama", "row", tmp_path)
    out = export_peft(adapter, tmp_path / "peft", pad_rank=4)
    t = load_file(str(out / "adapter_model.safetensors"))
    name = "model.layers.0.self_attn.q_proj"
    b = t[f"base_model.model.{name}.lora_B.weight"]
    idx = model.get_submodule(name).rocoft_index
    assert b.shape == (32, 4) and b.sum() == 2 and torch.equal(b[idx, torch.arange(2)], torch.ones(2))
    assert torch.equal(t[f"base_model.model.{name}.lora_A.weight"][2:], torch.zeros(2, 32))  # padding


def test_export_refuses_bias_runs_wrong_base_and_existing_output(tmp_path):
    base_dir, _, adapter = trained("gptj", "row", tmp_path / "b", train_bias=True)
    with pytest.raises(AdapterError, match=r"fc_in.bias.*train_bias or also_train"):
        export_peft(adapter, tmp_path / "x1")
    _, _, adapter = trained("llama", "row", tmp_path / "n", also_train=["model.norm.weight"])
    with pytest.raises(AdapterError, match=r"model.norm.weight.*train_bias or also_train"):
        export_peft(adapter, tmp_path / "x1")
    _, _, adapter = trained("llama", "row", tmp_path / "lb", train_bias=True)  # llama has no biases
    assert export_peft(adapter, tmp_path / "lb" / "peft").is_dir()
    base_dir, _, adapter = trained("llama", "row", tmp_path)
    other = tmp_path / "other"
    tiny_model("llama", seed=1).save_pretrained(other)
    with pytest.raises(AdapterError, match="differ from the model the adapter was trained on"):
        export_peft(adapter, tmp_path / "x2", base=str(other))
    gptj = tmp_path / "gptj"
    tiny_model("gptj").save_pretrained(gptj)
    with pytest.raises(AdapterError, match="model_type 'llama'"):
        export_peft(adapter, tmp_path / "x3", base=str(gptj))
    with pytest.raises(RoCoFTError, match="--pad-rank 1 is below"):
        export_peft(adapter, tmp_path / "x4", pad_rank=1)
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("user data")
    with pytest.raises(RoCoFTError, match="not empty.*--overwrite"):
        export_peft(adapter, taken)
    assert (taken / "keep.txt").read_text() == "user data"
    assert not any((tmp_path / f"x{i}").exists() for i in range(1, 5))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary dirs left
    with pytest.raises(RoCoFTError, match="not written by rocoft-llm"):  # --overwrite never takes user data
        export_peft(adapter, taken, overwrite=True)
    assert sorted(p.name for p in taken.iterdir()) == ["keep.txt"]
    (tmp_path / "empty").mkdir()
    export_peft(adapter, tmp_path / "empty")  # an empty directory is fine
    export_peft(adapter, tmp_path / "empty", overwrite=True)  # and so is replacing its own export
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {
        p.name for p in (tmp_path / "empty").iterdir()
    }


def test_entries_adapter_is_refused_with_the_reason(tmp_path):
    _, _, adapter = trained("llama", "entries", tmp_path, density=0.05)
    with pytest.raises(AdapterError, match=r"mode 'entries'.*no exact low-rank form.*rocoft-llm merge"):
        export_peft(adapter, tmp_path / "peft")
    assert not (tmp_path / "peft").exists()


def _fake_run(tmp_path, method, base_dir, random_init=False):
    run = tmp_path / f"run-{method}-{random_init}"
    run.mkdir()
    recipe = {"method": method, "model": {"name_or_path": str(base_dir), "random_init": random_init}}
    (run / "recipe.resolved.yaml").write_text(json.dumps(recipe))  # JSON is YAML
    return run


def test_cli_exports_a_run_and_refuses_lora_and_full_runs(tmp_path):
    base_dir, model, adapter = trained("llama", "column", tmp_path)
    run = _fake_run(tmp_path, "rocoft", base_dir)
    adapter.rename(run / "adapter")
    res = CliRunner().invoke(
        main, ["export-peft", str(run), "--out", str(tmp_path / "e"), "--pad-rank", "16"]
    )
    assert res.exit_code == 0, res.output
    assert "r=16" in res.output
    b = batch(seed=3)
    with torch.no_grad():
        want = model(**b).logits
    torch.testing.assert_close(peft_logits(base_dir, tmp_path / "e", b)["load_adapter"], want, **TOL)
    for method, words in (("lora", "already a peft LoRA"), ("full", "not a RoCoFT run")):
        res = CliRunner().invoke(
            main, ["export-peft", str(_fake_run(tmp_path, method, base_dir)), "--out", str(tmp_path / method)]
        )
        assert res.exit_code != 0 and words in res.output, res.output
        assert not (tmp_path / method).exists()
    random_run = _fake_run(tmp_path, "rocoft", base_dir, random_init=True)
    (random_run / "adapter").mkdir()
    res = CliRunner().invoke(main, ["export-peft", str(random_run), "--out", str(tmp_path / "r")])
    assert res.exit_code != 0 and "randomly initialised" in res.output, res.output


@pytest.mark.parametrize("mode", ["row", "column", "row_column"])
def test_export_of_a_bf16_base_merges_back_to_the_rocoft_weights(mode, tmp_path):
    """A bf16 base: peft's merge_and_unload (W0 + B A, rounded to bf16) gives the RoCoFT model's bf16
    weights bit for bit. The exported delta is (trained slice - W0) in fp32, and both ends are bf16
    values, so the sum rounds back to the trained value."""
    from peft import PeftModel

    base = tiny_model("llama").to(torch.bfloat16)
    base.save_pretrained(tmp_path / "base")
    model = apply_rocoft(copy.deepcopy(base), RoCoFTConfig(mode=mode, rank=2, selection="random"))
    with torch.no_grad():
        for p in trainable_parameters(model).values():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(0)).to(p.dtype))
    save_adapter(model, tmp_path / "adapter", base_model=str(tmp_path / "base"))
    want = merge_rocoft(model).state_dict()
    out = export_peft(tmp_path / "adapter", tmp_path / "peft")
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "base", dtype=torch.bfloat16)
    merged = PeftModel.from_pretrained(loaded, str(out)).merge_and_unload().state_dict()
    changed = [k for k in want if not torch.equal(want[k], base.state_dict()[k])]
    assert changed and all(merged[k].dtype == torch.bfloat16 for k in changed)
    for k in want:
        assert torch.equal(merged[k], want[k]), k
