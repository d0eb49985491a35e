"""Hostile checkpoints through `rocoft-llm train ... train.resume=...`: refused with exit 2 and a message
naming the checkpoint and the fix, before the run writes anything; an interrupted newest checkpoint is
skipped with a warning that names it."""

import json
import logging
import shutil

import pytest

from tests.helpers.cli import assert_refused, run_cli, snapshot
from tests.helpers.recipes import tiny_recipe

STEP1, STEP2 = "checkpoints/step-00000001", "checkpoints/step-00000002"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    recipe = tiny_recipe(root, "run", train={"max_steps": 2, "save_steps": 1, "save_total_limit": 2})
    result = run_cli("train", recipe)
    assert result.exit_code == 0, result.output
    assert (root / "run" / STEP1 / "COMPLETE.json").is_file() and (
        root / "run" / STEP2 / "COMPLETE.json"
    ).is_file()
    return root / "run"


def write(name, data: bytes):
    return lambda run: (run / name).write_bytes(data)


def corrupt(name):
    def damage(run):
        data = (run / name).read_bytes()
        (run / name).write_bytes(data[:-8] + b"\0" * 8)

    return damage


CASES = {
    # name: (damage to the copied run, resume value, extra overrides, message parts)
    "marker not JSON": (
        write(f"{STEP2}/COMPLETE.json", b"{"),
        "auto",
        [],
        ["COMPLETE.json", "is not valid JSON", "resume from an earlier"],
    ),
    "marker not UTF-8": (write(f"{STEP2}/COMPLETE.json", b"\xff"), "auto", [], ["not UTF-8"]),
    "marker a list": (write(f"{STEP2}/COMPLETE.json", b"[]"), "auto", [], ["is not a JSON object"]),
    "signature missing": (
        lambda run: (run / STEP2 / "resume_signature.json").unlink(),
        "auto",
        [],
        ["resume_signature.json", "does not exist", "resume from an earlier"],
    ),
    "tensors corrupted": (
        corrupt(f"{STEP2}/trainable.safetensors"),
        "auto",
        [],
        ["trainable.safetensors", "the checkpoint is corrupt"],
    ),
    "tensors missing": (
        lambda run: (run / STEP2 / "trainable.safetensors").unlink(),
        "auto",
        [],
        ["is corrupt"],
    ),
    "recipe changed": (
        None,
        "auto",
        ["rocoft.rank=3"],
        ["refusing to resume", "rocoft.rank: checkpoint 2 -> now 3"],
    ),
    "partial checkpoint by path": (
        lambda run: (run / STEP1 / "COMPLETE.json").unlink(),
        STEP1,
        [],
        ["has no COMPLETE.json", "partial"],
    ),
    "no such checkpoint": (None, "checkpoints/step-00000009", [], ["does not exist", "train.resume=auto"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_checkpoint_is_refused_before_anything_is_written(finished_run, tmp_path, case):
    damage, resume, extra, needles = CASES[case]
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    (run / "summary.json").unlink()  # an unfinished run: resume has work to do
    if damage:
        damage(run)
    recipe = tiny_recipe(tmp_path, "run", train={"max_steps": 2, "save_steps": 1, "save_total_limit": 2})
    before = snapshot(run)
    value = resume if resume == "auto" else str(run / resume)
    assert_refused(run_cli("train", recipe, f"train.resume={value}", *extra), *needles)
    assert snapshot(run) == before


def test_auto_resume_names_the_incomplete_checkpoint_it_skips(finished_run, tmp_path, caplog):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    (run / "summary.json").unlink()
    (run / STEP2 / "COMPLETE.json").unlink()  # the save of step 2 was interrupted
    recipe = tiny_recipe(tmp_path, "run", train={"max_steps": 2, "save_steps": 1, "save_total_limit": 2})
    with caplog.at_level(logging.INFO, logger="rocoft_llm"):
        result = run_cli("train", recipe, "train.resume=auto")
    assert result.exit_code == 0, result.output
    text = caplog.text
    assert f"skipping {run / STEP2}" in text and "has no COMPLETE.json" in text and "resuming from" in text
    assert "resumed from" in text and "step-00000001" in text
    assert json.loads((run / "summary.json").read_text())["steps"] == 2
