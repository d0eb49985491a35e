"""The generation path: batched == one at a time, gold never in the prompt, an overfitted tiny model
scores 100%, model identity checks, re-scoring, and 2-rank data-parallel eval == 1 rank."""

import json

import pytest
import torch
from click.testing import CliRunner

from rocoft_llm.cli import main
from rocoft_llm.data.templates import get_template
from rocoft_llm.errors import AdapterError
from rocoft_llm.eval import run as eval_run
from rocoft_llm.eval.generate import generate, prepare_tokenizer
from rocoft_llm.eval.identity import load_for_eval
from rocoft_llm.eval.run import Decoding, evaluate, evaluate_task, rescore
from rocoft_llm.eval.tasks import resolve_task
from tests.helpers.models import tiny_model
from tests.helpers.paths import LLM_ADAPTERS_TEST_SETS, REPO
from tests.helpers.torchrun import torchrun

TINY = REPO / "recipes" / "tiny"
TASKS = LLM_ADAPTERS_TEST_SETS


@pytest.fixture(scope="module")
def tiny_tok():
    from transformers import AutoTokenizer

    return prepare_tokenizer(AutoTokenizer.from_pretrained(TINY / "llama"))


def tiny_llama(dtype=torch.float64):
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(TINY / "llama")).to(dtype).eval()


def test_batched_generation_equals_one_at_a_time(tiny_tok):
    model = tiny_llama()
    tmpl = get_template("llm_adapters")
    records = json.loads((TINY / "data" / "train.json").read_text())[:10]
    prompts = [tmpl.render_prompt(r["instruction"]) for r in records]  # different lengths -> left padding
    assert len({len(tiny_tok(p)["input_ids"]) for p in prompts}) > 1
    batched = generate(model, tiny_tok, prompts, batch_size=8, num_beams=1, max_new_tokens=12)
    single = [
        generate(model, tiny_tok, [p], batch_size=1, num_beams=1, max_new_tokens=12)[0] for p in prompts
    ]
    assert [g.raw for g in batched] == [g.raw for g in single]
    assert all(g.new_tokens > 0 for g in batched)


def test_gold_never_reaches_the_prompt(shared_data, tiny_tok, monkeypatch):
    seen = []

    def fake_generate(model, tokenizer, prompts, *a, **k):
        seen.extend(prompts)
        from rocoft_llm.eval.generate import Generation

        return [Generation("", "", 0, False) for _ in prompts]

    monkeypatch.setattr(eval_run, "generate", fake_generate)
    tmpl = get_template("llm_adapters")
    for task_id in TASKS:
        task = resolve_task(task_id, str(shared_data))
        seen.clear()
        evaluate_task(None, tiny_tok, task, Decoding(num_beams=1), limit=25, progress=False)
        assert len(seen) == 25, task_id
        for prompt, record in zip(seen, task.records):
            assert prompt == tmpl.render_prompt(record["instruction"])
            if record["output"].strip():  # mawps has empty outputs
                assert record["output"].strip() not in prompt, (
                    task_id
                )  # the rationale / "the correct answer is X"
            assert "the correct answer is" not in prompt
            assert "### Response:\n" == prompt[-len("### Response:\n") :]


OVERFIT = [
    {
        "instruction": f"Please answer the following question with true or false, question: is {a} greater than "
        f"{b}?\n\nAnswer format: true/false",
        "input": "",
        "output": f"the correct answer is {'true' if a > b else 'false'}",
        "answer": "true" if a > b else "false",
    }
    for a, b in [
        (3, 9),
        (12, 4),
        (7, 1),
        (2, 8),
        (15, 6),
        (5, 11),
        (9, 3),
        (1, 13),
        (14, 2),
        (6, 10),
        (18, 7),
        (4, 16),
        (11, 5),
        (8, 17),
        (13, 3),
        (2, 19),
        (16, 1),
        (7, 12),
        (10, 4),
        (3, 14),
    ]
] + [
    {
        "instruction": f"Tom has {a} apples and gets {b} more. How many apples does he have?",
        "input": "",
        "output": f"{a} + {b} = {a + b}. The answer is {a + b}",
        "answer": str(a + b),
    }
    for a, b in [
        (1, 2),
        (3, 4),
        (5, 6),
        (7, 8),
        (2, 9),
        (4, 4),
        (6, 1),
        (8, 3),
        (9, 9),
        (3, 7),
        (12, 5),
        (11, 2),
        (10, 10),
        (14, 3),
        (13, 6),
        (5, 15),
        (2, 17),
        (16, 4),
        (7, 13),
        (19, 1),
    ]
]


