"""Launching test subprocesses under torchrun (CPU ranks, gloo) with a hard timeout."""

from __future__ import annotations

import os
import subprocess
import sys

from .paths import REPO


def torchrun_command(nproc: int) -> list[str]:
    """``python -m torch.distributed.run --standalone``: the rendezvous binds a free port itself (no
    pick-then-bind race with other processes on the machine)."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]


def torchrun(*args, nproc: int = 2, timeout: int = 400, env_extra: dict | None = None, expect: int = 0):
    """``torchrun --nproc-per-node N ARGS`` from the repo root (``-m tests.x.y`` runs a test script);
    asserts the exit code."""
    cmd = [*torchrun_command(nproc), *map(str, args)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), **(env_extra or {})}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)
    assert proc.returncode == expect, f"exit {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc
