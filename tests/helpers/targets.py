"""Output targets of every command that writes, as tables for the hostile-input tests: how to call
each command with a given target (directory outputs and file outputs), and a user folder that
holds a copied ownership marker."""

import shutil

import yaml

from rocoft_llm.ownership import OWNER_MARKER, mark_output

from .paths import TINY
from .recipes import tiny_recipe


def copy_marker_into(folder, kind="training run", entries=None):
    """What a user does with `cp run/.rocoft-llm-output.json folder/`: a genuine marker, wrong folder
    (a training run's marker names no entries; a finished output's names what it held)."""
    real = folder.parent / "real-run"
    real.mkdir()
    mark_output(real, kind, entries)
    shutil.copy(real / OWNER_MARKER, folder / OWNER_MARKER)
    shutil.rmtree(real)


def slurm_recipe(args):
    path = args / "job.yaml"
    recipe = {
        "model": {"name_or_path": str(TINY / "llama"), "random_init": True},
        "data": {"train": [str(TINY / "data" / "train.json")], "cutoff_len": 64},
        "train": {"global_batch_size": 8, "micro_batch_size": 4, "max_steps": 2},
        "output": {"dir": str(args / "run")},
    }
    path.write_text(yaml.safe_dump(recipe))
    return path


# directory outputs: command -> args(args folder, target, adapter)
DIRECTORIES = {
    "train": lambda a, t, ad: ["train", tiny_recipe(a, "r", output={"dir": str(t), "report_to": []})],
    "merge": lambda a, t, ad: ["merge", "--base", a / "nobase", "--adapter", ad, "--out", t],
    "prepare": lambda a, t, ad: [
        "prepare",
        "--dataset",
        TINY / "data" / "train.json",
        "--tokenizer",
        TINY / "llama",
        "--out",
        t,
    ],
    "export-peft": lambda a, t, ad: ["export-peft", ad, "--out", t],
    "convert-gguf": lambda a, t, ad: ["convert-gguf", a / "model.gguf", t],
}
# file outputs: command -> args(args folder, target)
FILES = {
    "slurm": lambda a, t: ["slurm", slurm_recipe(a), "--nodes", "1", "--gpus-per-node", "1", "--out", t],
    "export-gguf": lambda a, t: ["export-gguf", a, "--out", t],
    "select": lambda a, t: [
        "select",
        "--model",
        TINY / "llama",
        "--random-init",
        "--calibration",
        TINY / "data" / "train.json",
        "--out",
        t,
    ],
}
