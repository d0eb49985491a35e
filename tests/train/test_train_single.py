"""Single-process training: loss goes down, accumulation equivalence, exact resume, run outputs,
methods, and the errors a user meets (non-empty output, changed recipe, corrupt checkpoint)."""

import json
import shutil

import pytest
import torch

from rocoft_llm.errors import RecipeError, RoCoFTError
from rocoft_llm.rocoft.adapter import read_adapter_config, read_adapter_tensors
from rocoft_llm.train.checkpoint import check_signature, resume_keys, resume_signature
from rocoft_llm.train.loop import Preempted
from rocoft_llm.train.run import train
from tests.helpers.recipes import STEPS, losses, tiny_recipe


def adapter(run):
    return read_adapter_tensors(run / "adapter")


def test_tiny_run_outputs_and_loss_goes_down(tmp_path):
    out = train(str(tiny_recipe(tmp_path, train={"max_steps": 30, "lr": 0.05})))
    for name in (
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
        "metrics.jsonl",
        "loss_curve.png",
        "summary.json",
        "recipe.resolved.yaml",
        "data_manifest.json",
    ):
        assert (out / name).is_file(), name
    curve = losses(out)
    assert len(curve) == 30 and sum(curve[-5:]) / 5 < sum(curve[:5]) / 5 - 0.05
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 30 and summary["trainable_parameters"] == 2 * 2 * (4 * 64 + 2 * 64 + 128)
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"loss", "lr", "grad_norm", "tokens_per_s", "peak_mem_gib"} <= set(record)
    assert read_adapter_config(out / "adapter")["metadata"]["data_manifest_key"]


def test_accumulation_equivalence_with_variable_lengths(tmp_path):
    """batch 4 x acc 2 == batch 8 x acc 1 == batch 1 x acc 8 (same global batches, token-normalised loss)."""
    runs = [train(str(tiny_recipe(tmp_path, f"m{m}", train={"micro_batch_size": m}))) for m in (8, 4, 1)]
    ref = adapter(runs[0])
    for run in runs[1:]:
        for name, t in adapter(run).items():
            torch.testing.assert_close(t, ref[name], rtol=1e-5, atol=1e-6)
        assert losses(run) == pytest.approx(losses(runs[0]), rel=1e-5)
    lengths = json.loads((runs[0] / "data_manifest.json").read_text())["token_lengths"]
    assert (
        lengths["min"] < lengths["max"]
    )  # variable-length examples, so padding differs per micro-batch size


