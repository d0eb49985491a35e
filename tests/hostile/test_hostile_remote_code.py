"""A model directory with its own Python code and a recipe with `model.trust_remote_code: true`: `validate`
never runs that code (it says why the shape checks are skipped); loading the model for training names
every .py file that will run before it runs."""

import json
import logging

import yaml

from rocoft_llm.model_loading import load_model, remote_code_files
from tests.helpers.cli import run_cli
from tests.helpers.paths import TINY

CONFIG_PY = """
from pathlib import Path
from transformers import LlamaConfig

Path({sentinel!r}).write_text("configuration code ran")  # transformers runs a copy: an absolute path


class EvilConfig(LlamaConfig):
    model_type = "evil_llama"
"""
MODELING_PY = """
from transformers import LlamaForCausalLM
from .configuration_evil import EvilConfig


class EvilForCausalLM(LlamaForCausalLM):
    config_class = EvilConfig
"""


def remote_code_model(root, sentinel):
    model = root / "evil_model"
    model.mkdir()
    config = json.loads((TINY / "llama" / "config.json").read_text())
    config.update(
        model_type="evil_llama",
        auto_map={
            "AutoConfig": "configuration_evil.EvilConfig",
            "AutoModelForCausalLM": "modeling_evil.EvilForCausalLM",
        },
    )
    (model / "config.json").write_text(json.dumps(config))
    (model / "configuration_evil.py").write_text(CONFIG_PY.format(sentinel=str(model / sentinel)))
    (model / "modeling_evil.py").write_text(MODELING_PY)
    return model


def test_validate_never_runs_model_code(tmp_path):
    model = remote_code_model(tmp_path, "ran.txt")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "model": {"name_or_path": str(model), "random_init": True, "trust_remote_code": True},
                "data": {"train": [str(TINY / "data" / "train.json")]},
                "output": {"dir": str(tmp_path / "run")},
            }
        )
    )
    result = run_cli("validate", recipe)
    assert "its config needs its own Python code, which validate never runs" in result.output, result.output
    assert not (model / "ran.txt").exists()
    strict = run_cli("validate", recipe, "--strict")
    assert strict.exit_code == 2 and "validate never runs" in strict.output
    assert not (model / "ran.txt").exists()


def test_loading_with_trust_remote_code_names_the_files_first(tmp_path, caplog):
    model = remote_code_model(tmp_path, "ran.txt")
    assert remote_code_files(str(model)) == ["configuration_evil.py", "modeling_evil.py"]
    with caplog.at_level(logging.WARNING, logger="rocoft_llm"):
        net = load_model(str(model), dtype="float32", random_init=True, trust_remote_code=True)
    assert type(net).__name__ == "EvilForCausalLM" and (model / "ran.txt").exists()
    assert (
        f"running Python code from {model.resolve()}: configuration_evil.py, modeling_evil.py" in caplog.text
    )
