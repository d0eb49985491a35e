"""``rocoft-llm train RECIPE``: a run reads top to bottom -
config -> data -> model -> wrap -> engine -> loop -> save.

Output directory: the method's product (``adapter/`` for RoCoFT; ``lora_adapter/``, ``model/`` ...:
``Method.output_folder``), optional ``merged/``, ``metrics.jsonl``, ``tensorboard/``, ``loss_curve.png``,
``recipe.resolved.yaml``, ``data_manifest.json`` (what it trained on, for contamination flags),
``summary.json`` (trainable params, tokens seen, wall time, peak memory) and ``checkpoints/``,
plus the ownership marker and the run lock of :mod:`rocoft_llm.ownership` (held while the run lives).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import torch

from ..architectures import packing_problem
from ..config import dump_recipe, load_recipe, recipe_to_dict
from ..config.checks import run_steps, warmup_problem
from ..distributed import barrier, device_for_rank, init_distributed, is_main, launched_world_size, world_size
from ..errors import DiskFullError, RoCoFTError
from ..io_utils import atomic_write_json, atomic_write_text, check_writable
from ..methods import all_methods, get_method
from ..models.gguf_import import materialize_recipe_model
from ..ownership import (
    OWNER_MARKER,
    RunLock,
    check_not_a_file,
    check_replaceable,
    check_unlocked,
    holds_results,
    listing,
    mark_output,
    run_strays,
    target_path,
)
from .backends import deepspeed_config, make_backend
from .batching import BatchPlan
from .checkpoint import find_resume_point, load_checkpoint, resume_note, save_checkpoint, verify_checkpoint
from .loop import LoopContext, flops_per_token, run_loop, seed_everything
from .metrics import MetricsLogger, peak_memory_gib
from .model_setup import build_model, calibration_from
from .validation import make_validator

log = logging.getLogger("rocoft_llm")


def prepare_output_dir(out: Path, resume: str | None, overwrite: bool, recipe_path: str) -> Path | None:
    """Decide fresh start / resume; never mixes a new run into an old directory unless asked, never
    deletes a directory rocoft-llm did not write, never touches one a live run holds. ``out`` is the
    normalised target (:func:`~..ownership.target_path`, made once by :func:`train`): every check
    sees the real target."""
    check_not_a_file(out, "output")
    if out.is_dir():
        check_unlocked(out, "output")
    ckpt = find_resume_point(out, resume) if resume else None
    if ckpt is None and holds_results(out):
        if resume == "auto" and not (out / "checkpoints").exists():
            # auto-resume before the first checkpoint: the partial run restarts from step 0, but only
            # in a directory a run of rocoft-llm started (never a user's folder that merely exists)
            if run_strays(out, run_folders()):
                raise RoCoFTError(
                    f"output directory {out} is not empty and holds no run of rocoft-llm to resume "
                    f"(it holds: {listing(out)}); choose another output.dir."
                )
            if is_main():
                (out / "metrics.jsonl").unlink(missing_ok=True)
        elif not overwrite:
            raise RoCoFTError(
                f"output directory {out} is not empty; pass --overwrite (output.overwrite=true) to replace "
                "it, train.resume=auto to continue it, or choose another output.dir."
            )
        else:
            check_replaceable(out, "output", recipe_path, run_folders())
            if is_main():
                shutil.rmtree(out)
    barrier()
    return ckpt


def run_folders() -> frozenset[str]:
    """The product folders a run directory may hold besides :data:`~..ownership.RUN_ENTRIES`."""
    return frozenset(m.output_folder for m in all_methods())


def load_training_data(recipe):
    """Prepared (tokenized, cached) training data; all ranks call it, one prepares under a lock."""
    from ..data.prepare import PrepareOptions, load_prepared, prepare

    d = recipe.data
    path, _ = prepare(
        PrepareOptions.from_recipe(recipe),
        progress=is_main(),
        cache_root=Path(d.cache_dir) / "prepared" if d.cache_dir else None,
    )
    return load_prepared(path)


def train(recipe_path: str, overrides: list[str] | None = None, overwrite: bool = False) -> Path:
    # config
    if (
        overwrite
    ):  # before the checks, so --overwrite meets the same conflict checks as output.overwrite: true
        overrides = [*(overrides or []), "output.overwrite=true"]
    recipe, checks = load_recipe(
        recipe_path, list(overrides or []), world_size=launched_world_size(), need_model=True
    )
    recipe = materialize_recipe_model(recipe)  # a .gguf model.name_or_path is converted once (cached)
    steps = checks.derived.get("optimizer_steps")  # the recipe's warmup warning is said once, below,
    later = warmup_problem(recipe.train.warmup_steps, steps) if steps else None  # with the run's real steps
    for w in checks.warnings:
        if w != later:
            log.warning("recipe: %s", w)
    init_distributed(recipe.dist.backend, recipe.dist.timeout_minutes)
    device, world = device_for_rank(), world_size()
    out = target_path(recipe.output.dir, "output")  # once, before any check
    ckpt = prepare_output_dir(out, recipe.train.resume, recipe.output.overwrite, recipe_path)
    check_writable(out, "output directory", inside=True)  # before minutes of data and model loading
    recipe_dict = recipe_to_dict(recipe)
    if ckpt is not None:  # a checkpoint that cannot be resumed is refused before this run writes anything
        verify_checkpoint(ckpt, recipe_dict, world)
    lock = None
    if is_main():
        out.mkdir(parents=True, exist_ok=True)
        lock = RunLock(out, "output")  # released by the OS if this process dies
        if not (out / OWNER_MARKER).is_file():
            mark_output(out, "training run")
    try:
        return run_training(recipe, recipe_path, out, ckpt, device, world)
    except DiskFullError as e:
        raise e.with_note(resume_note(out)) from None
    finally:
        if lock is not None:
            lock.release()


def run_training(recipe, recipe_path: str, out: Path, ckpt: Path | None, device, world: int) -> Path:
    """Everything after the output directory is claimed: data -> model -> wrap -> engine -> loop -> save."""
    recipe_dict, recipe_yaml = recipe_to_dict(recipe), dump_recipe(recipe)
    if is_main():
        atomic_write_text(out / "recipe.resolved.yaml", recipe_yaml)
    seed_everything(recipe.train.seed)
    started = time.time()

    # data
    dataset, manifest = load_training_data(recipe)
    if is_main():
        atomic_write_json(out / "data_manifest.json", manifest)
    t = recipe.train
    plan = BatchPlan(len(dataset), t.global_batch_size, t.micro_batch_size, world, t.seed)
    if plan.steps_per_epoch == 0:
        raise RoCoFTError(
            f"{len(dataset)} training examples do not fill one global batch of {t.global_batch_size}; "
            "lower train.global_batch_size or add data."
        )
    total_steps = t.max_steps or run_steps(len(dataset), t.global_batch_size, t.epochs)
    problem = warmup_problem(t.warmup_steps, total_steps)
    if problem and is_main():
        log.warning("%s: %s", recipe_path, problem)
    labels_cache = dataset["labels"]

    # model
    pad_id = recipe.model.pad_token_id
    method = get_method(recipe.method)
    calibration = None
    if method.needs_calibration(recipe):
        calibration = list(calibration_from(dataset, plan, pad_id, recipe.rocoft.calibration_batches))
    ds_config = deepspeed_config(recipe, plan.accumulation) if recipe.dist.backend == "deepspeed" else None
    model, n_train, n_total = build_model(recipe, calibration, ds_config)
    check_vocab(dataset, model.config, recipe)
    if t.packing:  # `validate` checks it when it can read the config; the loaded model always can
        kernel = getattr(model.config, "_attn_implementation", None) or recipe.model.attn_implementation
        problem = packing_problem(model.config.model_type, kernel)
        if problem:
            raise RoCoFTError(f"{recipe_path}: {problem}")

    # wrap -> engine
    backend = make_backend(recipe, device, world, total_steps, ds_config)
    params = backend.wrap(model)
    state = {"step": 0, "tokens_seen": 0, "target_tokens_seen": 0}
    if ckpt is not None:
        state = load_checkpoint(ckpt, backend, params, recipe_dict)
        log.info("resumed from %s at step %d", ckpt, state["step"])
        if state["step"] >= total_steps and (out / "summary.json").is_file():
            log.info("the run in %s is already complete (%d steps); nothing to do", out, total_steps)
            return out
    logger = MetricsLogger(out, recipe.output.report_to, is_main(), recipe_dict)
    logger.truncate_after(state["step"])  # a resumed run repeats the steps after its checkpoint

    def save(step: int, st: dict) -> None:
        save_checkpoint(out, step, backend, params, st, recipe_dict, recipe_yaml, t.save_total_limit)

    # loop
    validate = make_validator(recipe, backend, pad_id)  # eval.nll_data: the learning curve
    state = run_loop(
        LoopContext(
            backend=backend,
            params=params,
            dataset=dataset,
            labels=labels_cache,
            plan=plan,
            total_steps=total_steps,
            pad_id=pad_id,
            log_steps=t.log_steps,
            save_steps=t.save_steps,
            flops_per_token=flops_per_token(n_total, method.trains_all_weights),
            logger=logger,
            save=save,
            validate=validate,
            validate_steps=recipe.eval.nll_steps or 0,
            packing=t.packing,
        ),
        state,
    )

    # save
    save(total_steps, state)
    save_final(recipe, backend.module, out, manifest)
    last = logger.last_record()  # read once: a resume with no steps left reads the whole file
    summary = {
        "method": recipe.method,
        "trainable_parameters": n_train,
        "total_parameters": n_total,
        "steps": total_steps,
        "world_size": world,
        "gradient_accumulation": plan.accumulation,
        "examples_seen": state.get("examples_seen"),
        "tokens_seen": state.get("tokens_seen"),
        "target_tokens_seen": state.get("target_tokens_seen"),
        "wall_seconds": round(time.time() - started, 2),
        "peak_memory_gib_rank0": round(peak_memory_gib(device), 3),
        "frozen_param_bytes_rank0": local_param_bytes(backend.module, trainable=False),
        "trainable_param_bytes_rank0": local_param_bytes(backend.module, trainable=True),
        "optimizer_state_bytes_rank0": optimizer_state_bytes(backend.optimizer),
        "final_loss": last.get("loss"),
        "train_seconds": round(state.get("train_seconds", 0.0), 2),
        "final_val_nll": last.get("val_nll"),
    }
    if is_main():
        logger.close(out)
        atomic_write_json(out / "summary.json", summary)
        log.info("run finished: %s", json.dumps(summary))
    barrier()
    return out


def check_vocab(dataset, config, recipe) -> None:
    """Token ids must fit the embedding (a mismatched tokenizer otherwise fails deep in torch)."""
    top = max((max(ids) for ids in dataset["input_ids"] if ids), default=0)
    vocab = getattr(config, "vocab_size", None)
    if vocab is not None and top >= vocab:
        raise RoCoFTError(
            f"the prepared data has token id {top} but the model's vocabulary has {vocab} entries: the "
            f"tokenizer ({recipe.model.tokenizer or recipe.model.name_or_path}) does not belong to "
            f"{recipe.model.name_or_path}. Set model.tokenizer to the model's own tokenizer."
        )


def _local_bytes(t: torch.Tensor) -> int:
    """Bytes of the part of ``t`` this rank holds: a DTensor's local shard (FSDP2), a ZeRO-3
    parameter's partition (``ds_tensor``), or the tensor itself."""
    local = t.to_local() if hasattr(t, "to_local") else getattr(t, "ds_tensor", t)
    return local.numel() * local.element_size()


