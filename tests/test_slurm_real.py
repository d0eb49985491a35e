"""The rendered job on a REAL SLURM cluster (slurm/testbed/up.sh: Slurm with 2 nodes on this
machine, each in its own network and UTS namespace), 2 nodes x 1 CPU process, jobs submitted with
`rocoft-llm slurm ... --gpus-per-node 0 --procs-per-node 1 --submit`:

- FSDP2 and DeepSpeed ZeRO-3 jobs train exactly what one process trains on the same global batches;
- doctor, run by the job under srun, sees both nodes and sums over both ranks;
- preemption for real (`scancel --signal=USR1 --batch`): every rank checkpoints, the job requeues
  itself, runs again under the same job id in a new rendezvous, resumes and finishes: no step
  repeated or lost, and the adapter of the uninterrupted run;
- a node lost mid-run (its training processes killed): the job fails well within the recipe's hang
  timeout, naming the node, and its last complete checkpoint resumes to the same adapter.

Skipped with the reason when no testbed is up. Every wait has a hard timeout; failures show the
job's logs."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from rocoft_llm.train.backends import FSDP_OPTIMIZER_DIR
from rocoft_llm.train.checkpoint import complete_checkpoints, find_resume_point
from rocoft_llm.train.run import train
from tests.helpers.cluster import (
    cancel,
    find_testbed,
    job_info,
    job_logs,
    kill_training_on,
    slurm,
    submit,
    wait_for_end,
    wait_until,
)
from tests.helpers.recipes import REPO, assert_same_run

pytestmark = [pytest.mark.slurm_real, pytest.mark.distributed, pytest.mark.slow]

RECIPE = str(REPO / "recipes" / "tiny-llama-rows.yaml")
#: enough steps that a signal sent after step 2 lands mid-run (the tiny model trains in seconds)
STEPS = max(16, int(os.environ.get("ROCOFT_TEST_STEPS", "6")) * 5)
JOB_TIMEOUT = (
    300  # s: one job run (imports on 2 busy cores dominate; the first ZeRO-3 run builds DeepSpeed's op)
)
HANG_TIMEOUT_MIN = 1  # dist.timeout_minutes of the node-loss job


@pytest.fixture(scope="module")
def cluster():
    return find_testbed()


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("slurm_real")


@pytest.fixture
def jobs():
    """The test's job ids: cancelled when it ends, so that a failed test leaves no job holding the nodes."""
    submitted: list[int] = []
    yield submitted
    cancel(submitted)


def overrides(work: Path, name: str, *extra: str) -> list[str]:
    return [
        f"output.dir={work / name}",
        f"data.cache_dir={work / 'cache'}",
        f"train.max_steps={STEPS}",
        "train.save_steps=null",
        "output.report_to=[]",
        *extra,
    ]


@pytest.fixture(scope="module")
def reference(cluster, work):
    """One process, no backend, the same recipe and global batches."""
    return train(RECIPE, overrides(work, "single"))


def run_job(work, jobs, name, backend, *extra, skip_doctor=True) -> tuple[int, Path, dict]:
    run = work / name
    job = submit(
        RECIPE, overrides(work, name, *extra), backend, work / f"{name}.sbatch", skip_doctor=skip_doctor
    )
    jobs.append(job)
    return job, run, wait_for_end(job, run, JOB_TIMEOUT)


def steps_logged(run: Path) -> list[int]:
    path = run / "metrics.jsonl"
    return [json.loads(line)["step"] for line in path.read_text().splitlines()] if path.is_file() else []


def batch_log(run: Path, job: int) -> str:
    return next((run / "slurm-logs").glob(f"*-{job}.out")).read_text()


@pytest.fixture(scope="module")
def fsdp_job(cluster, work, reference):
    submitted: list[int] = []
    yield run_job(work, submitted, "fsdp", "fsdp", skip_doctor=False)
    cancel(submitted)


@pytest.mark.timeout(JOB_TIMEOUT + 120)
def test_fsdp2_job_matches_one_process(fsdp_job, reference, work):
    job, run, info = fsdp_job
    assert info["JobState"] == "COMPLETED", job_logs(run)
    script = (work / "fsdp.sbatch").read_text()
    assert not [
        line for line in script.splitlines() if line.startswith("#SBATCH --gpus")
    ]  # a CPU job: no GPUs
    assert json.loads((run / "summary.json").read_text())["world_size"] == 2
    assert_same_run(run, reference)


@pytest.mark.timeout(JOB_TIMEOUT + 120)
def test_doctor_under_srun_reports_both_nodes_and_the_all_reduce(fsdp_job, cluster):
    job, run, info = fsdp_job
    head = (run / "slurm-logs" / f"node-{cluster.nodes[0]}-{job}.log").read_text()
    assert "doctor: all checks passed" in head, job_logs(run)
    assert "[PASS] all-reduce: sum over 2 ranks = 2" in head, job_logs(run)
    assert f"(hosts {', '.join(sorted(cluster.nodes))})" in head, job_logs(run)
    assert f"[PASS] gpus: 0 visible on {cluster.nodes[0]} (CPU only)" in head, job_logs(run)


@pytest.mark.timeout(JOB_TIMEOUT + 120)
def test_zero3_job_matches_one_process(cluster, work, jobs, reference):
    job, run, info = run_job(work, jobs, "zero3", "deepspeed", "dist.zero_stage=3")
    assert info["JobState"] == "COMPLETED", job_logs(run)
    assert json.loads((run / "summary.json").read_text())["world_size"] == 2
    assert_same_run(run, reference)


@pytest.mark.timeout(2 * JOB_TIMEOUT + 120)
def test_preemption_checkpoints_requeues_the_same_job_and_resumes_exactly(cluster, work, jobs, reference):
    run = work / "preempted"
    job = submit(RECIPE, overrides(work, "preempted"), "fsdp", work / "preempted.sbatch")
    jobs.append(job)
    wait_until("training to log 2 steps", lambda: len(steps_logged(run)) >= 2, JOB_TIMEOUT, run)
    slurm(
        "scancel", "--signal=USR1", "--batch", str(job)
    )  # what SLURM sends before a time limit or preemption
    info = wait_for_end(job, run, 2 * JOB_TIMEOUT)
    logs = job_logs(run)
    assert info["JobState"] == "COMPLETED" and info["Restarts"] == "1", logs
    out = batch_log(run, job)
    assert "caught USR1" in out and f"requeueing job {job}" in out, logs
    assert f"job {job} (restart 1)" in out and f"rendezvous rocoft-{job}-1" in out, (
        logs
    )  # same id, new rendezvous
    head = (run / "slurm-logs" / f"node-{cluster.nodes[0]}-{job}.log").read_text()  # both runs, appended
    resumed = [line for line in head.splitlines() if line.startswith("resumed from ")]
    assert len(resumed) == 1, logs
    ckpt = Path(resumed[0].split()[2])
    stopped = int(resumed[0].split()[-1])
    assert 2 <= stopped < STEPS, logs
    assert (ckpt / "rng-rank0.pt").is_file() and (ckpt / "rng-rank1.pt").is_file(), logs  # saved on all ranks
    assert {"__0_0.distcp", "__1_0.distcp"} <= {p.name for p in (ckpt / FSDP_OPTIMIZER_DIR).iterdir()}, logs
    assert steps_logged(run) == list(range(1, STEPS + 1))  # no step repeated or lost
    assert_same_run(run, reference)


@pytest.mark.timeout(2 * JOB_TIMEOUT + 180)
def test_node_loss_fails_within_the_hang_timeout_naming_the_node_and_resumes(cluster, work, jobs, reference):
    run, lost = work / "lost", cluster.nodes[1]
    extra = ("train.save_steps=4", f"dist.timeout_minutes={HANG_TIMEOUT_MIN}")
    job = submit(RECIPE, overrides(work, "lost", *extra), "fsdp", work / "lost.sbatch")
    jobs.append(job)
    wait_until("the first complete checkpoint", lambda: complete_checkpoints(run), JOB_TIMEOUT, run, poll=0.1)
    assert job_info(job)["JobState"] == "RUNNING", job_logs(run)
    killed = kill_training_on(cluster.namespaces[1], job)
    lost_at = time.monotonic()
    assert killed, f"no training process of job {job} found in {cluster.namespaces[1]}\n{job_logs(run)}"
    info = wait_for_end(job, run, HANG_TIMEOUT_MIN * 60 + 60)
    took = time.monotonic() - lost_at
    logs = job_logs(run)
    assert info["JobState"] == "FAILED", logs
    assert took < HANG_TIMEOUT_MIN * 60, f"the job needed {took:.0f} s to fail\n{logs}"
    assert f"first failed node: {lost} (srun: error: {lost}: task 1" in batch_log(run, job), logs
    last = find_resume_point(run, "auto")  # the latest checkpoint with its completion marker
    assert last is not None and not (run / "summary.json").exists(), logs
    step = json.loads((last / "COMPLETE.json").read_text())["step"]
    assert 4 <= step < STEPS and step % 4 == 0, logs

    again = int(
        slurm(
            "sbatch",
            "--parsable",
            "--export=ALL,ROCOFT_SLURM_SKIP_DOCTOR=1",  # as the message says
            str(work / "lost.sbatch"),
        )
        .strip()
        .split(";")[0]
    )
    jobs.append(again)
    info = wait_for_end(again, run, JOB_TIMEOUT)
    logs = job_logs(run)
    assert info["JobState"] == "COMPLETED", logs
    assert f"resumed from {last} at step {step}" in logs, logs
    assert steps_logged(run) == list(range(1, STEPS + 1))
    assert_same_run(run, reference)
