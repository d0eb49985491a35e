"""Shipped recipes found by name from any folder (validate, slurm, prepare --recipe, train); a missing
recipe names `rocoft-llm recipes` and `recipes --copy`. `validate --strict` checks the tokenizer, the
model config and every data source without the network: the 13B recipe on a machine without its
model or data is refused naming each, and passes once they are on disk (the LLM-Adapters folder given
as the repository root or as its dataset/ folder)."""

import json
import os
import subprocess
import sys

import pytest

from tests.helpers.cli import assert_refused, run_cli
from tests.helpers.paths import REPO

LLAMA_13B = "meta-llama/Llama-2-13b-hf"
TASKS_13B = ["gsm8k", "SVAMP", "AQuA", "MultiArith", "AddSub", "SingleEq", "mawps"]  # upstream folder names


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """A working directory outside the checkout, with no recipes/ folder."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_shipped_recipe_by_name_from_any_folder(elsewhere):
    for spec in ("llama2-13b-math", "llama2-13b-math.yaml", "recipes/llama2-13b-math.yaml"):
        result = run_cli("validate", spec, "--world-size", "16", "train.micro_batch_size=1")
        assert result.exit_code == 0 and "valid" in result.output, result.output
    job = run_cli(
        "slurm",
        "llama2-13b-math",
        "train.micro_batch_size=1",
        "--nodes",
        "2",
        "--gpus-per-node",
        "8",
        "--out",
        elsewhere / "job.sbatch",
    )
    assert job.exit_code == 0, job.output
    assert (
        str(REPO / "rocoft_llm" / "recipes" / "llama2-13b-math.yaml")
        in (elsewhere / "job.sbatch").read_text()
    )
    for args in (
        ["validate", "llama2-13b-mathh"],
        ["train", "no/such.yaml"],
        ["prepare", "--recipe", "nope"],
    ):
        assert_refused(
            run_cli(*args), "no shipped recipe is called", "rocoft-llm recipes", "recipes --copy DIR"
        )
    assert not any(elsewhere.iterdir()) or {p.name for p in elsewhere.iterdir()} <= {"job.sbatch", "runs"}


@pytest.mark.slow
def test_prepare_and_train_take_a_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # the tiny recipe's files are relative to the checkout
    prepared = run_cli("prepare", "--recipe", "tiny-llama-rows", "--out", tmp_path / "prep")
    assert prepared.exit_code == 0, prepared.output
    run = run_cli(
        "train", "tiny-llama-rows", "train.max_steps=2", f"output.dir={tmp_path / 'run'}",
        f"data.cache_dir={tmp_path / 'cache'}",
    )  # fmt: skip
    assert run.exit_code == 0 and (tmp_path / "run" / "adapter").is_dir(), run.output


def test_validate_strict_offline_names_every_unreachable_input(tmp_path):
    """A subprocess with HF_HUB_OFFLINE=1 and an empty HF cache (and a hard timeout: validate must not
    wait for a network)."""
    env = {k: v for k, v in os.environ.items() if k not in ("ROCOFT_LLM_ADAPTERS_DIR", "HF_HUB_CACHE")}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    args = ["validate", "llama2-13b-math", "--world-size", "16", "train.micro_batch_size=1"]
    strict = subprocess.run(
        [sys.executable, "-m", "rocoft_llm.cli", *args, "--strict"],
        capture_output=True, text=True, timeout=180, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert strict.returncode == 2, strict.stdout + strict.stderr
    err = strict.stderr
    assert f"model.name_or_path: {LLAMA_13B} (its config, weights and tokenizer) is neither" in err
    assert "data.train: 'math' is read from LLM-Adapters' ft-training_set/math_10k.json" in err
    assert "github.com/AGI-Edgerunners/LLM-Adapters" in err
    assert "eval.tasks: 'gsm8k'" in err and "--llm-adapters-dir" in err
    assert "Traceback" not in err and not strict.stdout


def _fake_hub_cache(root, repo_id: str, files: list[str]):
    folder = root / f"models--{repo_id.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("0" * 40)
    snapshot = folder / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    for name in files:
        (snapshot / name).write_text("{}")


def _fake_llm_adapters(root):
    """The upstream repository's layout: dataset/<task>/test.json and ft-training_set/*.json."""
    for task in TASKS_13B:
        (root / "dataset" / task).mkdir(parents=True)
        (root / "dataset" / task / "test.json").write_text("[]")
    (root / "ft-training_set").mkdir()
    (root / "ft-training_set" / "math_10k.json").write_text(json.dumps([]))
    return root


@pytest.mark.parametrize("folder", ["", "dataset"])
def test_validate_strict_passes_with_model_and_data_on_disk(tmp_path, monkeypatch, elsewhere, folder):
    import huggingface_hub.constants

    monkeypatch.delenv("ROCOFT_LLM_ADAPTERS_DIR", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    _fake_hub_cache(tmp_path / "hub", LLAMA_13B, ["config.json", "tokenizer_config.json"])
    repo = _fake_llm_adapters(tmp_path / "LLM-Adapters")
    result = run_cli(
        "validate", "llama2-13b-math", "--world-size", "16", "train.micro_batch_size=1", "--strict",
        f"data.llm_adapters_dir={repo / folder}",
    )  # fmt: skip
    assert result.exit_code == 0 and "# warning" not in result.output, result.output


def test_llm_adapters_dir_is_the_repository_or_its_dataset_folder(tmp_path):
    from rocoft_llm.data.sources import from_llm_adapters

    repo = _fake_llm_adapters(tmp_path / "LLM-Adapters")
    (repo / "dataset" / "gsm8k" / "test.json").write_text(
        json.dumps([{"instruction": "1 + 1?", "input": "", "output": "2", "answer": "2"}])
    )
    for root in (repo, repo / "dataset"):
        assert from_llm_adapters("gsm8k", "test", str(root)).records[0]["answer"] == "2"
        assert from_llm_adapters("math", "train", str(root)).files  # ft-training_set/ beside dataset/


def test_a_split_entry_does_not_change_how_later_entries_are_checked(tmp_path, monkeypatch):
    """`boolq:train` is cut from boolq's test file; the plain `gsm8k` after it is still looked for as a
    training set (and reported missing), not as gsm8k's test file."""
    from rocoft_llm.config import load_recipe
    from rocoft_llm.config.reachability import data_warnings

    monkeypatch.delenv("ROCOFT_LLM_ADAPTERS_DIR", raising=False)
    repo = _fake_llm_adapters(tmp_path / "LLM-Adapters")
    (repo / "dataset" / "boolq").mkdir()
    (repo / "dataset" / "boolq" / "test.json").write_text("[]")
    overrides = [f"data.llm_adapters_dir={repo}", "eval.tasks=[gsm8k]"]
    alone, _ = load_recipe(REPO / "recipes" / "llama2-13b-math.yaml", overrides + ["data.train=[gsm8k]"])
    after, _ = load_recipe(
        REPO / "recipes" / "llama2-13b-math.yaml", overrides + ["data.train=[boolq:train,gsm8k]"]
    )
    missing = [w for w in data_warnings(alone) if w.startswith("data.train") and "gsm8k" in w]
    assert missing, data_warnings(alone)
    assert [w for w in data_warnings(after) if w.startswith("data.train") and "gsm8k" in w] == missing
