"""A recipe that memorises a few items with full finetuning of the tiny Llama (for eval tests)."""

from pathlib import Path

import yaml

TINY = Path(__file__).resolve().parents[2] / "recipes" / "tiny"


def overfit_recipe(tmp: Path, data: Path, steps: int = 800) -> Path:
    recipe = {
        "model": {"name_or_path": str(TINY / "llama"), "random_init": True, "dtype": "float32"},
        "method": "full",
        "data": {"train": [str(data)], "template": "alpaca_clean", "cutoff_len": 192, "cache_dir": str(tmp / "cache")},
        "train": {"global_batch_size": 8, "micro_batch_size": 8, "max_steps": steps, "lr": 3e-3, "warmup_steps": 10,
                  "precision": "fp32", "seed": 1},
        "output": {"dir": str(tmp / "run"), "report_to": []},
    }
    path = tmp / "overfit.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path
