"""Launching test subprocesses under torchrun (2 CPU ranks, gloo) with a hard timeout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from run_train import torchrun_command  # noqa: E402  (bench/run_train.py: one launcher for tests and benchmarks)


def torchrun(*args, nproc: int = 2, timeout: int = 400, env_extra: dict | None = None, expect: int = 0):
    """``python -m torch.distributed.run --nproc-per-node N ARGS`` from the repo root; asserts the exit code."""
    cmd = [*torchrun_command(nproc), *map(str, args)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), **(env_extra or {})}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)
    assert proc.returncode == expect, f"exit {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc
