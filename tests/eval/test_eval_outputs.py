"""An evaluation is never silently replaced: a second `eval` into the same folder is refused without
--overwrite (nothing written), --overwrite leaves no per-item file of the earlier evaluation behind,
per-item rows keep the rendered prompt, and the count column says what --limit cut."""

import json

import pytest

from rocoft_llm.errors import RoCoFTError
from rocoft_llm.eval.outputs import check_eval_target, clear_eval_outputs
from rocoft_llm.eval.tables import items_cell
from rocoft_llm.train.run import train
from tests.helpers.cli import assert_refused, run_cli, snapshot
from tests.helpers.recipes import TINY, tiny_recipe

TRUEFALSE = TINY / "data" / "truefalse" / "test.json"
ARITH = TINY / "data" / "arith" / "test.json"


def test_count_column_says_what_limit_cut():
    assert items_cell({"n": 4, "evaluation_mode": "all", "available_items": 395, "limit": 4}) == (
        "4 of 395 (--limit)"
    )
    held = {"n": 4, "evaluation_mode": "held-out", "available_items": 80, "limit": 4}
    assert items_cell({**held, "excluded_seen_in_training": 6}) == (
        "4 of 80 held-out (--limit; 6 seen in training excluded)"
    )
    assert items_cell({"n": 12, "evaluation_mode": "all", "available_items": 12, "limit": 50}) == "12 (all)"
    assert items_cell({"n": 12, "evaluation_mode": "all", "available_items": 12, "limit": None}) == "12 (all)"


def test_target_refused_without_overwrite_and_cleared_by_kind(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps([{"task": "addsub", "n": 4}]))
    (tmp_path / "addsub.jsonl").write_text("{}\n")
    (tmp_path / "lm_eval_summary.json").write_text("[]")
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(RoCoFTError, match=r"addsub \(4 items\).*--overwrite.*--out DIR"):
        check_eval_target(tmp_path, "generation", overwrite=False)
    check_eval_target(tmp_path, "generation", overwrite=True)
    check_eval_target(tmp_path / "new", "generation", overwrite=False)
    assert {p.name for p in clear_eval_outputs(tmp_path, "generation")} == {"summary.json", "addsub.jsonl"}
    assert {p.name for p in tmp_path.iterdir()} == {"lm_eval_summary.json", "notes.txt"}


@pytest.mark.slow
def test_second_eval_refused_then_overwrite_leaves_no_stale_file(tmp_path):
    run = train(str(tiny_recipe(tmp_path)))
    args = ["eval", "--run", run, "--limit", "2", "--max-new-tokens", "4", "--num-beams", "1"]
    first = run_cli(*args, "--tasks", TRUEFALSE)
    assert first.exit_code == 0, first.output
    assert "2 of 40 (--limit)" in first.output, first.output
    adapted = run / "eval" / "adapted"
    (row, _) = [json.loads(line) for line in (adapted / "truefalse.jsonl").read_text().splitlines()]
    assert row["prompt"].endswith("### Response:\n") and row["new_tokens"] <= 4

    before = snapshot(run / "eval")
    assert_refused(run_cli(*args, "--tasks", ARITH), str(adapted), "truefalse (2 items)", "--overwrite")
    assert snapshot(run / "eval") == before

    again = run_cli(*args, "--tasks", ARITH, "--overwrite")
    assert again.exit_code == 0, again.output
    assert sorted(p.name for p in adapted.iterdir()) == ["arith.jsonl", "summary.json", "summary.md"]
    assert [s["task"] for s in json.loads((adapted / "summary.json").read_text())] == ["arith"]