def local_param_bytes(module, trainable: bool) -> int:
    """Bytes of the trainable (or frozen) parameters THIS rank holds: sharding is real when the
    frozen figure is ~1/N of the single-process one."""
    return sum(_local_bytes(p) for p in module.parameters() if p.requires_grad == trainable)


def optimizer_state_bytes(optimizer) -> int:
    """Bytes of optimizer state THIS rank holds: AdamW moments and step counters (local shards under
    FSDP2), plus the fp32 master partitions a DeepSpeed ZeRO-3 optimizer keeps beside the model."""
    inner = optimizer
    while getattr(inner, "optimizer", None) is not None and not isinstance(inner, torch.optim.Optimizer):
        inner = inner.optimizer  # DeepSpeed's ZeRO optimizer wraps the torch optimizer
    total = sum(
        _local_bytes(v) for state in inner.state.values() for v in state.values() if torch.is_tensor(v)
    )
    return total + sum(_local_bytes(t) for t in getattr(optimizer, "fp32_partitioned_groups_flat", []))


def save_final(recipe, module, out: Path, manifest: dict) -> None:
    """The run's product, written by its method (RoCoFT adapter, LoRA adapter, full model ...), plus a
    merged model when asked and the method supports it."""
    metadata = {
        "data_manifest_key": manifest.get("key"),
        "data_sources": [s["name"] for s in manifest["sources"]],
        "contamination": manifest.get("contamination", {}).get("flagged_test_sets", {}),
    }
    method = get_method(recipe.method)
    method.save(module, out / method.output_folder, recipe, metadata)
    barrier()
    if recipe.output.merge and method.mergeable:
        method.merge_after_training(recipe, out)
