"""The real SLURM testbed (slurm/testbed/up.sh) as the slurm_real tests use it: find it (or say
why the tests skip), submit through `rocoft-llm slurm --submit`, poll jobs with hard timeouts,
collect a job's logs for assertion messages, and kill one node's training processes."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from rocoft_llm.cli import main

TESTBED_DIR = Path(os.environ.get("ROCOFT_TESTBED_DIR", "/run/rocoft-slurm-testbed"))
STATE_FILE = TESTBED_DIR / "state.env"
UP = "slurm/testbed/up.sh"
FINAL_STATES = {
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "BOOT_FAIL",
    "DEADLINE",
}


@dataclass
class Testbed:
    nodes: list[str]
    namespaces: list[str]


def slurm(*args: str, timeout: float = 30) -> str:
    """Run a SLURM client command; its stdout (raises with its stderr on failure)."""
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def find_testbed() -> Testbed:
    """The running testbed; skips (with the reason) when none is up, fails when it is up but broken."""
    if not STATE_FILE.is_file():
        pytest.skip(
            f"no SLURM testbed is up ({STATE_FILE} is missing): start one with `sudo {UP}` "
            "(.ci/run does; it needs root and `ip netns`)"
        )
    state = dict(line.split("=", 1) for line in STATE_FILE.read_text().splitlines() if "=" in line)
    nodes, namespaces = state["NODE_NAMES"].strip('"').split(), state["NODE_NAMESPACES"].strip('"').split()
    try:
        seen = dict(
            line.split() for line in slurm("sinfo", "-h", "-N", "-o", "%N %T", timeout=20).splitlines()
        )
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as e:
        pytest.fail(f"{STATE_FILE} says the testbed is up, but sinfo does not answer: {e}")
    down = {
        n: seen.get(n, "missing")
        for n in nodes
        if seen.get(n) not in ("idle", "mixed", "allocated", "completing")
    }
    assert not down, f"testbed nodes not usable: {down} (logs in {TESTBED_DIR / 'log'})"
    return Testbed(nodes, namespaces)


def submit(
    recipe: str, overrides: list[str], backend: str, out: Path, nodes: int = 2, skip_doctor: bool = True
) -> int:
    """`rocoft-llm slurm RECIPE OVERRIDES --backend B --nodes N --gpus-per-node 0 --procs-per-node 1
    --submit` in this process (sbatch passes this environment to the job); the job id."""
    env = {"ROCOFT_SLURM_SKIP_DOCTOR": "1" if skip_doctor else "0"}
    result = CliRunner().invoke(
        main,
        [
            "slurm",
            recipe,
            *overrides,
            "--backend",
            backend,
            "--nodes",
            str(nodes),
            "--gpus-per-node",
            "0",
            "--procs-per-node",
            "1",
            "--cpus-per-task",
            "1",
            "--time",
            "00:10:00",
            "--out",
            str(out),
            "--submit",
        ],
        env=env,
    )
    assert result.exit_code == 0, result.output
    return int(re.search(r"Submitted batch job (\d+)", result.output).group(1))


def job_info(job: int) -> dict[str, str]:
    """`scontrol show job -o JOB` as a dict (JobState, Restarts, NodeList, ...)."""
    text = slurm("scontrol", "show", "job", "-o", str(job))
    return dict(m.groups() for m in re.finditer(r"(\w+)=(\S*)", text))


def job_logs(run_dir: Path, limit: int = 8000) -> str:
    """The tail of every log of a run's jobs (batch script output and each node's log)."""
    parts = [
        f"--- {p.name}\n{p.read_text(errors='replace')[-limit:]}"
        for p in sorted((Path(run_dir) / "slurm-logs").glob("*"))
        if p.is_file()
    ]
    return "\n".join(parts) or f"(no logs under {run_dir}/slurm-logs)"


def wait_until(what: str, check, timeout: float, run_dir: Path, poll: float = 0.3):
    """Poll ``check()`` until it returns something truthy; fail with the job logs after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(poll)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{job_logs(run_dir)}")


def wait_for_end(job: int, run_dir: Path, timeout: float) -> dict[str, str]:
    """The job's final scontrol record (COMPLETED, FAILED, ...)."""
    return wait_until(
        f"job {job} to end", lambda: (i := job_info(job))["JobState"] in FINAL_STATES and i, timeout, run_dir
    )


def kill_training_on(namespace: str, job: int) -> list[int]:
    """SIGKILL the `rocoft_llm.cli train` processes (torchrun agent and workers) of ``job`` that run
    in one node's network namespace: that node is lost mid-run. The pids killed."""
    pids = slurm("ip", "netns", "pids", namespace).split()
    killed = []
    for pid in map(int, pids):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue  # already gone
        if f"SLURM_JOB_ID={job}".encode() in environ and b"rocoft_llm.cli" in cmdline and b"train" in cmdline:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
    return killed


def cancel(jobs: list[int]) -> None:
    """Teardown: no test leaves a job holding the nodes."""
    for job in jobs:
        subprocess.run(["scancel", str(job)], capture_output=True, timeout=30)
