"""lm-eval's own ``hf`` model with ``pretrained=BASE,peft=DIR`` (a ``rocoft-llm export-peft`` directory)
scores an offline task exactly as ``rocoft-llm eval --harness lm-eval`` does on the same adapter."""

import json
import shutil

import pytest
import torch

from tests.helpers.paths import TINY


def _scores(sample: dict) -> list[float]:
    """The per-choice log-likelihoods of an lm-eval sample (in memory, or as written to JSON)."""
    return [
        float(r[0]) if isinstance(r, list | tuple) else float(r.strip("()").split(",")[0])
        for r in sample["filtered_resps"]
    ]


@pytest.mark.slow
def test_lm_eval_peft_argument_equals_the_package_harness(tmp_path):
    pytest.importorskip("lm_eval")
    import lm_eval
    from lm_eval.tasks import TaskManager
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from rocoft_llm import RoCoFTConfig, apply_rocoft, save_adapter, trainable_parameters
    from rocoft_llm.eval.generate import prepare_tokenizer
    from rocoft_llm.eval.harness import render_tasks, run_harness
    from rocoft_llm.eval.identity import load_for_eval
    from rocoft_llm.rocoft.peft_export import export_peft

    torch.manual_seed(0)
    base_dir = tmp_path / "base"
    tokenizer = AutoTokenizer.from_pretrained(TINY / "llama")
    # lm-eval's peft= path resizes the embeddings to len(tokenizer) when config.vocab_size differs (512 vs
    # 463 in the tiny config), which changes every log-likelihood: give the base an exact-size vocabulary
    config = AutoConfig.from_pretrained(TINY / "llama", vocab_size=len(tokenizer))
    AutoModelForCausalLM.from_config(config).save_pretrained(base_dir)
    tokenizer.save_pretrained(base_dir)
    model = apply_rocoft(AutoModelForCausalLM.from_pretrained(base_dir), RoCoFTConfig(mode="row", rank=2))
    with torch.no_grad():
        for p in trainable_parameters(model).values():  # a large update, so the answers change
            p.add_(0.5 * torch.randn(p.shape))
    save_adapter(model, tmp_path / "adapter", base_model=str(base_dir))
    peft_dir = export_peft(tmp_path / "adapter", tmp_path / "peft", pad_rank=8)
    (tmp_path / "data" / "boolq").mkdir(parents=True)
    shutil.copy(TINY / "data" / "truefalse" / "test.json", tmp_path / "data" / "boolq" / "test.json")

    # the package's path: `rocoft-llm eval --adapter DIR --harness lm-eval` (load, check, merge, HFLM)
    net, tok, identity, _ = load_for_eval(adapter=str(tmp_path / "adapter"))
    ours = run_harness(
        net,
        prepare_tokenizer(tok),
        ["boolq"],
        tmp_path / "ours",
        identity,
        str(tmp_path / "data"),
        limit=24,
        loglik_only=True,
    )
    ours_items = json.loads((tmp_path / "ours" / "lm_eval_samples.json").read_text())["rocoft_boolq_loglik"]

    # lm-eval on its own: --model hf --model_args pretrained=BASE,peft=DIR (same task file)
    (tmp_path / "tasks").mkdir()
    render_tasks(["boolq"], str(tmp_path / "data"), tmp_path / "tasks", limit=24, loglik_only=True)
    theirs = lm_eval.simple_evaluate(
        model="hf",
        model_args=f"pretrained={base_dir},peft={peft_dir},dtype=float32",
        tasks=["rocoft_boolq_loglik"],
        task_manager=TaskManager(include_path=str(tmp_path / "tasks"), include_defaults=False),
        bootstrap_iters=0,
        log_samples=True,
        device="cpu",
    )
    assert theirs["results"]["rocoft_boolq_loglik"]["acc,none"] == ours[0]["protocol"]["accuracy"]
    theirs_items = sorted(theirs["samples"]["rocoft_boolq_loglik"], key=lambda s: s["doc_id"])
    ours_items = sorted(ours_items, key=lambda s: s["doc_id"])
    assert len(theirs_items) == len(ours_items) == 24
    for a, b in zip(theirs_items, ours_items):
        assert a["acc"] == b["acc"]
        assert _scores(a) == pytest.approx(_scores(b), abs=1e-4)
    ours_scores = [_scores(b) for b in ours_items]
    run_harness(  # the check can fail: the adapter moves the log-likelihoods that are compared
        AutoModelForCausalLM.from_pretrained(base_dir).eval(),
        prepare_tokenizer(tok),
        ["boolq"],
        tmp_path / "base_eval",
        {},
        str(tmp_path / "data"),
        limit=24,
        loglik_only=True,
    )
    base_items = json.loads((tmp_path / "base_eval" / "lm_eval_samples.json").read_text())
    base_scores = [_scores(s) for s in sorted(base_items["rocoft_boolq_loglik"], key=lambda s: s["doc_id"])]
    assert max(abs(x - y) for a, b in zip(base_scores, ours_scores) for x, y in zip(a, b)) > 0.1
