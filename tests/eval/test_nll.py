"""``eval --metric nll``: the command's NLL equals a log-softmax computed by hand on a tiny model;
bootstrap intervals are seeded and contain the estimate; a run that overfits one record has a
lower NLL than its base on it (paired difference < 0); the learning-curve measure during training
(eval.nll_data) equals the command's number on the same records and does not change training."""

import json
import math
import shutil

import pytest
import torch

from rocoft_llm.data.templates import get_template
from rocoft_llm.eval.intervals import bootstrap_ratio
from tests.helpers.cli import assert_refused, run_cli
from tests.helpers.paths import TINY
from tests.helpers.recipes import losses, tiny_recipe
from tests.helpers.torchrun import torchrun


def records(n=6):
    data = json.loads((TINY / "data" / "train.json").read_text())
    return [data[i * 37] for i in range(n)]  # different lengths: the batch is padded


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """A saved tiny Llama with seeded random weights and the bundled tokenizer."""
    from transformers import AutoConfig, AutoModelForCausalLM

    path = tmp_path_factory.mktemp("tiny")
    for f in (TINY / "llama").iterdir():
        shutil.copy(f, path / f.name)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path)).save_pretrained(path)
    return path


def hand_nll(model_dir, recs, train_on_inputs):
    """(sum of NLLs, target tokens) per record: each record alone, full logits, log-softmax by hand."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float64).eval()
    tmpl = get_template("llm_adapters")
    out = []
    for r in recs:
        ids = tok(tmpl.render_train(r["instruction"], r["output"], ""))["input_ids"] + [tok.eos_token_id]
        prompt = tok(tmpl.train_prompt_part(r["instruction"], ""))["input_ids"]
        # the response starts at the first token the full text does not share with the prompt alone
        first = (
            1 if train_on_inputs else next(k for k, (a, b) in enumerate(zip(ids, prompt + [-1])) if a != b)
        )
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0]
        logp = logits - torch.logsumexp(logits, dim=-1, keepdim=True)
        total = -sum(float(logp[t - 1, ids[t]]) for t in range(first, len(ids)))
        out.append((total, len(ids) - first))
    return out


@pytest.mark.parametrize("targets", ["response", "all"])
def test_command_nll_equals_hand_computed(tmp_path, tiny_dir, targets):
    recs = records()
    (tmp_path / "held.json").write_text(json.dumps(recs))
    result = run_cli(
        "eval", "--metric", "nll", "--model", tiny_dir, "--tasks", tmp_path / "held.json", "--nll-targets",
        targets, "--batch-size", "4", "--out", tmp_path / "out",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "out" / "nll" / "summary.json").read_text())
    rows = [
        json.loads(line) for line in (tmp_path / "out" / "nll" / "model-held.jsonl").read_text().splitlines()
    ]
    want = hand_nll(tiny_dir, recs, targets == "all")
    assert [r["tokens"] for r in rows] == [n for _, n in want]
    for row, (total, _) in zip(rows, want):
        assert row["nll_sum"] == pytest.approx(total, rel=1e-5)
    mean = sum(t for t, _ in want) / sum(n for _, n in want)
    (s,) = summary["summaries"]
    assert s["mean_nll"] == pytest.approx(mean, rel=1e-5)
    assert s["perplexity"] == pytest.approx(math.exp(mean), rel=1e-5)
    assert s["ci95"][0] <= s["mean_nll"] <= s["ci95"][1]
    assert f"{s['mean_nll']:.4f}" in result.output


def test_bootstrap_is_seeded_and_contains_the_estimate():
    gen = torch.Generator().manual_seed(1)
    counts = torch.randint(5, 40, (50,), generator=gen).tolist()
    sums = [c * (1.5 + float(torch.rand(1, generator=gen))) for c in counts]
    est, ci = bootstrap_ratio(sums, counts, 500, seed=3)
    assert est == pytest.approx(sum(sums) / sum(counts))
    assert ci[0] < est < ci[1]
    assert bootstrap_ratio(sums, counts, 500, seed=3) == (est, ci)
    assert bootstrap_ratio(sums, counts, 500, seed=4)[1] != ci
    shifted = [s + 0.25 * c for s, c in zip(sums, counts)]  # every token 0.25 nats worse
    diff, dci = bootstrap_ratio(shifted, counts, 500, seed=3, base_sums=sums)
    assert diff == pytest.approx(0.25) and dci[0] == pytest.approx(0.25) and dci[1] == pytest.approx(0.25)
    noisy = [s + 0.25 * c + float(torch.randn(1, generator=gen)) for s, c in zip(sums, counts)]
    diff, dci = bootstrap_ratio(noisy, counts, 500, seed=3, base_sums=sums)
    assert dci[0] < diff < dci[1] and dci[1] - dci[0] < ci[1] - ci[0]  # pairing removes the record spread


def test_overfit_run_beats_its_base_and_curve_matches_command(tmp_path):
    one = records(1) * 8  # one record, a full global batch of it
    (tmp_path / "one.json").write_text(json.dumps(one))
    (tmp_path / "held.json").write_text(json.dumps(one[:5]))  # 5 copies: an interval needs 5 records
    data = {"train": [str(tmp_path / "one.json")], "cutoff_len": 192, "train_on_inputs": False,
            "cache_dir": str(tmp_path / "cache")}  # fmt: skip
    steps = {"max_steps": 12, "lr": 0.05}
    plain = tiny_recipe(tmp_path, "plain", data=data, train=steps)
    curve = tiny_recipe(
        tmp_path, "curve", data=data, train=steps,
        eval={"nll_data": str(tmp_path / "held.json"), "nll_steps": 4, "batch_size": 2},
    )  # fmt: skip
    for recipe in (plain, curve):
        result = run_cli("train", recipe)
        assert result.exit_code == 0, result.output
    assert losses(tmp_path / "curve") == losses(tmp_path / "plain")  # measuring does not change training
    metrics = [json.loads(line) for line in (tmp_path / "curve" / "metrics.jsonl").read_text().splitlines()]
    measured = [m for m in metrics if "val_nll" in m]
    assert [m["step"] for m in measured] == [4, 8, 12]
    assert measured[-1]["val_nll"] < measured[0]["val_nll"]
    assert all(m["train_seconds"] > 0 for m in metrics)
    result = run_cli(
        "eval", "--metric", "nll", "--run", tmp_path / "curve", "--with-base", "--versus", tmp_path / "plain",
        "--tasks", tmp_path / "held.json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "curve" / "eval" / "nll" / "summary.json").read_text())
    by_variant = {s["variant"]: s for s in summary["summaries"]}
    assert by_variant["adapted"]["mean_nll"] == pytest.approx(measured[-1]["val_nll"], rel=1e-5)
    pairs = {p["b"]: p for p in summary["paired"]}
    assert pairs["base"]["mean_difference"] < -0.1 and pairs["base"]["ci95"][1] < 0  # trained on it: lower
    assert pairs["base"]["mean_difference"] == pytest.approx(
        by_variant["adapted"]["mean_nll"] - by_variant["base"]["mean_nll"], rel=1e-6
    )
    assert pairs["versus"]["mean_difference"] == pytest.approx(0.0, abs=1e-6)  # the same training


def test_versus_needs_the_metric(tmp_path):
    result = run_cli("eval", "--model", TINY / "llama", "--tasks", "addsub", "--versus", tmp_path)
    assert result.exit_code != 0 and "--versus is for --metric nll" in result.output


@pytest.mark.distributed
def test_two_ranks_give_the_single_process_numbers(tmp_path, tiny_dir):
    (tmp_path / "held.json").write_text(json.dumps(records(7)))  # 7 records: uneven shards
    args = ["eval", "--metric", "nll", "--model", tiny_dir, "--tasks", tmp_path / "held.json"]
    assert run_cli(*args, "--out", tmp_path / "one").exit_code == 0
    torchrun("-m", "rocoft_llm.cli", *args, "--out", tmp_path / "two", nproc=2, timeout=300)
    one, two = (json.loads((tmp_path / d / "nll" / "summary.json").read_text()) for d in ("one", "two"))
    assert one["summaries"][0]["records"] == 7
    for key in ("mean_nll", "ci95", "target_tokens"):
        assert two["summaries"][0][key] == pytest.approx(one["summaries"][0][key], rel=1e-6)


@pytest.mark.distributed
@pytest.mark.slow
@pytest.mark.parametrize("backend", ["fsdp", "deepspeed"])
def test_learning_curve_under_sharding_matches_single_process(tmp_path, backend):
    """Every rank measures all records (a sharded forward is a collective): the curve of a 2-rank
    FSDP2 / ZeRO-3 run equals the single-process one."""
    from rocoft_llm.train.run import train

    (tmp_path / "held.json").write_text(json.dumps(records(5)))
    common = dict(
        train={"micro_batch_size": 2, "max_steps": 4},
        eval={"nll_data": str(tmp_path / "held.json"), "nll_steps": 2, "batch_size": 2},
    )
    train(str(tiny_recipe(tmp_path, "single", **common)))
    dist = {"backend": backend, **({"zero_stage": 3} if backend == "deepspeed" else {})}
    recipe = tiny_recipe(tmp_path, backend, dist=dist, **common)
    torchrun("-m", "rocoft_llm.cli", "train", recipe, timeout=400)

    def curve(run):
        metrics = [json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
        return [(m["step"], m["val_nll"]) for m in metrics if "val_nll" in m]

    got, want = curve(backend), curve("single")
    assert [s for s, _ in got] == [s for s, _ in want] == [2, 4]
    assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-5)


def test_bad_inputs_are_refused_clearly_and_nothing_is_written(tmp_path, tiny_dir):
    base = ["eval", "--metric", "nll", "--model", tiny_dir, "--out", tmp_path / "out"]
    assert_refused(run_cli(*base), "--metric nll needs --tasks")
    assert_refused(run_cli(*base, "--harness", "lm-eval", "--tasks", "x.json"), "drop --harness")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([records(1)[0], {"instruction": "q", "answer": "1"}]))
    assert_refused(run_cli(*base, "--tasks", bad), str(bad), "record(s) [1]", "'output'")
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    assert_refused(run_cli(*base, "--tasks", empty), "no records")
    assert_refused(run_cli(*base, "--tasks", f"{tmp_path / 'nope.json'}:test"), "nope.json is not a file")
    assert not (tmp_path / "out").exists()


def test_curve_steps_without_records_is_a_recipe_problem(tmp_path):
    result = run_cli("validate", tiny_recipe(tmp_path, eval={"nll_steps": 2}))
    assert result.exit_code != 0 and "eval.nll_steps 2 without eval.nll_data" in result.output
