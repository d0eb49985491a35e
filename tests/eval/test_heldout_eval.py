"""Held-out evaluation: with a run whose training data overlaps a test set, the items seen in
training are excluded by default and counted; --score-all scores them all; the summary says which.
Also: split tasks in eval, option-text parsing for log-likelihood, majority/chance baselines."""

import json

import pytest
import yaml
from click.testing import CliRunner

from rocoft_llm.cli import main
from rocoft_llm.eval import run as eval_run
from rocoft_llm.eval.choice_texts import parse_options
from rocoft_llm.eval.generate import Generation
from rocoft_llm.eval.heldout import policy_for_run, select_items
from rocoft_llm.eval.summaries import balanced_accuracy, baselines
from rocoft_llm.eval.tasks import resolve_task

ITEMS = [
    {
        "instruction": f"Q{i}: is {i} even?\n\nAnswer format: true/false",
        "input": "",
        "output": f"the correct answer is {str(i % 2 == 0).lower()}",
        "answer": str(i % 2 == 0).lower(),
    }
    for i in range(20)
]


@pytest.fixture
def run_with_overlap(tmp_path):
    """A training run's directory whose training file holds 6 of the 20 boolq test questions."""
    (tmp_path / "data" / "boolq").mkdir(parents=True)
    (tmp_path / "data" / "boolq" / "test.json").write_text(json.dumps(ITEMS))
    train = tmp_path / "train.json"
    train.write_text(
        json.dumps(
            [
                dict(r, instruction=r["instruction"].replace("Q", "q").replace(" is ", "  is\t"))
                for r in ITEMS[:6]
            ]
        )
    )
    run = tmp_path / "run"
    run.mkdir()
    (run / "recipe.resolved.yaml").write_text(
        yaml.safe_dump(
            {
                "method": "full",
                "model": {"name_or_path": "x", "random_init": True, "tokenizer": None},
                "train": {"seed": 0},
                "data": {"train": [str(train)], "template": "alpaca_clean", "source": "llm_adapters"},
                "eval": {},
            }
        )
    )
    (run / "data_manifest.json").write_text(
        json.dumps(
            {
                "sources": [{"name": "train", "files": {}}],
                "contamination": {"exact_overlap": {"train": {"boolq": 6}}, "flagged_test_sets": {}},
            }
        )
    )
    return tmp_path, run


def test_overlap_is_excluded_by_default_and_counted(run_with_overlap, monkeypatch):
    tmp, run = run_with_overlap
    task = resolve_task("boolq", str(tmp / "data"))
    items, mode = select_items(task, policy_for_run(str(run), score_all=False))
    assert items == list(range(6, 20))
    assert mode["evaluation_mode"] == "held-out" and mode["excluded_seen_in_training"] == 6
    items, mode = select_items(task, policy_for_run(str(run), score_all=True))
    assert items == list(range(20)) and mode["evaluation_mode"] == "all" and mode["seen_in_training"] == 6
    items, mode = select_items(task, policy_for_run(None, score_all=False))
    assert len(items) == 20 and "training data unknown" in mode["evaluation_mode_reason"]

    seen = []

    def fake_generate(model, tokenizer, prompts, *a, **k):
        seen.extend(prompts)
        return [Generation("the correct answer is true", "", 5, False) for _ in prompts]

    class Model:
        config = type("C", (), {"pad_token_id": 0})()

    monkeypatch.setattr(eval_run, "generate", fake_generate)
    monkeypatch.setattr(
        "rocoft_llm.eval.identity.load_for_eval", lambda *a, **k: (Model(), _Tok(), {"model": "x"}, {})
    )
    result = CliRunner().invoke(
        main,
        [
            "eval",
            "--run",
            str(run),
            "--tasks",
            "boolq",
            "--llm-adapters-dir",
            str(tmp / "data"),
            "--out",
            str(tmp / "ev"),
        ],
    )
    assert result.exit_code == 0, result.output
    (s,) = json.loads((tmp / "ev" / "adapted" / "summary.json").read_text())
    assert s["n"] == 14 and s["excluded_seen_in_training"] == 6 and s["evaluation_mode"] == "held-out"
    assert len(seen) == 14 and not any(f"Q{i}:" in p for p in seen for i in range(6))
    assert "14 (held-out, 6 seen in training excluded)" in result.output
    assert s["baselines"]["majority_rate"] == pytest.approx(7 / 14) and s["top_prediction"] == {
        "pred": "true",
        "count": 14,
    }
    # "true" x14 is a constant answer: balanced accuracy 1/2 (= the constant level), whatever the prior
    assert s["balanced"]["accuracy"] == pytest.approx(0.5) and s["balanced"]["constant_answer"] == 0.5
    assert "any constant answer: 50.0%" not in result.output  # no base here: the single-model table
    assert "balanced 50.0% (any constant answer 50.0%)" in result.output


