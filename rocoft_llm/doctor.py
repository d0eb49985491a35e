"""``rocoft-llm doctor``: the checks a multi-node job runs before training, each with a verdict -
versions, visible GPUs, an all-reduce across all ranks (with a timeout, so a broken network fails
fast), a write/read check of the output directory from every node (shared filesystem), and free
disk for checkpoints. Run it under torchrun (all ranks) or alone."""

from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path

import torch

from . import distributed as d


def _versions() -> str:
    import importlib.metadata as md

    parts = [f"python {'.'.join(map(str, __import__('sys').version_info[:3]))}", f"torch {torch.__version__}"]
    for pkg in ("transformers", "deepspeed", "rocoft-llm"):
        try:
            parts.append(f"{pkg} {md.version(pkg)}")
        except md.PackageNotFoundError:
            parts.append(f"{pkg} missing")
    return ", ".join(parts)


def run_doctor(out_dir: str, timeout_s: int = 120, min_free_gib: float = 1.0) -> list[tuple[str, bool, str]]:
    """[(check, ok, detail)] as seen by rank 0 (every rank takes part in the collective checks)."""
    d.init_distributed("none", timeout_s / 60)
    device = d.device_for_rank()
    results = [("versions", True, _versions())]
    gpus = torch.cuda.device_count()
    names = sorted({torch.cuda.get_device_name(i) for i in range(gpus)})
    results.append(
        (
            "gpus",
            True,
            f"{gpus} visible on {socket.gethostname()}"
            + (f": {', '.join(names)}" if names else " (CPU only)"),
        )
    )
    t0 = time.perf_counter()
    try:
        total = d.all_sum(1.0, device)
        ok = int(total) == d.world_size()
        results.append(
            (
                "all-reduce",
                ok,
                f"sum over {d.world_size()} ranks = {int(total)} in "
                f"{1000 * (time.perf_counter() - t0):.0f} ms",
            )
        )
    except Exception as e:  # noqa: BLE001 - report, do not crash the verdict
        results.append(("all-reduce", False, f"{type(e).__name__}: {e}"))
    out = Path(out_dir)
    probe_dir = out / ".doctor"
    token = f"{socket.gethostname()}-{d.rank()}-{os.getpid()}"
    try:
        probe_dir.mkdir(parents=True, exist_ok=True)
        (probe_dir / f"rank{d.rank()}").write_text(token)
        d.barrier()
        if d.is_main():
            seen = [
                (probe_dir / f"rank{r}").read_text() if (probe_dir / f"rank{r}").is_file() else None
                for r in range(d.world_size())
            ]
            missing = [r for r, s in enumerate(seen) if s is None]
            hosts = sorted({s.rsplit("-", 2)[0] for s in seen if s})
            results.append(
                (
                    "shared output dir",
                    not missing,
                    f"{out}: files of all {d.world_size()} ranks visible "
                    f"from rank 0 (hosts {', '.join(hosts)})"
                    if not missing
                    else f"{out}: rank 0 cannot see the files of ranks {missing}: not a shared filesystem",
                )
            )
        d.barrier()
        if d.is_main():
            shutil.rmtree(probe_dir, ignore_errors=True)
    except OSError as e:
        results.append(("shared output dir", False, f"{out}: {e}"))
    free = shutil.disk_usage(out if out.exists() else out.parent).free / 2**30
    results.append(
        ("free disk", free >= min_free_gib, f"{free:.1f} GiB free at {out} (need >= {min_free_gib} GiB)")
    )
    return results