@pytest.fixture(scope="module")
def overfit_run(tmp_path_factory):
    """A tiny model trained to memorise 20 BoolQ-style and 20 GSM8K-style items."""
    from rocoft_llm.train.run import train
    from tests.helpers.recipes import overfit_recipe

    tmp = tmp_path_factory.mktemp("overfit")
    data = tmp / "items.json"
    data.write_text(json.dumps(OVERFIT))
    (tmp / "boolq_like").mkdir()
    (tmp / "boolq_like" / "test.json").write_text(json.dumps(OVERFIT[:20]))
    (tmp / "gsm8k_like").mkdir()
    (tmp / "gsm8k_like" / "test.json").write_text(json.dumps(OVERFIT[20:]))
    return tmp, train(str(overfit_recipe(tmp, data, steps=400)))


@pytest.mark.slow
def test_overfitted_model_scores_100_percent(overfit_run):
    tmp, run = overfit_run
    model, tok, identity, flags = load_for_eval(run=str(run))
    assert identity["method"] == "full"
    tasks = [str(tmp / "boolq_like" / "test.json"), str(tmp / "gsm8k_like" / "test.json")]
    summaries = evaluate(
        model, tok, tasks, Decoding(num_beams=1, template="alpaca_clean"), tmp / "eval", identity, flags
    )
    for s in summaries:
        assert s["protocol"]["accuracy"] == 1.0 and s["strict"]["accuracy"] == 1.0, s
        assert s["n"] == 20
    rows = [json.loads(line) for line in (tmp / "eval" / "gsm8k_like.jsonl").read_text().splitlines()]
    assert all(r["protocol_correct"] and r["response"].endswith(f"The answer is {r['answer']}") for r in rows)


def test_adapter_on_the_wrong_base_is_refused(tmp_path):
    from rocoft_llm import RoCoFTConfig, apply_rocoft, save_adapter

    model = apply_rocoft(tiny_model("llama"), RoCoFTConfig())
    save_adapter(model, tmp_path / "a")
    other = tmp_path / "other"
    tiny_model("llama", seed=5).save_pretrained(other)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (other / name).write_bytes((TINY / "llama" / name).read_bytes())
    with pytest.raises(AdapterError, match="differ from the model it was trained on"):
        load_for_eval(model=str(other), adapter=str(tmp_path / "a"))


def test_rescoring_other_tools_predictions(tmp_path):
    test = tmp_path / "gsm8k" / "test.json"
    test.parent.mkdir()
    test.write_text(
        json.dumps(
            [{"instruction": "q", "input": "", "output": "o", "answer": a} for a in ("4", "10.0", "7")]
        )
    )
    preds = tmp_path / "preds.jsonl"
    preds.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {"index": 0, "response": "2+2 = 4"},
                {"index": 1, "response": "The answer is 10"},
                {"index": 2, "response": "eight"},
            ]
        )
    )
    summary = rescore("gsm8k", preds, str(test))
    assert summary["protocol"]["correct"] == 2 and summary["strict"]["correct"] == 1 and summary["n"] == 3
    result = CliRunner().invoke(
        main, ["score", "--task", "gsm8k", "--predictions", str(preds), "--test-file", str(test)]
    )
    assert result.exit_code == 0 and "66.7%" in result.output
    # a task id scores a file by the catalog's rule, wherever the file lives and whatever it is called
    plain = tmp_path / "some_export.json"
    plain.write_text(
        json.dumps(
            [{"instruction": "q?", "input": "", "output": "o", "answer": a} for a in ("true", "false")]
        )
    )
    preds.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {"index": 0, "response": "the correct answer is true"},
                {"index": 1, "response": "true"},
            ]
        )
    )
    summary = rescore("boolq", preds, str(plain))
    assert summary["task"] == "boolq" and summary["protocol"]["correct"] == 1
    preds.write_text(json.dumps({"response": "x"}))
    bad = CliRunner().invoke(
        main, ["score", "--task", "gsm8k", "--predictions", str(preds), "--test-file", str(test)]
    )
    assert bad.exit_code == 2 and "neither 'answer' nor 'index'" in bad.output


