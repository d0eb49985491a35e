"""Shared by the benchmarks that measure whole training runs: run `rocoft-llm train` in its own
process(es) - torchrun for several ranks - and return what the run recorded."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def shown_path(path) -> str:
    """A path as a table header shows it: relative to the repository, or ``~/...`` under the home
    directory, never this machine's absolute path; a Hub id or other name unchanged."""
    p = Path(str(path)).expanduser()
    if not p.is_absolute():
        return str(path)
    p = p.resolve()
    for root, shown in ((REPO, ""), (Path.home().resolve(), "~/")):
        if p.is_relative_to(root):
            return shown + str(p.relative_to(root))
    return str(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun_command(nproc: int) -> list[str]:
    """``python -m torch.distributed.run`` for ``nproc`` local processes on a free port (the
    benchmarks and the distributed tests launch through this one command)."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc-per-node={nproc}",
        "--master-addr=127.0.0.1",
        f"--master-port={free_port()}",
    ]


def train_run(
    recipe: str | Path,
    overrides: list[str],
    out: Path,
    nproc: int = 1,
    timeout: int = 900,
    torchrun: bool | None = None,
):
    """(summary.json, metrics.jsonl records) of a training run written to ``out``; launched with
    torchrun when ``nproc > 1`` or ``torchrun`` (FSDP2 / ZeRO-3 on one GPU need a process group)."""
    launch = torchrun_command(nproc) if nproc > 1 or torchrun else [sys.executable]
    proc = subprocess.run(
        [*launch, "-m", "rocoft_llm.cli", "train", str(recipe), *overrides, f"output.dir={out}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    if proc.returncode != 0:
        sys.exit(f"training run for {out} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    metrics_file = Path(out) / "metrics.jsonl"
    metrics = (
        [json.loads(line) for line in metrics_file.read_text().splitlines()] if metrics_file.is_file() else []
    )
    return json.loads((Path(out) / "summary.json").read_text()), metrics