def test_balanced_accuracy_separates_task_skill_from_the_prior():
    """A constant answer scores 1/K on balanced accuracy at any label share; only answers that
    follow the item do better. Compared with a hand count."""
    rows = [{"answer": "true", "protocol_correct": True}] * 9 + [
        {"answer": "false", "protocol_correct": False}
    ]
    b = balanced_accuracy(rows)  # "true" x10: plain accuracy 90%, balanced 50%
    assert b["accuracy"] == pytest.approx(0.5) and b["constant_answer"] == pytest.approx(0.5)
    assert b["per_label"] == {"false": {"correct": 0, "n": 1}, "true": {"correct": 9, "n": 9}}
    rows = (
        [{"answer": "a1", "protocol_correct": True}] * 3
        + [{"answer": "a1", "protocol_correct": False}]
        + [{"answer": "a2", "protocol_correct": True}]
        + [{"answer": "a3", "protocol_correct": False}] * 2
    )
    b = balanced_accuracy(rows)  # recalls 3/4, 1/1, 0/2
    assert b["accuracy"] == pytest.approx((0.75 + 1 + 0) / 3) and b["constant_answer"] == pytest.approx(1 / 3)
    assert balanced_accuracy([]) is None


class _Tok:
    padding_side = "right"
    pad_token_id = 0


def test_changed_training_file_is_refused(run_with_overlap):
    tmp, run = run_with_overlap
    manifest = json.loads((run / "data_manifest.json").read_text())
    manifest["sources"][0]["files"] = {str(tmp / "train.json"): "0" * 64}
    (run / "data_manifest.json").write_text(json.dumps(manifest))
    from rocoft_llm.errors import RoCoFTError

    with pytest.raises(RoCoFTError, match="changed since the run trained on it"):
        policy_for_run(str(run), score_all=False)
    assert policy_for_run(str(run), score_all=True).seen is None  # --score-all still works


def test_split_task_and_option_parsing(tmp_path):
    (tmp_path / "boolq").mkdir()
    (tmp_path / "boolq" / "test.json").write_text(json.dumps(ITEMS))
    held, train = resolve_task("boolq:heldout", str(tmp_path)), resolve_task("boolq:train", str(tmp_path))
    assert (
        held.id == "boolq:heldout" and held.kind == "option" and len(held.records) + len(train.records) == 20
    )
    arc = (
        "Please choose the correct answer to the question: Which is a gas?\n\nAnswer1: ice Answer2: steam "
        "Answer3: wood Answer4: salt\n\nAnswer format: answer1/answer2/answer3/answer4"
    )
    assert parse_options(arc, "answer2") == {
        "question": "Which is a gas?",
        "choices": ["ice", "steam", "wood", "salt"],
        "gold": 1,
    }
    piqa = (
        "Please choose the correct solution to the question: open a jar\n\nSolution1: twist the lid\n\n"
        "Solution2: eat the lid\n\nAnswer format: solution1/solution2"
    )
    assert parse_options(piqa, "solution1")["choices"] == ["twist the lid", "eat the lid"]
    b = baselines(held, [ITEMS[0], ITEMS[1], ITEMS[2]])
    assert b == {
        "majority_label": "true",
        "majority_rate": pytest.approx(2 / 3),
        "chance_rate": pytest.approx(0.5),
    }