@pytest.mark.distributed
@pytest.mark.slow
def test_two_rank_eval_equals_one_rank(tmp_path):
    model_dir = tmp_path / "m"
    tiny_llama(torch.float32).save_pretrained(model_dir)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (model_dir / name).write_bytes((TINY / "llama" / name).read_bytes())
    args = [
        "-m",
        "rocoft_llm.cli",
        "eval",
        "--model",
        str(model_dir),
        "--tasks",
        str(TINY / "data" / "truefalse" / "test.json"),
        "--num-beams",
        "1",
        "--max-new-tokens",
        "8",
        "--limit",
        "11",
    ]
    torchrun(*args, "--out", tmp_path / "one", nproc=1, timeout=300)
    torchrun(*args, "--out", tmp_path / "two", nproc=2, timeout=300)
    rows = [
        [json.loads(line) for line in (tmp_path / d / "adapted" / "truefalse.jsonl").read_text().splitlines()]
        for d in ("one", "two")
    ]
    assert len(rows[0]) == 11 and rows[0] == rows[1]


def test_prepared_test_data_is_an_eval_source(tmp_path, tiny_tok, monkeypatch):
    """`prepare --split test` output evaluates as its tasks (one per source), with the catalog's scorer."""
    from rocoft_llm.data.prepare import PrepareOptions, prepare

    root = tmp_path / "la"
    for folder, records in (("gsm8k", OVERFIT[20:25]), ("boolq", OVERFIT[:3])):
        (root / folder).mkdir(parents=True)
        (root / folder / "test.json").write_text(json.dumps(records))
    path, _ = prepare(
        PrepareOptions(
            datasets=["gsm8k", "boolq"],
            tokenizer_path=str(TINY / "llama"),
            split="test",
            llm_adapters_dir=str(root),
        ),
        out=tmp_path / "prep",
        progress=False,
    )

    def fake_generate(model, tokenizer, prompts, *a, **k):
        from rocoft_llm.eval.generate import Generation

        return [Generation("The answer is 3", "", 4, False) for _ in prompts]

    monkeypatch.setattr(eval_run, "generate", fake_generate)
    model = tiny_llama(torch.float32)
    summaries = evaluate(model, tiny_tok, [str(path)], Decoding(num_beams=1), None, {"model": "tiny"}, {})
    assert [(s["task"], s["n"]) for s in summaries] == [("gsm8k", 5), ("boolq", 3)]
    assert summaries[0]["protocol"]["correct"] == 1  # only 1 + 2 = 3 among the five gsm8k-style items


def test_eval_defaults_come_from_the_run_recipe(tmp_path, monkeypatch):
    """`eval --run` without --tasks uses the recipe's eval.tasks, num_beams and training template."""
    import yaml

    seen = {}

    def fake_evaluate(model, tok, tasks, decoding, out, identity, flags, *a, **k):
        seen.update(tasks=tasks, decoding=decoding)
        return [{"task": "t", "n": 0, "protocol": {"accuracy": 0, "ci95": [0, 0]}}]

    run = tmp_path / "run"
    run.mkdir()
    (run / "recipe.resolved.yaml").write_text(
        yaml.safe_dump(
            {
                "method": "rocoft",
                "model": {"name_or_path": "x", "random_init": True, "tokenizer": None},
                "train": {"seed": 0},
                "data": {"template": "alpaca_clean"},
                "eval": {"tasks": ["boolq"], "num_beams": 1, "max_new_tokens": 9, "batch_size": 3},
            }
        )
    )
    monkeypatch.setattr("rocoft_llm.eval.run.evaluate", fake_evaluate)
    monkeypatch.setattr(
        "rocoft_llm.eval.identity.load_for_eval", lambda *a, **k: (None, None, {"model": "x"}, {})
    )
    (tmp_path / "la" / "boolq").mkdir(parents=True)  # eval checks its tasks' files before loading a model
    (tmp_path / "la" / "boolq" / "test.json").write_text(
        json.dumps(
            [{"instruction": "q? Answer format: true/false", "input": "", "output": "true", "answer": "true"}]
        )
    )
    monkeypatch.setenv("ROCOFT_LLM_ADAPTERS_DIR", str(tmp_path / "la"))
    result = CliRunner().invoke(main, ["eval", "--run", str(run)])
    assert result.exit_code == 0, result.output
    d = seen["decoding"]
    assert seen["tasks"] == ["boolq"] and (d.num_beams, d.max_new_tokens, d.batch_size, d.template) == (
        1,
        9,
        3,
        "alpaca_clean",
    )
    none = CliRunner().invoke(main, ["eval", "--model", "x"])
    assert none.exit_code == 2 and "pass --tasks" in none.output
