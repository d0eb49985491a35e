"""The training loop: identical for every method and backend.

Per optimizer step: the global batch's target tokens are counted (every rank, locally); each
micro-batch's summed token loss is divided by that count and multiplied by the world size (the
backends average gradients over ranks), so ``batch 4 x acc 1 == batch 1 x acc 4 == 2 ranks x
batch 2``. A termination signal (SLURM preemption) only sets a flag; all ranks agree on it at the
next step boundary, save together (no deadlock) and stop.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..distributed import all_sum, any_rank, is_main, rank
from .batching import BatchPlan, micro_batch, target_tokens
from .metrics import peak_flops, peak_memory_gib
from .model_setup import target_mask, token_loss_sum

log = logging.getLogger("rocoft_llm")


class Preempted(Exception):
    """Stopped by a termination signal after saving a checkpoint; resume with train.resume=auto."""


class StopFlag:
    """SIGTERM, SIGUSR1 (SLURM preemption) and SIGINT (Ctrl-C) set a flag: the run saves a checkpoint
    at the next step boundary and stops (exit 75). A second Ctrl-C stops at once, without saving."""

    def __init__(self):
        self.signum = None
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if signum == signal.SIGINT and self.signum is not None:
            raise KeyboardInterrupt  # the second Ctrl-C: the user will not wait for the step to end
        self.signum = signum

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


@dataclass(frozen=True)
class LoopContext:
    """What the loop reads, resolved once by ``train.run.train`` (the loop never reads the recipe)."""

    backend: Any  #: a ``train.backends.Backend``: forward/backward/step, device, world
    params: dict[str, torch.nn.Parameter]  #: the trainable parameters as the optimizer sees them
    dataset: Any  #: the tokenized ``datasets.Dataset`` (input_ids, attention_mask, labels)
    labels: list  #: ``dataset["labels"]`` read once: target tokens of every global batch
    plan: BatchPlan  #: which examples each step, rank and micro-batch takes
    total_steps: int
    pad_id: int
    log_steps: int  #: train.log_steps: metrics every N steps (and the last)
    save_steps: int  #: train.save_steps: a checkpoint every N steps (0: only at the end / on a signal)
    flops_per_token: float  #: for MFU on known GPUs
    logger: Any  #: a ``train.metrics.MetricsLogger``
    save: Callable[[int, dict], None]  #: ``save(step, state)`` writes a checkpoint (collective)
    validate: Callable[[], tuple[float, int]] | None = None  #: held-out NLL (``train.validation``)
    validate_steps: int = 0  #: eval.nll_steps: validate every N steps (0: after the last only)
    packing: bool = False  #: train.packing: padding-free rows of concatenated examples


def run_loop(ctx: LoopContext, state: dict) -> dict:
    """Train steps ``state["step"] .. ctx.total_steps-1``; returns the updated trainer state."""
    backend, plan, logger, save = ctx.backend, ctx.plan, ctx.logger, ctx.save
    start_step, total_steps = state["step"], ctx.total_steps
    device = backend.device
    peak = peak_flops(device)
    bar = None
    tty = sys.stderr.isatty()
    if is_main() and tty:
        from tqdm.auto import tqdm

        bar = tqdm(total=total_steps, initial=start_step, desc="train", unit="step", dynamic_ncols=True)
    every = max(1, (total_steps - start_step) // 20)
    run_started = time.perf_counter()
    # simulate a preemption after this step (tests, and rehearsing a requeue on a real cluster)
    stop_at = int(os.environ.get("ROCOFT_STOP_AT_STEP", "0"))
    with StopFlag() as stop:
        for step in range(start_step, total_steps):
            started = time.perf_counter()
            global_idx = plan.global_indices(step)
            n_target = sum(target_tokens(ctx.labels[i]) for i in global_idx)
            micro = plan.micro_indices(step, rank())
            loss_sum, tokens_local = 0.0, 0
            for m, idx in enumerate(micro):
                is_last = m == len(micro) - 1
                examples = [ctx.dataset[i] for i in idx]
                batch = {k: v.to(device) for k, v in micro_batch(examples, ctx.pad_id, ctx.packing).items()}
                batch["logits_to_keep"] = target_mask(
                    batch["labels"]
                )  # vocabulary projection at targets only
                tokens_local += sum(len(e["input_ids"]) for e in examples)
                with backend.micro_context(is_last):
                    s = token_loss_sum(backend.forward(batch), batch["labels"], batch["logits_to_keep"])
                    backend.backward(s / max(n_target, 1) * backend.world, is_last)
                loss_sum += float(s.detach())
            lr = backend.lr
            grad_norm = backend.step(ctx.params)
            loss = all_sum(loss_sum, device) / max(n_target, 1)
            tokens = all_sum(float(tokens_local), device)
            elapsed = time.perf_counter() - started
            state["train_seconds"] = state.get("train_seconds", 0.0) + elapsed  # optimizer steps only
            epoch = step // plan.steps_per_epoch
            state.update(
                step=step + 1,
                epoch=epoch,
                examples_seen=(step + 1) * plan.global_batch,
                tokens_seen=state.get("tokens_seen", 0) + int(tokens),
                target_tokens_seen=state.get("target_tokens_seen", 0) + n_target,
            )
            record = {
                "step": step + 1,
                "epoch": round((step + 1) / plan.steps_per_epoch, 4),
                "loss": loss,
                "lr": lr,
                "grad_norm": grad_norm,
                "tokens_per_s": tokens / elapsed,
                "step_s": elapsed,
                "peak_mem_gib": round(peak_memory_gib(device), 3),
                "train_seconds": round(state["train_seconds"], 3),
            }
            validating = ctx.validate is not None and (
                step + 1 == total_steps or (ctx.validate_steps and (step + 1) % ctx.validate_steps == 0)
            )
            if validating:
                record["val_nll"], record["val_tokens"] = ctx.validate()
            if peak:
                record["mfu"] = tokens / elapsed * ctx.flops_per_token / (peak * backend.world)
            if (step + 1) % ctx.log_steps == 0 or step + 1 == total_steps or validating:
                logger.log(record)
            if bar is not None:
                bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}")
                bar.update(1)
            elif is_main() and ((step + 1 - start_step) % every == 0 or step + 1 == total_steps):
                done = step + 1 - start_step
                eta = (time.perf_counter() - run_started) / done * (total_steps - step - 1)
                log.info(
                    "step %d/%d  loss %.4f  lr %.2e  grad_norm %.3g  %.0f tok/s  ETA %.0fs",
                    step + 1,
                    total_steps,
                    loss,
                    lr,
                    grad_norm,
                    record["tokens_per_s"],
                    eta,
                )
            last = step + 1 == total_steps
            if stop_at and step + 1 == stop_at:
                stop.signum = signal.SIGTERM
            if any_rank(stop.signum is not None, device):
                save(step + 1, state)
                if bar is not None:
                    bar.close()
                raise Preempted(
                    f"stopped by a termination signal after step {step + 1}; a checkpoint was saved. "
                    "Run again with train.resume=auto to continue."
                )
            if ctx.save_steps and (step + 1) % ctx.save_steps == 0 and not last:
                save(step + 1, state)
    if bar is not None:
        bar.close()
    return state


def flops_per_token(n_total: int, trains_all_weights: bool) -> float:
    """Forward 2N + backward-to-inputs 2N (+ 2N weight gradients when every weight trains)."""
    return (6 if trains_all_weights else 4) * n_total


def seed_everything(seed: int) -> None:
    """Python, numpy and torch (all devices) RNGs, via ``transformers.set_seed``."""
    from transformers import set_seed

    set_seed(seed)
