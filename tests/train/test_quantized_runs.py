"""Runs on a bitsandbytes-quantized base (model.quantize) on CPU, with the tiny Llama saved to disk:
the trainable count and optimizer state equal the full-precision run's, resume is bit-identical, the
adapter records the quantization, and every product (eval loading, merge, export-peft) is exact with
respect to the dequantized base; LoRA takes peft's QLoRA path."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

pytest.importorskip("bitsandbytes")

from rocoft_llm.errors import AdapterError  # noqa: E402
from rocoft_llm.eval.identity import load_for_eval  # noqa: E402
from rocoft_llm.model_loading import load_model  # noqa: E402
from rocoft_llm.rocoft.adapter import load_adapter, read_adapter_config, read_adapter_tensors  # noqa: E402
from rocoft_llm.rocoft.merge_dir import merge_to_directory  # noqa: E402
from rocoft_llm.rocoft.peft_export import export_peft  # noqa: E402
from rocoft_llm.rocoft.quantized import QuantizedRoCoFTLinear, quantize_roundtrip  # noqa: E402
from rocoft_llm.train.loop import Preempted  # noqa: E402
from rocoft_llm.train.run import train  # noqa: E402
from tests.helpers.quantized import packed_nf4_copy  # noqa: E402
from tests.helpers.recipes import STEPS, TINY, losses, tiny_recipe  # noqa: E402

pytestmark = pytest.mark.slow
COLUMNS = {"mode": "column", "rank": 2, "selection": "random", "seed": 3}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """The tiny Llama with seeded random weights, saved as a plain HF directory with its tokenizer."""
    path = tmp_path_factory.mktemp("base") / "llama"
    load_model(str(TINY / "llama"), dtype="float32", random_init=True, seed=0).save_pretrained(path)
    for f in (TINY / "llama").glob("tokenizer*"):
        shutil.copy(f, path / f.name)
    return path


@pytest.fixture(scope="module")
def nf4_run(tmp_path_factory, base):
    """One nf4 RoCoFT columns run (checkpoint at the end) shared by the tests that only read it."""
    tmp = tmp_path_factory.mktemp("nf4")
    return train(str(recipe(tmp, base, "straight", train={"save_steps": STEPS})))


def recipe(tmp_path, base, name, quantize="nf4", **sections):
    model = {"name_or_path": str(base), "random_init": False, "quantize": quantize}
    sections.setdefault("rocoft", COLUMNS)
    return tiny_recipe(tmp_path, name, model=model, **sections)


def optimizer_shapes(run):
    state = torch.load(sorted((run / "checkpoints").iterdir())[-1] / "optimizer.pt", weights_only=True)
    return {
        (k, name): tuple(t.shape)
        for k, s in state["optimizer"]["state"].items()
        for name, t in s.items()
        if name != "step"
    }


def test_quantized_run_trains_what_the_full_precision_run_trains_and_resumes_bitwise(
    tmp_path, base, nf4_run, monkeypatch
):
    full = train(str(recipe(tmp_path, base, "full", quantize=None, train={"save_steps": STEPS})))
    straight = nf4_run
    a_full, a_q = read_adapter_tensors(full / "adapter"), read_adapter_tensors(straight / "adapter")
    assert {k: v.shape for k, v in a_full.items()} == {k: v.shape for k, v in a_q.items()}
    assert optimizer_shapes(full) == optimizer_shapes(straight)
    s_full, s_q = (json.loads((r / "summary.json").read_text()) for r in (full, straight))
    assert s_full["trainable_parameters"] == s_q["trainable_parameters"]
    info = read_adapter_config(straight / "adapter")["quantization"]
    assert info["type"] == "nf4" and info["dtype"] == "float32" and len(info["modules"]) == 14
    assert read_adapter_config(full / "adapter")["quantization"] is None
    assert losses(straight) != losses(full)  # the base really was quantized

    resumed = recipe(tmp_path, base, "resumed", train={"save_steps": STEPS})
    monkeypatch.setenv("ROCOFT_STOP_AT_STEP", str(STEPS // 2))
    with pytest.raises(Preempted):
        train(str(resumed))
    monkeypatch.delenv("ROCOFT_STOP_AT_STEP")
    resumed = train(str(resumed), ["train.resume=auto"])
    for name, t in read_adapter_tensors(resumed / "adapter").items():
        assert torch.equal(t, a_q[name]), name
    assert losses(resumed) == losses(straight)
    with pytest.raises(Exception, match="model.quantize: checkpoint 'nf4' -> now None"):
        train(str(recipe(tmp_path, base, "resumed", quantize=None)), ["train.resume=auto"])


def test_products_are_exact_against_the_dequantized_base(tmp_path, base, nf4_run):
    run = nf4_run
    net, _, identity, _ = load_for_eval(run=str(run))
    assert identity["quantize"] == "nf4"
    ids = torch.tensor([[1, 5, 9, 30, 7, 2]])
    with torch.no_grad():
        evaluated = net(ids).logits
    # merge: every quantized linear is written as its dequantized weight, the slices on top
    merged_dir = merge_to_directory(str(base), run / "adapter", tmp_path / "merged", progress=False)
    assert json.loads((merged_dir / "rocoft_merge.json").read_text())["dequantized"] == {
        "from": "nf4",
        "tensors": 14,
    }
    merged = load_model(str(merged_dir), dtype="float32")
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, evaluated, rtol=1e-5, atol=1e-5)
    plain = load_model(str(base), dtype="float32")
    with torch.no_grad():  # the merged model is not the fp32 base plus the update
        assert (plain(ids).logits - evaluated).abs().max() > 1e-3
    # export-peft: the LoRA's delta is taken against the dequantized base weight
    peft_dir = export_peft(run / "adapter", tmp_path / "peft")
    lora = load_file(str(peft_dir / "adapter_model.safetensors"))
    name = "model.layers.0.self_attn.q_proj"
    delta = lora[f"base_model.model.{name}.lora_B.weight"] @ lora[f"base_model.model.{name}.lora_A.weight"]
    w0 = quantize_roundtrip(plain.get_submodule(name).weight, "nf4", "float32")
    torch.testing.assert_close(w0 + delta, merged.get_submodule(name).weight, rtol=0, atol=1e-6)
    assert delta.abs().max() > 0


def test_adapter_refuses_a_base_of_other_storage(base, nf4_run):
    run = nf4_run
    with pytest.raises(
        AdapterError, match="trained on an nf4-quantized base .* load the base with quantize nf4"
    ):
        load_adapter(load_model(str(base), dtype="float32"), run / "adapter")
    fp4 = load_model(str(base), dtype="float32", quantize="fp4")
    with pytest.raises(AdapterError, match="this base is quantized fp4"):
        load_adapter(fp4, run / "adapter")
    nf4 = load_adapter(load_model(str(base), dtype="float32", quantize="nf4"), run / "adapter")
    assert any(isinstance(m, QuantizedRoCoFTLinear) for m in nf4.modules())


def test_merge_refuses_an_already_quantized_checkpoint(tmp_path, base, nf4_run):
    run = nf4_run
    packed = packed_nf4_copy(base, tmp_path / "packed")
    with pytest.raises(
        AdapterError, match="is a quantized checkpoint \\(nf4\\).*Pass the full-precision base"
    ):
        merge_to_directory(str(packed), run / "adapter", tmp_path / "merged", progress=False)
    with pytest.raises(AdapterError, match="is a quantized checkpoint"):
        export_peft(run / "adapter", tmp_path / "peft", base=str(packed))
    assert not (tmp_path / "merged").exists() and not (tmp_path / "peft").exists()


def test_qlora_run_trains_and_evaluates_unmerged_on_the_quantized_base(tmp_path, base):
    run = train(str(recipe(tmp_path, base, "lora", method="lora", train={"lr": 0.01})))
    assert json.loads((run / "lora_adapter" / "rocoft_quantization.json").read_text()) == {"type": "nf4"}
    curve = losses(run)
    assert curve[-1] < curve[0]
    net, _, identity, _ = load_for_eval(adapter=str(run / "lora_adapter"))
    assert identity["quantize"] == "nf4"
    assert type(net).__name__ == "PeftModelForCausalLM"  # not merged into (and re-quantized) 4-bit weights


@pytest.mark.distributed
def test_ddp_on_a_quantized_base_matches_one_process(tmp_path, base):
    """2 CPU ranks (gloo), each holding the nf4 base: the same slices and losses as one process on the
    same global batches."""
    from tests.helpers.recipes import assert_same_run
    from tests.helpers.torchrun import torchrun

    micro = {"micro_batch_size": 2}
    single = train(str(recipe(tmp_path, base, "single", train=micro)))
    torchrun(
        "-m",
        "rocoft_llm.cli",
        "train",
        recipe(tmp_path, base, "ddp", train=micro, dist={"backend": "ddp"}),
        timeout=400,
    )
    assert_same_run(tmp_path / "ddp", single)
    assert json.loads((tmp_path / "ddp" / "summary.json").read_text())["world_size"] == 2


def test_export_of_a_quantized_adapter_evaluates_on_the_quantized_base(tmp_path, nf4_run):
    """export-peft records the storage beside the LoRA, so `eval --adapter EXPORT` is the trained model."""
    export = export_peft(nf4_run / "adapter", tmp_path / "peft")
    assert json.loads((export / "rocoft_quantization.json").read_text()) == {"type": "nf4"}
    exported, _, identity, _ = load_for_eval(adapter=str(export))
    trained, _, _, _ = load_for_eval(run=str(nf4_run))
    assert identity["quantize"] == "nf4"
    ids = torch.tensor([[1, 5, 9, 30, 7, 2]])
    with torch.no_grad():
        torch.testing.assert_close(exported(ids).logits, trained(ids).logits, rtol=1e-5, atol=1e-5)


def test_full_precision_base_serves_the_exported_lora_on_the_unquantized_base(tmp_path, base, nf4_run):
    """eval --full-precision-base: the export of an nf4-trained adapter on the fp32 base equals the
    fp32 base plus the deltas (the documented quantization-error difference, not the trained model);
    a RoCoFT adapter itself and a run trained unquantized are refused with the way out."""
    peft_dir = export_peft(nf4_run / "adapter", tmp_path / "peft")
    ids = torch.tensor([[1, 5, 9, 30, 7, 2]])
    served, _, identity, _ = load_for_eval(adapter=str(peft_dir), full_precision_base=True)
    assert identity["quantize"] is None and identity["trained_on_quantize"] == "nf4"
    trained, _, _, _ = load_for_eval(run=str(nf4_run))
    reference = load_model(str(base), dtype="float32")
    lora = load_file(str(peft_dir / "adapter_model.safetensors"))
    patched = 0
    with torch.no_grad():
        for name, module in reference.named_modules():
            key = f"base_model.model.{name}.lora_B.weight"
            if key in lora:
                module.weight += lora[key] @ lora[key.replace("lora_B", "lora_A")]  # alpha == r: scale 1
                patched += 1
        assert patched == 14  # every adapted linear of the tiny Llama
        torch.testing.assert_close(served(ids).logits, reference(ids).logits, rtol=1e-5, atol=1e-5)
        assert (served(ids).logits - trained(ids).logits).abs().max() > 1e-3  # the quantization error
    with pytest.raises(Exception, match="is a RoCoFT adapter.*export-peft"):
        load_for_eval(run=str(nf4_run), full_precision_base=True)
    full = train(str(recipe(tmp_path, base, "unquantized", quantize=None)))
    with pytest.raises(Exception, match="was not trained on a quantized base"):
        load_for_eval(run=str(full), full_precision_base=True)
