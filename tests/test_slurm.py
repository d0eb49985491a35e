"""SLURM: rendering for 1/2/4 nodes and each backend, a rendered job run end to end with fake
srun/scontrol/sbatch (1 node, 2 CPU processes), and SIGUSR1 mid-run -> checkpoint, requeue, resume."""

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from rocoft_llm.cli import main
from rocoft_llm.errors import RoCoFTError
from rocoft_llm.rocoft.adapter import read_adapter_tensors
from rocoft_llm.slurm import Allocation, render
from tests.helpers.recipes import REPO, tiny_recipe

FAKEBIN = REPO / "tests" / "helpers" / "fake_slurm"


@pytest.mark.parametrize("nodes", [1, 2, 4])
@pytest.mark.parametrize(
    "backend,launcher",
    [("fsdp", "torchrun"), ("deepspeed", "torchrun"), ("deepspeed", "deepspeed"), ("ddp", "torchrun")],
)
def test_render_parses_and_has_the_launch_arguments(tmp_path, nodes, backend, launcher):
    recipe = REPO / "recipes" / "llama2-13b-math.yaml"
    text = render(
        str(recipe),
        Allocation(
            nodes, 8, partition="gpu", account="proj", launcher=launcher, log_dir=str(tmp_path / "logs")
        ),
        ["train.micro_batch_size=1", "train.global_batch_size=32", f"output.dir={tmp_path / 'run'}"],
        backend,
    )
    script = tmp_path / "job.sbatch"
    script.write_text(text)
    assert subprocess.run(["bash", "-n", str(script)], timeout=30).returncode == 0
    for expected in (
        f"#SBATCH --nodes={nodes}",
        "#SBATCH --gpus-per-node=8",
        "#SBATCH --signal=B:USR1@120",
        "#SBATCH --requeue",
        "#SBATCH --partition=gpu",
        "#SBATCH --account=proj",
        f"dist.backend={backend}",
        "train.resume=auto",
        "--rdzv-backend c10d",
        '--rdzv-endpoint "$HEAD_NODE:$RDZV_PORT"',
        'scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1',
        "TORCH_NCCL_ASYNC_ERROR_HANDLING=1",
        "rocoft_llm.cli doctor",
        f"LAUNCHER={launcher}",
    ):
        assert expected in text, expected
    assert (tmp_path / "logs").is_dir()


def test_render_refuses_impossible_jobs(tmp_path):
    recipe = REPO / "recipes" / "llama2-13b-math.yaml"
    with pytest.raises(RoCoFTError, match="use train.micro_batch_size=1"):
        render(str(recipe), Allocation(2, 8, log_dir=str(tmp_path)), [])
    with pytest.raises(RoCoFTError, match="needs dist.backend deepspeed"):
        render(
            str(recipe),
            Allocation(1, 8, launcher="deepspeed", log_dir=str(tmp_path)),
            ["train.micro_batch_size=2"],
            "fsdp",
        )


def test_cpu_job_asks_for_no_gpus_and_starts_procs_per_node_ranks(tmp_path):
    """A cluster without GRES rejects any --gpus-per-node line; the ranks are nodes x procs."""
    recipe = REPO / "recipes" / "tiny-llama-rows.yaml"
    text = render(
        str(recipe),
        Allocation(2, 0, procs_per_node=2, log_dir=str(tmp_path / "logs")),
        ["train.micro_batch_size=2", f"output.dir={tmp_path / 'run'}"],
        "fsdp",
    )
    script = tmp_path / "job.sbatch"
    script.write_text(text)
    assert subprocess.run(["bash", "-n", str(script)], timeout=30).returncode == 0
    assert not [line for line in text.splitlines() if line.startswith("#SBATCH --gpus")]
    for expected in (
        "PROCS_PER_NODE=2",
        "GPUS_PER_NODE=0",
        "#SBATCH --cpus-per-task=2",
        '--nproc-per-node "$PROCS_PER_NODE"',
    ):
        assert expected in text, expected
    assert (tmp_path / "logs").is_dir()  # SLURM opens --output before the script runs
    with pytest.raises(RoCoFTError, match=r"micro_batch_size 4 x world size 6 = 24"):  # 2 nodes x 3 ranks
        render(str(recipe), Allocation(2, 0, procs_per_node=3, log_dir=str(tmp_path)), [], "fsdp")


@pytest.mark.parametrize(
    "alloc,message",
    [
        (Allocation(2, 0), r"--gpus-per-node 0 is a CPU job: .*--procs-per-node N"),
        (Allocation(1, 8, procs_per_node=2), r"one process per GPU"),
        (Allocation(2, -1), r"need >= 1 node and >= 0 GPUs"),
        (Allocation(1, 0, procs_per_node=0), r"--procs-per-node 0: need >= 1"),
    ],
)
def test_render_refuses_allocations_it_cannot_run(tmp_path, alloc, message):
    alloc.log_dir = str(tmp_path)
    with pytest.raises(RoCoFTError, match=message):
        render(str(REPO / "recipes" / "tiny-llama-rows.yaml"), alloc, [], "fsdp")


def test_cli_writes_and_submits_with_fake_sbatch(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{FAKEBIN}:{os.environ['PATH']}")
    out = tmp_path / "job.sbatch"
    result = CliRunner().invoke(
        main,
        [
            "slurm",
            str(REPO / "recipes/llama2-7b-math.yaml"),
            "train.micro_batch_size=1",
            f"output.dir={tmp_path / 'run'}",
            "--nodes",
            "2",
            "--gpus-per-node",
            "8",
            "--out",
            str(out),
            "--submit",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Submitted batch job 4242" in result.output and os.access(out, os.X_OK)


def job_env(tmp_path):
    return {
        **os.environ,
        "PATH": f"{FAKEBIN}:{Path(sys.executable).parent}:{os.environ['PATH']}",
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NODELIST": "fake[1]",
        "SLURM_NNODES": "1",
        "FAKE_SLURM_LOG": str(tmp_path / "fake_slurm.log"),
        "RDZV_PORT": str(29000 + os.getpid() % 900),
    }


def rendered_job(tmp_path, name, steps):
    recipe = tiny_recipe(
        tmp_path,
        name,
        train={"micro_batch_size": 2, "max_steps": steps, "save_steps": None},
        dist={"backend": "fsdp"},
    )
    text = render(str(recipe), Allocation(1, 0, procs_per_node=2, cpus_per_task=2, time="00:10:00"), [])
    script = tmp_path / f"{name}.sbatch"
    script.write_text(text)
    return script


@pytest.mark.distributed
@pytest.mark.slow
@pytest.mark.timeout(500)
@pytest.mark.parametrize("umask,mode", [(0o022, 0o755), (0o077, 0o700), (0o002, 0o775)])
def test_the_job_script_is_0777_less_the_umask(tmp_path, umask, mode):
    """Executable by whoever the umask lets read it, like a script a shell makes and `chmod +x`."""
    from rocoft_llm.slurm import write_and_maybe_submit

    old = os.umask(umask)
    try:
        write_and_maybe_submit("#!/bin/bash\necho hi\n", tmp_path / "job.sbatch", submit=False)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "job.sbatch").stat().st_mode) == mode
    assert [p.name for p in tmp_path.iterdir()] == ["job.sbatch"]  # no temporary left


def test_rendered_job_runs_end_to_end_with_fake_slurm(tmp_path):
    script = rendered_job(tmp_path, "job", 4)
    proc = subprocess.run(
        ["bash", str(script)], capture_output=True, text=True, timeout=400, env=job_env(tmp_path)
    )
    logs = (
        proc.stdout
        + proc.stderr
        + "".join(p.read_text() for p in (tmp_path / "job" / "slurm-logs").glob("*"))
    )
    assert proc.returncode == 0, logs[-5000:]
    assert "doctor: all checks passed" in logs and "[PASS] all-reduce: sum over 2 ranks = 2" in logs
    assert (tmp_path / "job" / "adapter" / "adapter_config.json").is_file()
    assert "fake-srun:" in (tmp_path / "fake_slurm.log").read_text()


@pytest.mark.distributed
@pytest.mark.slow
@pytest.mark.timeout(1000)
def test_preemption_checkpoints_requeues_and_resumes_exactly(tmp_path):
    from rocoft_llm.train.run import train

    steps = 30
    # uninterrupted reference: one process on the same global batches (== FSDP2 on 2 ranks, tested elsewhere)
    straight = train(
        str(
            tiny_recipe(
                tmp_path, "straight", train={"micro_batch_size": 2, "max_steps": steps, "save_steps": None}
            )
        )
    )

    script = rendered_job(tmp_path, "preempted", steps)
    job = subprocess.Popen(
        ["bash", str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=job_env(tmp_path),
        start_new_session=True,
    )
    try:
        metrics = tmp_path / "preempted" / "metrics.jsonl"
        deadline = time.time() + 300
        while time.time() < deadline and (not metrics.is_file() or len(metrics.read_text().splitlines()) < 5):
            time.sleep(0.2)
        job.send_signal(signal.SIGUSR1)  # what SLURM sends 120 s before the limit
        out, _ = job.communicate(timeout=300)
    finally:
        if job.poll() is None:  # timed out: no orphaned ranks (bash -> fake srun -> torchrun -> workers)
            os.killpg(job.pid, signal.SIGKILL)
    assert job.returncode == 0, out[-4000:]
    assert "requeueing job 4242" in out and "requeue 4242" in (tmp_path / "fake_slurm.log").read_text()
    ckpts = sorted((tmp_path / "preempted" / "checkpoints").glob("step-*/COMPLETE.json"))
    assert ckpts and not (tmp_path / "preempted" / "summary.json").exists()
    stopped_at = int(ckpts[-1].parent.name.split("-")[1])
    assert 5 <= stopped_at < steps

    rerun = subprocess.run(
        ["bash", str(script)], capture_output=True, text=True, timeout=600, env=job_env(tmp_path)
    )
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    got, want = (
        read_adapter_tensors(tmp_path / "preempted" / "adapter"),
        read_adapter_tensors(straight / "adapter"),
    )
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-5, atol=1e-6)
