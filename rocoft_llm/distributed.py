"""Process-group helpers: init from torchrun/deepspeed environment variables, rank queries, and
the few collectives the trainer needs (agreeing on a stop flag, summing a scalar)."""

from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return rank() == 0


def launched_world_size() -> int:
    """WORLD_SIZE as set by torchrun / the deepspeed launcher (1 when run directly)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def device_for_rank() -> torch.device:
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def init_distributed(backend_name: str, timeout_minutes: float) -> None:
    """Start the process group when launched with several processes (nccl on GPU, gloo on CPU), or by
    torchrun with one process and a sharding backend (FSDP2 / ZeRO-3 on a single GPU)."""
    if backend_name == "deepspeed" and not torch.cuda.is_available():
        skip_deepspeed_shm_op()  # before any DeepSpeed process group, ours or one it starts itself
    one_process_launch = launched_world_size() == 1 and "RANK" in os.environ and backend_name != "none"
    if is_distributed() or (launched_world_size() <= 1 and not one_process_launch):
        return
    pg_backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend_name == "deepspeed":
        import deepspeed

        deepspeed.init_distributed(dist_backend=pg_backend, timeout=timedelta(minutes=timeout_minutes))
    else:
        dist.init_process_group(pg_backend, timeout=timedelta(minutes=timeout_minutes))


DEEPSPEED_SHM_OP = "deepspeed_shm_comm"


def skip_deepspeed_shm_op() -> None:
    """Tell DeepSpeed its CPU shared-memory all-reduce op is unavailable, before its process group
    starts. On CPU, DeepSpeed otherwise JIT-compiles that op (C++ with OpenMP) at every first start
    in a new environment: 30 s on an idle 2-core machine, 100 s on a busy one, and a failed start
    where no compiler is installed; only its inference all-reduce uses the op, which training never
    calls, so every collective of a run goes through gloo either way."""
    import deepspeed.ops

    deepspeed.ops.__compatible_ops__ = {**deepspeed.ops.__compatible_ops__, DEEPSPEED_SHM_OP: False}


def shutdown_distributed() -> None:
    """Leave the process group at the end of a command that every rank completed: a barrier (no
    rank tears down the rendezvous store, hosted by rank 0, while another still uses it), then
    ``destroy_process_group``. Exiting with a live gloo group can abort a rank in C++ teardown
    ("terminate called without an active exception", SIGABRT) after all its work succeeded."""
    if is_distributed():
        dist.barrier()
        dist.destroy_process_group()


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def _reduce(value: float, op: str, device: torch.device) -> float:
    if not is_distributed():
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=getattr(dist.ReduceOp, op))
    return float(t.item())


def all_sum(value: float, device: torch.device) -> float:
    return _reduce(value, "SUM", device)


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank if it is true on any rank (a collective: call it on all ranks)."""
    return _reduce(1.0 if flag else 0.0, "MAX", device) > 0


def gather_rows(rows: list[dict]) -> list[dict]:
    """Every rank's per-item rows, on every rank, in item order (``row["index"]``): how a
    data-parallel evaluation puts its shards back together. One process: the rows as they are."""
    if not is_distributed():
        return rows
    parts = [None] * world_size()
    dist.all_gather_object(parts, rows)
    return sorted((r for part in parts for r in part), key=lambda r: r["index"])
