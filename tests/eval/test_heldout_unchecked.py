"""Held-out evaluation of a run trained WITHOUT data.llm_adapters_dir (its data manifest checked no
test set: ``test_sets_checked: []``) on a file that contains test items: the items are found by
comparing the run's training questions with the task's items at eval time and excluded, never
reported as "no overlap". A run whose training data cannot be read now says "not checked"."""

import json

from rocoft_llm.eval import run as eval_run
from rocoft_llm.eval.generate import Generation
from tests.helpers.cli import run_cli
from tests.helpers.paths import TINY
from tests.helpers.recipes import tiny_recipe

ITEMS = [
    {
        "instruction": f"Is {i} an even number?\n\nAnswer format: true/false",
        "input": "",
        "output": f"the correct answer is {str(i % 2 == 0).lower()}",
        "answer": str(i % 2 == 0).lower(),
    }
    for i in range(20)
]


class _Model:
    config = type("C", (), {"pad_token_id": 0})()


class _Tok:
    padding_side = "right"
    pad_token_id = 0


def _eval(monkeypatch, run, tests, out):
    prompts = []

    def fake_generate(model, tokenizer, batch, *a, **k):
        prompts.extend(batch)
        return [Generation("the correct answer is true", "", 5, False) for _ in batch]

    monkeypatch.setattr(eval_run, "generate", fake_generate)
    monkeypatch.setattr(
        "rocoft_llm.eval.identity.load_for_eval", lambda *a, **k: (_Model(), _Tok(), {"model": "x"}, {})
    )
    result = run_cli("eval", "--run", run, "--tasks", "boolq", "--llm-adapters-dir", tests, "--out", out)
    assert result.exit_code == 0, result.output
    (summary,) = json.loads((out / "adapted" / "summary.json").read_text())
    return summary, prompts


def test_test_items_in_training_data_are_found_at_eval_time(tmp_path, monkeypatch):
    monkeypatch.delenv("ROCOFT_LLM_ADAPTERS_DIR", raising=False)
    train = tmp_path / "train.json"
    train.write_text(json.dumps(json.loads((TINY / "data" / "train.json").read_text()) + ITEMS[:6]))
    recipe = tiny_recipe(
        tmp_path, "run", data={"train": [str(train)]}, train={"max_steps": 1, "warmup_steps": 0}
    )
    trained = run_cli("train", recipe)
    assert trained.exit_code == 0, trained.output
    run = tmp_path / "run"
    manifest = json.loads((run / "data_manifest.json").read_text())
    assert manifest["contamination"]["test_sets_checked"] == []  # prepare checked nothing
    (tmp_path / "tests" / "boolq").mkdir(parents=True)
    (tmp_path / "tests" / "boolq" / "test.json").write_text(json.dumps(ITEMS))

    summary, prompts = _eval(monkeypatch, run, tmp_path / "tests", tmp_path / "ev")
    assert summary["evaluation_mode"] == "held-out"
    assert summary["excluded_seen_in_training"] == 6 and summary["n"] == 14
    assert "shares 6 questions with boolq" in summary["evaluation_mode_reason"]
    assert not any(f"Is {i} an even" in p for p in prompts for i in range(6))

    train.write_text(json.dumps(json.loads((TINY / "data" / "train.json").read_text())))  # no test items
    manifest["sources"][0]["files"] = {}  # (the changed file is not what this case is about)
    (run / "data_manifest.json").write_text(json.dumps(manifest))
    summary, _ = _eval(monkeypatch, run, tmp_path / "tests", tmp_path / "ev2")
    assert summary["evaluation_mode"] == "all" and summary["seen_in_training"] == 0
    assert "training questions compared with the 20 items at eval time" in summary["evaluation_mode_reason"]

    train.unlink()  # the training data cannot be read now: said plainly, not "no overlap"
    summary, _ = _eval(monkeypatch, run, tmp_path / "tests", tmp_path / "ev3")
    assert summary["evaluation_mode"] == "all" and summary["seen_in_training"] is None
    assert summary["evaluation_mode_reason"].startswith("not checked: the run's training data cannot be read")


def test_chat_training_data_is_compared_by_its_first_user_turn(tmp_path):
    """A run trained on OpenAI `messages` and ShareGPT records saw the questions of their first user
    turns: the held-out check keys them as the file split and contamination report do."""
    import json

    from rocoft_llm.data.heldout_split import normalise_question
    from rocoft_llm.eval.heldout import training_questions

    messages = tmp_path / "chat.jsonl"
    messages.write_text(
        json.dumps(
            {"messages": [{"role": "user", "content": "Is 7 even?"}, {"role": "assistant", "content": "no"}]}
        )
        + "\n"
    )
    sharegpt = tmp_path / "sharegpt.json"
    sharegpt.write_text(
        json.dumps(
            [{"conversations": [{"from": "human", "value": "Is 9 odd?"}, {"from": "gpt", "value": "yes"}]}]
        )
    )
    seen = training_questions({"data": {"train": [str(messages), str(sharegpt)]}}, {})
    assert seen == {normalise_question("Is 7 even?"), normalise_question("Is 9 odd?")}
