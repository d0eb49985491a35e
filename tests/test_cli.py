"""The click CLI: help texts, validate, select (indices file used by a recipe) and merge."""

import copy
import json
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner

from rocoft_llm import RoCoFTConfig, apply_rocoft, save_adapter
from rocoft_llm.cli import main
from rocoft_llm.rocoft.apply import rocoft_modules
from rocoft_llm.scored_indices import calibration_batches
from tests.helpers.models import batch, tiny_model
from tests.helpers.paths import REPO
from tests.helpers.tokenizers import save_tiny_tokenizer

COMMANDS = sorted(main.commands)  # every command, so a new one cannot miss its help test


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.mark.parametrize("command", [None] + COMMANDS)
def test_help_has_examples(command):
    result = run(*([command] if command else []), "--help")
    assert result.exit_code == 0
    assert "Examples:" in result.output and "rocoft-llm" in result.output


def test_console_script_runs_validate():
    proc = subprocess.run(
        [sys.executable, "-m", "rocoft_llm.cli", "validate", "recipes/llama2-13b-math.yaml", "train.lr=2e-4"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "lr: 0.0002" in proc.stdout and "trainable_parameters: 5,345,280" in proc.stdout


def test_validate_reports_every_error_with_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "model: {name_or_path: meta-llama/Llama-2-7b-hf, dtyp: x}\nrocoft: {rank: 0}\noutput: {dir: o}\n"
    )
    result = run("validate", str(bad))
    assert result.exit_code == 2
    assert (
        "2 problem(s)" in result.output
        and "did you mean 'dtype'" in result.output
        and "rocoft.rank: 0" in result.output
    )


@pytest.fixture
def model_dir(tmp_path):
    path = tmp_path / "model"
    tiny_model("llama").save_pretrained(path)
    save_tiny_tokenizer(path)
    return path


@pytest.fixture
def calib_file(tmp_path):
    records = [
        {
            "instruction": f"What is {i} + {i}?",
            "input": "",
            "output": f"{i} + {i} = {2 * i}. The answer is {2 * i}",
            "answer": str(2 * i),
        }
        for i in range(12)
    ]
    path = tmp_path / "calib.json"
    path.write_text(json.dumps(records))
    return path


@pytest.mark.parametrize("mode,selection", [("column", "max"), ("column", "mixed"), ("row_column", "max")])
def test_select_writes_indices_used_by_recipe(model_dir, calib_file, tmp_path, mode, selection):
    out = tmp_path / "idx.json"
    result = run(
        "select",
        "--model",
        str(model_dir),
        "--calibration",
        str(calib_file),
        "--out",
        str(out),
        "--mode",
        mode,
        "--rank",
        "3",
        "--selection",
        selection,
        "--dtype",
        "float32",
        "--batch-size",
        "4",
        "--num-batches",
        "3",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["mode"] == mode and data["rank"] == 3 and len(data["modules"]) == 14
    assert data["calibration"]["batches"] == 3 and data["calibration"]["tokens"] > 0
    # the same indices as calibrating in-process on the same batches
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    records = json.loads(calib_file.read_text())
    direct = apply_rocoft(
        tiny_model("llama"),
        RoCoFTConfig(mode=mode, rank=3, selection=selection),
        calibration=list(calibration_batches(records, tok, batch_size=4))[:3],
    )
    from_file = apply_rocoft(
        tiny_model("llama"), RoCoFTConfig(mode=mode, rank=3, selection=selection, indices_file=str(out))
    )
    for name, m in rocoft_modules(direct).items():
        other = rocoft_modules(from_file)[name]
        assert torch.equal(m.rocoft_index, other.rocoft_index)
        if mode == "row_column":  # rows and columns both scored, both stored
            assert torch.equal(m.rocoft_column_index, other.rocoft_column_index)
            assert set(data["modules"][name]) == {"rows", "columns"}
    # an existing file is not overwritten
    again = CliRunner().invoke(
        main, ["select", "--model", str(model_dir), "--calibration", str(calib_file), "--out", str(out)]
    )
    assert again.exit_code == 2 and "already exists" in again.output


def test_indices_file_must_match_mode_and_rank(model_dir, calib_file, tmp_path):
    out = tmp_path / "idx.json"
    assert (
        run(
            "select",
            "--model",
            str(model_dir),
            "--calibration",
            str(calib_file),
            "--out",
            str(out),
            "--rank",
            "2",
            "--dtype",
            "float32",
        ).exit_code
        == 0
    )
    from rocoft_llm.errors import RoCoFTError

    with pytest.raises(RoCoFTError, match="rank=2 but the config asks for 3"):
        apply_rocoft(tiny_model("llama"), RoCoFTConfig(rank=3, indices_file=str(out)))


def test_merge_command(model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    model = apply_rocoft(copy.deepcopy(tiny_model("llama")), RoCoFTConfig(rank=2))
    with torch.no_grad():
        for m in rocoft_modules(model).values():
            m.rocoft_slice.mul_(1.5)
    save_adapter(model, tmp_path / "adapter")
    result = run(
        "merge",
        "--base",
        str(model_dir),
        "--adapter",
        str(tmp_path / "adapter"),
        "--out",
        str(tmp_path / "merged"),
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "merged" / "tokenizer.json").is_file()
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    b = batch()
    with torch.no_grad():
        torch.testing.assert_close(merged(**b).logits, model(**b).logits, rtol=1e-5, atol=1e-5)
    again = CliRunner().invoke(
        main,
        [
            "merge",
            "--base",
            str(model_dir),
            "--adapter",
            str(tmp_path / "adapter"),
            "--out",
            str(tmp_path / "merged"),
        ],
    )
    assert again.exit_code == 2 and "already exists" in again.output


def test_prepare_preview_and_recipe(tmp_path, monkeypatch):
    tok = save_tiny_tokenizer(tmp_path / "tok")
    data = tmp_path / "train.json"
    data.write_text(
        json.dumps(
            [
                {
                    "instruction": "Is it true?",
                    "input": "",
                    "output": "the correct answer is true",
                    "answer": "true",
                }
            ]
            * 3
        )
    )
    result = run(
        "prepare",
        "--dataset",
        str(data),
        "--tokenizer",
        str(tok),
        "--no-train-on-inputs",
        "--preview",
        "2",
        "--cutoff-len",
        "512",
    )
    assert result.exit_code == 0, result.output
    assert "⟦Below is an instruction" in result.output and "the correct answer is true<eos>" in result.output
    assert result.output.count("--- example") == 2
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"model: {{name_or_path: {tok}}}\ndata: {{train: [{data}], cutoff_len: 64}}\n"
        "train: {global_batch_size: 2, micro_batch_size: 2}\n"
        f"output: {{dir: {tmp_path / 'run'}}}\n"
    )
    monkeypatch.setenv("ROCOFT_CACHE", str(tmp_path / "cache"))
    result = run("prepare", "--recipe", str(recipe), "data.cutoff_len=96", "--out", str(tmp_path / "prep"))
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "prep" / "manifest.json").read_text())
    assert manifest["cutoff_len"] == 96 and manifest["examples"] == 3
    bad = CliRunner().invoke(main, ["prepare", "--dataset", "gsm9k", "--tokenizer", str(tok)])
    assert bad.exit_code == 2 and "neither an existing file nor a dataset id" in bad.output


def test_command_reference_is_current():
    """docs/cli.md is generated from the commands; regenerate it when a command changes."""
    from rocoft_llm.cli.reference import render_reference

    assert (REPO / "docs" / "cli.md").read_text() == render_reference(), (
        "docs/cli.md is stale: python -m rocoft_llm.cli.reference > docs/cli.md"
    )
