"""`eval` checks its tasks before loading any model, and `--with-base` frees the base before the adapted
model loads; `method: full` saves gather on rank 0 only."""

import gc
import json
import weakref

import torch

import rocoft_llm.eval.identity as identity
import rocoft_llm.eval.run as eval_run
from tests.helpers.cli import assert_refused, run_cli


class Dummy:
    """Stands in for a loaded model (only its lifetime matters here)."""


def test_unknown_task_is_refused_before_a_model_loads(tmp_path, monkeypatch):
    def must_not_load(*a, **k):
        raise AssertionError("the model was loaded before the tasks were checked")

    monkeypatch.setattr(identity, "load_for_eval", must_not_load)
    result = run_cli("eval", "--model", tmp_path, "--tasks", "boolqq,gsm8k", "--llm-adapters-dir", tmp_path)
    assert_refused(result, "'boolqq'")
    missing = run_cli("eval", "--model", tmp_path, "--tasks", "gsm8k", "--llm-adapters-dir", tmp_path)
    assert_refused(missing, "gsm8k", "not found under")


def test_a_tokenizer_without_chat_template_is_refused_before_the_model_loads(tmp_path, monkeypatch):
    """eval/generate --template chat on a tokenizer that has none: the refusal comes from the tokenizer,
    seconds in, not after minutes of model loading (accuracy and NLL alike)."""
    from tests.helpers.recipes import TINY

    def must_not_load(*a, **k):
        raise AssertionError("the model was loaded before the chat template was checked")

    monkeypatch.setattr(identity, "load_model", must_not_load)
    tasks = tmp_path / "t.json"
    tasks.write_text(json.dumps([{"instruction": "1+1?", "input": "", "output": "2", "answer": "2"}]))
    for metric in ("accuracy", "nll"):
        result = run_cli(
            "eval", "--model", TINY / "llama", "--template", "chat", "--tasks", tasks,
            "--metric", metric, "--out", tmp_path / metric,
        )  # fmt: skip
        assert_refused(result, "has no chat template", "llm_adapters")


def test_with_base_frees_the_base_before_loading_the_adapted_model(tmp_path, monkeypatch):
    tasks = tmp_path / "t.json"
    tasks.write_text(json.dumps([{"instruction": "1+1?", "input": "", "output": "2", "answer": "2"}]))
    alive = []

    def fake_load(model, adapter, run, dtype, device, base_only, *options):
        gc.collect()
        alive.append([ref() is not None for ref in refs])
        m = Dummy()
        refs.append(weakref.ref(m))
        return m, Dummy(), {"model": "m"}, {}

    refs = []
    monkeypatch.setattr(identity, "load_for_eval", fake_load)
    monkeypatch.setattr(eval_run, "evaluate", lambda *a, **k: [])
    result = run_cli("eval", "--model", "m", "--tasks", tasks, "--with-base", "--out", tmp_path / "e")
    assert result.exit_code == 0, result.output
    assert alive == [[], [False]]  # when the adapted model loads, the base model is gone


def test_full_model_gather_keeps_copies_on_rank0_only(monkeypatch):
    import rocoft_llm.distributed as dist
    from rocoft_llm.rocoft import gather

    calls = []
    monkeypatch.setattr(gather, "full_tensor_copy", lambda t: calls.append(t) or t.clone())
    named = {f"w{i}": torch.ones(3) * i for i in range(4)}
    monkeypatch.setattr(dist, "is_main", lambda: False)
    assert gather.gather_on_main(named) == {} and len(calls) == 4  # every collective joined, nothing kept
    monkeypatch.setattr(dist, "is_main", lambda: True)
    kept = gather.gather_on_main(named)
    assert list(kept) == list(named) and all(torch.equal(kept[k], named[k]) for k in named)
