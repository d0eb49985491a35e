"""The package as users install it: a wheel built from the tree, installed NON-editable into a fresh
venv, run from a directory outside the checkout. Only rocoft-llm is installed fresh; its
dependencies are the test venv's, linked in (a plain ``--system-site-packages`` venv would see the
base interpreter's packages, not this venv's), minus this venv's editable rocoft-llm.

Every command goes through the installed code: ``--help`` through the console script, the rest
in-process in ONE fresh-venv Python (``main(args)``), which saves a 5 s import per command.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.helpers.paths import REPO

BUILD_TIMEOUT = 120
RUN_TIMEOUT = 240

DRIVER = r"""
import importlib.util, json, os, shutil, sys
from pathlib import Path
from click.testing import CliRunner
import rocoft_llm
from rocoft_llm.cli import main

venv = Path(sys.argv[1]).resolve()
assert Path(rocoft_llm.__file__).resolve().is_relative_to(venv), f"rocoft_llm imported from {rocoft_llm.__file__}"
assert importlib.util.find_spec("data_prep") is None, "a top-level data_prep package is installed"
assert not any(Path(p).resolve() == Path(sys.argv[2]).resolve() for p in sys.path if p), "the checkout is on sys.path"

def cli(*args):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    print(f"$ rocoft-llm {' '.join(args)}  -> exit {result.exit_code}\n{result.output[-1500:]}", flush=True)
    assert result.exit_code == 0, args
    return result.output

cli("recipes", "--copy", ".")
out = cli("validate", "recipes/llama2-7b-math.yaml", "--world-size", "8")
assert "trainable" in out, out
cli("slurm", "recipes/tiny-llama-rows.yaml", "--backend", "fsdp", "--nodes", "2", "--gpus-per-node", "1",
    "--out", "job.sbatch")
job = Path("job.sbatch").read_text()
assert "torchrun" in job and "@@" not in job and "--nnodes" in job
steps = os.environ.get("ROCOFT_TEST_STEPS", "2")
cli("prepare", "--recipe", "recipes/tiny-llama-rows.yaml")
cli("train", "recipes/tiny-llama-rows.yaml", f"train.max_steps={steps}", "train.warmup_steps=0", "output.dir=runs/w")
assert (Path("runs/w/adapter/adapter_config.json")).is_file()
Path("la/boolq").mkdir(parents=True)
shutil.copy("recipes/tiny/data/truefalse/test.json", "la/boolq/test.json")
cli("eval", "--run", "runs/w", "--harness", "lm-eval", "--tasks", "boolq", "--llm-adapters-dir", "la",
    "--limit", "4", "--out", "ev")
summary = json.loads(Path("ev/adapted/lm_eval_summary.json").read_text())
assert {s["harness_task"] for s in summary} == {"rocoft_boolq_loglik", "rocoft_boolq_gen"}, summary
assert all(s["n"] == 4 for s in summary), summary
print("WHEEL-OK")
"""


def _run(cmd, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert proc.returncode == 0, (
        f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    )
    return proc


def build_wheel(dest: Path) -> Path:
    """The wheel of a copy of the tree's sources (no build files land in the checkout)."""
    src = dest / "src"
    shutil.copytree(REPO / "rocoft_llm", src / "rocoft_llm", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    _run(
        [
            sys.executable,
            "-c",
            "import sys; from setuptools import build_meta as b; print(b.build_wheel(sys.argv[1]))",
            str(dest),
        ],
        cwd=src,
        timeout=BUILD_TIMEOUT,
    )
    (wheel,) = dest.glob("rocoft_llm-*.whl")
    return wheel


def fresh_venv(path: Path) -> Path:
    """A venv of the base interpreter whose site-packages links every package of this venv except rocoft-llm."""
    _run(
        [getattr(sys, "_base_executable", sys.executable), "-m", "venv", "--without-pip", str(path)],
        timeout=60,
    )
    python = path / "bin" / "python"
    target = Path(
        _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    )
    ours = Path(sysconfig.get_paths()["purelib"])
    for entry in ours.iterdir():
        name = entry.name.lower()
        if name.startswith(("__editable__", "rocoft_llm", "rocoft-llm", "_rocoft")) or name == "__pycache__":
            continue
        (target / entry.name).symlink_to(entry)
    return python


@pytest.mark.slow
def test_wheel_installs_and_runs_outside_the_checkout(tmp_path):
    wheel = build_wheel(tmp_path / "dist")
    names = set(zipfile.ZipFile(wheel).namelist())
    for shipped in (
        "rocoft_llm/data/catalog.yaml",
        "rocoft_llm/train.sbatch.tmpl",
        "rocoft_llm/config/known_models.json",
        "rocoft_llm/eval/lm_eval_tasks/rocoft_boolq_gen.yaml",
        "rocoft_llm/recipes/tiny-llama-rows.yaml",
        "rocoft_llm/recipes/tiny/llama/tokenizer.json",
        "rocoft_llm/recipes/tiny/data/truefalse/test.json",
    ):
        assert shipped in names, f"{shipped} is not in {wheel.name}"
    assert not any(n.startswith(("data_prep/", "tests/", "bench/")) for n in names), sorted(names)[:20]

    python = fresh_venv(tmp_path / "venv")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            "--disable-pip-version-check",
            str(wheel),
        ],
        timeout=BUILD_TIMEOUT,
    )
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(HF_HUB_OFFLINE="1", ROCOFT_CACHE=str(tmp_path / "cache"))
    help_text = _run(
        [str(tmp_path / "venv" / "bin" / "rocoft-llm"), "--help"], cwd=work, env=env, timeout=60
    ).stdout
    assert "recipes" in help_text and "train" in help_text
    proc = _run(
        [str(python), "-c", DRIVER, str(tmp_path / "venv"), str(REPO)], cwd=work, env=env, timeout=RUN_TIMEOUT
    )
    assert "WHEEL-OK" in proc.stdout, proc.stdout[-3000:]
