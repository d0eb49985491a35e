"""Run telemetry on rank 0: metrics.jsonl per optimizer step, tensorboard events, wandb when asked
for and installed, and a loss-curve PNG at the end. Secrets (wandb keys) stay in the environment."""

from __future__ import annotations

import json
import logging
import resource
import sys
from pathlib import Path

import torch

from ..errors import RoCoFTError
from ..io_utils import append_line, atomic_write_text, disk_full_guard

log = logging.getLogger("rocoft_llm")

#: dense bf16 peak FLOP/s per GPU, for the MFU estimate (None elsewhere: MFU not reported)
PEAK_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 125e12}


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_FLOPS.items() if k in name), None)


def peak_memory_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return kib / 2**20 if sys.platform != "darwin" else kib / 2**30


class MetricsLogger:
    def __init__(self, output_dir: Path, report_to: list[str], enabled: bool, run_config: dict):
        self.enabled = enabled
        self.path = Path(output_dir) / "metrics.jsonl"
        self.history: list[dict] = []
        self.tb = self.wandb = None
        if not enabled:
            return
        if "tensorboard" in report_to:
            from torch.utils.tensorboard import SummaryWriter

            with disk_full_guard(Path(output_dir) / "tensorboard", "tensorboard events"):
                self.tb = SummaryWriter(str(Path(output_dir) / "tensorboard"))
        if "wandb" in report_to:
            try:
                import wandb

                self.wandb = wandb.init(config=run_config, dir=str(output_dir))
            except ImportError:
                log.warning("report_to includes wandb but wandb is not installed; skipping it")

    def truncate_after(self, step: int) -> None:
        """On resume: drop records of steps after the checkpoint (they will be trained again), and a
        torn last line (a crash or a full disk in the middle of an append) with a warning."""
        if not self.enabled or not self.path.is_file():
            return
        lines = self.path.read_bytes().decode("utf-8", errors="replace").splitlines()
        records = []
        for n, line in enumerate(lines, start=1):
            try:
                records.append((json.loads(line)["step"], line))
            except (json.JSONDecodeError, KeyError, TypeError):
                if n < len(lines):
                    raise RoCoFTError(
                        f"{self.path}: line {n} is not a metrics record ({line[:60]!r}) although later lines "
                        "are; the file was edited or damaged. Remove that line, then resume again."
                    ) from None
                log.warning(
                    "%s: dropping its torn last line %d (%r...), cut short by a crash or a full disk",
                    self.path,
                    n,
                    line[:40],
                )
        atomic_write_text(self.path, "".join(line + "\n" for s, line in records if s <= step))

    def log(self, record: dict) -> None:
        if not self.enabled:
            return
        self.history.append(record)
        append_line(self.path, json.dumps(record), "training metrics")
        if self.tb:  # a full disk here is the same one message as for metrics.jsonl
            with disk_full_guard(self.path.parent / "tensorboard", "tensorboard events"):
                for k, v in record.items():
                    if isinstance(v, (int, float)) and k != "step":
                        self.tb.add_scalar(f"train/{k}", v, record["step"])
        if self.wandb:
            self.wandb.log(record, step=record["step"])

    def last_record(self) -> dict:
        """The last step's record: this process's, else (a resume that had no step left to train)
        the last line of metrics.jsonl; {} when there is none."""
        if self.history:
            return self.history[-1]
        if not self.enabled or not self.path.is_file():
            return {}
        lines = self.path.read_text().splitlines()
        try:
            return json.loads(lines[-1]) if lines else {}
        except json.JSONDecodeError:
            return {}

    def close(self, output_dir: Path) -> None:
        if not self.enabled:
            return
        if self.tb:
            with disk_full_guard(Path(output_dir) / "tensorboard", "tensorboard events"):
                self.tb.close()
        if self.wandb:
            self.wandb.finish()
        history = (
            [json.loads(line) for line in self.path.read_text().splitlines()] if self.path.is_file() else []
        )
        if history:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            fig, ax = plt.subplots(figsize=(6, 3.5))
            ax.plot([h["step"] for h in history], [h["loss"] for h in history], lw=1.2)
            ax.set_xlabel("optimizer step")
            ax.set_ylabel("loss (per target token)")
            ax.grid(alpha=0.3)
            fig.tight_layout()
            with disk_full_guard(Path(output_dir) / "loss_curve.png", "loss curve"):
                fig.savefig(Path(output_dir) / "loss_curve.png", dpi=110)
            plt.close(fig)


def seconds_per_1k_tokens(run_dir: Path) -> list[float]:
    """A finished run's seconds per 1,000 tokens at each logged step (from its metrics.jsonl), the
    first step (allocations, compilation) excluded: the per-token cost benchmarks compare."""
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines[1:]]
    return [1000 / r["tokens_per_s"] for r in rows if r.get("tokens_per_s")]