@pytest.mark.parametrize(
    "rocoft",
    [{}, {"mode": "row_column"}, {"mode": "entries", "density": 0.05}],
    ids=["row", "row_column", "entries"],
)
def test_resume_is_bit_identical(tmp_path, monkeypatch, rocoft):
    straight = train(str(tiny_recipe(tmp_path, "straight", rocoft=rocoft)))
    recipe = tiny_recipe(tmp_path, "resumed", rocoft=rocoft)
    monkeypatch.setenv("ROCOFT_STOP_AT_STEP", str(STEPS // 2))
    with pytest.raises(Preempted, match="train.resume=auto"):
        train(str(recipe))
    monkeypatch.delenv("ROCOFT_STOP_AT_STEP")
    assert (tmp_path / "resumed" / "checkpoints" / f"step-{STEPS // 2:08d}" / "COMPLETE.json").is_file()
    resumed = train(str(recipe), ["train.resume=auto"])
    for name, t in adapter(straight).items():
        assert torch.equal(adapter(resumed)[name], t), name
    assert losses(resumed) == losses(straight)


def test_resume_refuses_changed_recipe_and_bad_checkpoints(tmp_path, monkeypatch):
    recipe = tiny_recipe(tmp_path, "r")
    monkeypatch.setenv("ROCOFT_STOP_AT_STEP", "2")
    with pytest.raises(Preempted):
        train(str(recipe))
    monkeypatch.delenv("ROCOFT_STOP_AT_STEP")
    with pytest.raises(RoCoFTError, match=r"break resume:\n  rocoft.rank: checkpoint 2 -> now 3"):
        train(str(recipe), ["train.resume=auto", "rocoft.rank=3"])
    ckpt = tmp_path / "r" / "checkpoints" / "step-00000002"
    partial = ckpt.parent / "step-00000001"
    shutil.copytree(ckpt, partial)
    (partial / "COMPLETE.json").unlink()
    with pytest.raises(RoCoFTError, match="partial"):
        train(str(recipe), [f"train.resume={partial}"])
    with pytest.raises(RoCoFTError, match="does not exist"):
        train(str(recipe), [f"train.resume={tmp_path / 'nope'}"])
    data = (ckpt / "trainable.safetensors").read_bytes()
    (ckpt / "trainable.safetensors").write_bytes(data[:-8] + b"\0" * 8)
    with pytest.raises(RoCoFTError, match="corrupt"):
        train(str(recipe), ["train.resume=auto"])


@pytest.mark.parametrize("backend", ["none", "ddp", "fsdp", "deepspeed"])
def test_world_size_binds_only_checkpoints_that_cannot_be_resharded(tmp_path, backend):
    """Every step sees the same global batch on any world size, so only DeepSpeed ZeRO checkpoints
    (partitioned for their world size) refuse another one; the error says which backends can."""
    recipe = {section: dict.fromkeys(keys, 0) for section, keys in resume_keys().items()}
    recipe["dist"]["backend"], recipe["method"] = backend, "rocoft"
    (tmp_path / "resume_signature.json").write_text(json.dumps(resume_signature(recipe, world=2)))
    if backend != "deepspeed":
        check_signature(tmp_path, recipe, world=1)
        check_signature(tmp_path, recipe, world=4)
    else:
        with pytest.raises(
            RoCoFTError, match=r"world_size: checkpoint 2 -> now 1(.|\n)*FSDP2, DDP and one-process"
        ):
            check_signature(tmp_path, recipe, world=1)


def test_a_changed_record_format_or_chat_template_refuses_resume(tmp_path):
    """The prompt format decides every token trained on: a checkpoint written under one format or chat
    template does not resume under another; a checkpoint from before these keys were signed resumes
    when the recipe keeps the values every earlier run had (format auto, no chat template file)."""
    recipe = {section: dict.fromkeys(keys, 0) for section, keys in resume_keys().items()}
    recipe["dist"]["backend"], recipe["method"] = "none", "rocoft"
    recipe["data"].update(format="auto", chat_template=None)
    old = resume_signature(recipe, world=1)
    del old["data.format"], old["data.chat_template"]
    (tmp_path / "resume_signature.json").write_text(json.dumps(old))
    check_signature(tmp_path, recipe, world=1)
    for key, value in (("format", "messages"), ("chat_template", "my.jinja")):
        changed = {**recipe, "data": {**recipe["data"], key: value}}
        with pytest.raises(RoCoFTError, match=rf"data.{key}: checkpoint .* -> now '{value}'"):
            check_signature(tmp_path, changed, world=1)


def test_non_empty_output_is_never_overwritten_silently(tmp_path):
    recipe = tiny_recipe(tmp_path, "o", train={"max_steps": 2})
    train(str(recipe))
    with pytest.raises(RoCoFTError, match="not empty; pass --overwrite"):
        train(str(recipe))
    train(str(recipe), overwrite=True)
    stamp = (tmp_path / "o" / "summary.json").stat().st_mtime_ns
    train(str(recipe), ["train.resume=auto"])  # a requeued job after completion: nothing to do
    assert (tmp_path / "o" / "summary.json").stat().st_mtime_ns == stamp


def test_bad_recipe_is_reported_before_anything_runs(tmp_path):
    recipe = tiny_recipe(tmp_path, "bad", train={"global_batch_size": 6, "micro_batch_size": 4, "lr": -1})
    with pytest.raises(RecipeError) as e:
        train(str(recipe))
    assert len(e.value.problems) == 2 and not (tmp_path / "bad").exists()


@pytest.mark.parametrize("method", ["lora", "full"])
def test_other_methods_share_the_loop(tmp_path, method):
    out = train(str(tiny_recipe(tmp_path, method, method=method, train={"max_steps": 3, "lr": 1e-3})))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == method and len(losses(out)) == 3
    assert (out / ("lora_adapter" if method == "lora" else "model")).is_dir()
    if method == "full":
        assert summary["trainable_parameters"] == summary["total_parameters"]


def test_wanda_selection_calibrates_on_training_batches(tmp_path):
    out = train(str(tiny_recipe(tmp_path, "w", rocoft={"selection": "max"}, train={"max_steps": 2})))
    assert read_adapter_config(out / "adapter")["selection"] == "max"


def test_merged_model_written_when_asked(tmp_path):
    from transformers import AutoConfig, AutoModelForCausalLM

    from tests.helpers.recipes import TINY

    base = tmp_path / "base"  # a base with real weights on disk (not random init)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(TINY / "llama")).save_pretrained(base)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(TINY / "llama" / name, base / name)
    w_base = (
        AutoModelForCausalLM.from_pretrained(base).model.layers[0].self_attn.q_proj.weight.detach().clone()
    )
    out = train(
        str(
            tiny_recipe(
                tmp_path,
                "m",
                model={"name_or_path": str(base), "random_init": False},
                train={"max_steps": 2, "lr": 0.05},
                output={"merge": True},
            )
        )
    )
    merged = AutoModelForCausalLM.from_pretrained(out / "merged")
    assert (out / "merged" / "rocoft_merge.json").is_file() and (out / "merged" / "tokenizer.json").is_file()
    assert not torch.equal(merged.model.layers[0].self_attn.q_proj.weight, w_base)


def test_tokenizer_larger_than_model_vocab_is_a_clear_error(tmp_path):
    from tests.helpers.recipes import TINY

    cfg = json.loads((TINY / "llama" / "config.json").read_text())
    small = tmp_path / "small"
    small.mkdir()
    (small / "config.json").write_text(json.dumps({**cfg, "vocab_size": 300}))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(TINY / "llama" / name, small / name)
    with pytest.raises(RoCoFTError, match="token id .* but the model's vocabulary has 300"):
        train(str(tiny_recipe(tmp_path, "v", model={"name_or_path": str(small)}, train={"max_steps": 2})))


def test_activation_checkpointing_and_keep_last_k(tmp_path):
    plain = train(str(tiny_recipe(tmp_path, "plain", train={"save_steps": 2, "save_total_limit": 2})))
    ckpt = train(str(tiny_recipe(tmp_path, "ckpt", train={"gradient_checkpointing": True})))
    assert losses(ckpt) == pytest.approx(losses(plain), rel=1e-5)
    for name, t in adapter(plain).items():
        torch.testing.assert_close(adapter(ckpt)[name], t, rtol=1e-5, atol=1e-6)
    kept = sorted(p.name for p in (plain / "checkpoints").iterdir())
    assert kept == [f"step-{STEPS - 2:08d}", f"step-{STEPS:08d}"]  # the last 2 complete checkpoints


def test_metrics_after_the_checkpoint_are_not_duplicated_on_resume(tmp_path, monkeypatch):
    recipe = tiny_recipe(tmp_path, "d", train={"save_steps": 2})
    monkeypatch.setenv("ROCOFT_STOP_AT_STEP", "3")  # checkpoints at 2 (save_steps) and 3 (the stop)
    with pytest.raises(Preempted):
        train(str(recipe))
    monkeypatch.delenv("ROCOFT_STOP_AT_STEP")
    shutil.rmtree(tmp_path / "d" / "checkpoints" / "step-00000003")  # as if killed before the stop's save
    train(str(recipe), ["train.resume=auto"])
    steps = [json.loads(line)["step"] for line in (tmp_path / "d" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, STEPS + 1))
