"""Recipes for tests: the bundled tiny Llama, tokenizer and data, with small step counts
(``ROCOFT_TEST_STEPS`` overrides them), and reading a run's losses."""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from .paths import REPO, TINY

__all__ = ["REPO", "STEPS", "TINY", "assert_same_run", "losses", "overfit_recipe", "tiny_recipe"]
STEPS = int(os.environ.get("ROCOFT_TEST_STEPS", "6"))


def tiny_recipe(tmp_path: Path, name: str = "run", **sections) -> Path:
    """Write a recipe for the tiny model; ``sections`` override keys per section (dicts)."""
    recipe = {
        "model": {"name_or_path": str(TINY / "llama"), "random_init": True, "dtype": "float32"},
        "method": "rocoft",
        "rocoft": {"mode": "row", "rank": 2, "selection": "random", "seed": 3},
        "data": {
            "train": [str(TINY / "data" / "train.json")],
            "cutoff_len": 192,
            "train_on_inputs": True,  # the tests were written when this was the default
            "cache_dir": str(tmp_path / "cache"),
        },
        "train": {
            "global_batch_size": 8,
            "micro_batch_size": 4,
            "max_steps": STEPS,
            "lr": 0.02,
            "warmup_steps": 1,
            "precision": "fp32",
            "seed": 7,
        },
        "dist": {"backend": "none"},
        "output": {"dir": str(tmp_path / name), "report_to": []},
    }
    for section, values in sections.items():
        if isinstance(values, dict):
            recipe.setdefault(section, {}).update(values)
        else:
            recipe[section] = values
    if recipe["method"] != "rocoft":
        recipe.pop("rocoft", None)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def losses(run_dir: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def assert_same_run(run: Path, ref: Path, tol: float = 1e-5) -> None:
    """A distributed run trained what the single-process reference trained on the same global
    batches: the same adapter tensors and per-step losses, to ``tol``."""
    import pytest
    import torch

    from rocoft_llm.rocoft.adapter import read_adapter_tensors

    got, want = read_adapter_tensors(Path(run) / "adapter"), read_adapter_tensors(Path(ref) / "adapter")
    assert set(got) == set(want)
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=tol, atol=tol / 10)
    assert losses(run) == pytest.approx(losses(ref), rel=tol)


def overfit_recipe(tmp: Path, data: Path, steps: int = 800) -> Path:
    """Full finetuning of the tiny Llama that memorises a few items (for evaluation tests)."""
    recipe = {
        "model": {"name_or_path": str(TINY / "llama"), "random_init": True, "dtype": "float32"},
        "method": "full",
        "data": {
            "train": [str(data)],
            "template": "alpaca_clean",
            "cutoff_len": 192,
            "train_on_inputs": True,
            "cache_dir": str(tmp / "cache"),
        },
        "train": {
            "global_batch_size": 8,
            "micro_batch_size": 8,
            "max_steps": steps,
            "lr": 3e-3,
            "warmup_steps": 10,
            "precision": "fp32",
            "seed": 1,
        },
        "output": {"dir": str(tmp / "run"), "report_to": []},
    }
    path = tmp / "overfit.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path
