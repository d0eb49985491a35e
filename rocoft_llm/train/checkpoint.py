"""Checkpoints for exact resume.

``<output>/checkpoints/step-00000012/``: ``trainable.safetensors`` (trainable tensors, gathered
one at a time - never the whole model), optimizer + scheduler state (``optimizer.pt`` from rank 0
for one process and DDP; FSDP2's sharded AdamW state through ``torch.distributed.checkpoint`` in
``optimizer_dcp/``; DeepSpeed's own files without frozen weights), per-rank RNG states,
``trainer_state.json`` (step, epoch, data position, tokens seen; checkpoints are taken at optimizer
step boundaries, so the accumulation micro-step is always 0), the resolved recipe, and
``COMPLETE.json`` written LAST.

Kept on top of the libraries: the directory is assembled under a temporary name and renamed, and
a directory without the marker is partial and never resumed from (DCP writes its files in place,
with no marker, so an interrupted save could look loadable); the sha256 of the trainable tensors;
the list of recipe changes that break resume, and errors that say what to do.

Every optimizer step sees the same global batch whatever the world size (the data plan and the
loss normalisation are global), so a checkpoint resumes on another number of ranks where its
state can be resharded: one process, DDP (the state is replicated) and FSDP2 (DCP reshards).
DeepSpeed ZeRO checkpoints are partitioned for their world size and still need the same one.
A changed world size cannot reproduce per-rank random draws (dropout): each rank restores its own
rank's RNG when the checkpoint has it, else rank 0's.
"""

from __future__ import annotations

import logging
import pickle
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..distributed import barrier, is_main, rank
from ..errors import DiskFullError, RoCoFTError
from ..io_utils import (
    atomic_write_json,
    atomic_write_text,
    disk_full_guard,
    free_space,
    read_json,
    sha256_file,
)
from ..methods import all_methods
from ..rocoft.adapter import verify_adapter_tensors
from ..rocoft.gather import gather_on_main

log = logging.getLogger("rocoft_llm")
CKPT_ROOT = "checkpoints"
MARKER = "COMPLETE.json"
TRAINABLE = "trainable.safetensors"
#: recipe keys whose change makes a checkpoint meaningless for the new run (each method adds its
#: own section's keys: :func:`resume_keys`)
COMMON_RESUME_KEYS = {
    "model": ("name_or_path", "random_init", "dtype", "quantize"),
    "data": (
        "train",
        "source",
        "format",
        "template",
        "chat_template",
        "cutoff_len",
        "train_on_inputs",
        "add_eos",
        "overlength",
    ),
    "train": ("global_batch_size", "seed", "precision"),
    "dist": ("backend", "zero_stage"),
}


#: signature keys added after checkpoints were first written -> the value every run had before the key
#: existed: a checkpoint without the key resumes when the recipe still has that value
ADDED_RESUME_KEYS = {"data.format": "auto", "data.chat_template": None, "model.quantize": None}


def step_dir(output_dir: Path, step: int) -> Path:
    return Path(output_dir) / CKPT_ROOT / f"step-{step:08d}"


def rng_state() -> dict:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": (np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


#: backends whose checkpoints only load on the world size that wrote them
WORLD_BOUND_BACKENDS = ("deepspeed",)


def resume_keys() -> dict[str, tuple[str, ...]]:
    """Section -> keys that a resumed run must share with its checkpoint: the common ones plus every
    registered method's own section (all of them, so a signature never depends on the method)."""
    keys = dict(COMMON_RESUME_KEYS)
    keys.update({m.section: m.resume_keys for m in all_methods() if m.section and m.resume_keys})
    return keys


def resume_signature(recipe_dict: dict, world: int) -> dict:
    sig = {
        f"{section}.{key}": recipe_dict[section][key]
        for section, keys in resume_keys().items()
        for key in keys
        if section in recipe_dict
    }
    if recipe_dict["dist"]["backend"] in WORLD_BOUND_BACKENDS:
        sig["world_size"] = world
    sig["method"] = recipe_dict["method"]
    return sig


def save_checkpoint(
    output_dir: Path,
    step: int,
    backend,
    params: dict,
    trainer_state: dict,
    recipe_dict: dict,
    recipe_yaml: str,
    keep_last: int,
) -> Path:
    """Collective: every rank calls it. Returns the final directory."""
    final = step_dir(output_dir, step)
    tmp = final.parent / f".{final.name}.tmp"
    if is_main():
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    try:
        with disk_full_guard(tmp, "checkpoint"):
            _write_checkpoint(tmp, final, step, backend, params, trainer_state, recipe_dict, recipe_yaml)
    except DiskFullError as e:  # free what the partial save took; the complete checkpoints stay
        if is_main():
            shutil.rmtree(tmp, ignore_errors=True)
        raise DiskFullError(e.path.replace(str(tmp), str(final)), e.what, free_space(final)) from None
    if is_main():
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        prune(output_dir, keep_last)
    barrier()
    return final


def _write_checkpoint(tmp: Path, final: Path, step, backend, params, trainer_state, recipe_dict, recipe_yaml):
    """Write every file of one checkpoint into ``tmp`` (collective), the marker last."""
    barrier()
    tensors = {
        name: t.float().contiguous() for name, t in gather_on_main(params).items()
    }  # collective, rank 0 keeps
    if is_main():
        # non-empty and finite before anything is written (the file's integrity is the sha256 in MARKER)
        verify_adapter_tensors(
            tensors, {n: tuple(t.shape) for n, t in tensors.items()}, f"checkpoint {final}"
        )
        save_file(tensors, str(tmp / TRAINABLE))
    del tensors  # only rank 0 writes them; no rank keeps a full copy through the optimizer save
    if is_main():
        opt_state = backend.optimizer_state()
        if opt_state is not None:
            torch.save(opt_state, tmp / "optimizer.pt")
        atomic_write_json(tmp / "trainer_state.json", {**trainer_state, "micro_step": 0})
        atomic_write_text(tmp / "recipe.yaml", recipe_yaml)
        atomic_write_json(tmp / "resume_signature.json", resume_signature(recipe_dict, backend.world))
    backend.save_sharded_state(tmp)  # collective
    torch.save(rng_state(), tmp / f"rng-rank{rank()}.pt")
    barrier()
    if is_main():
        files = sorted(p.name for p in tmp.rglob("*") if p.is_file())
        atomic_write_json(
            tmp / MARKER, {"step": step, "files": files, "trainable_sha256": sha256_file(tmp / TRAINABLE)}
        )


def complete_checkpoints(output_dir: Path) -> list[Path]:
    root = Path(output_dir) / CKPT_ROOT
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.name.startswith("step-") and (p / MARKER).is_file())


def prune(output_dir: Path, keep_last: int) -> None:
    for old in complete_checkpoints(output_dir)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)


def find_resume_point(output_dir: Path, resume: str) -> Path | None:
    """``auto``: the latest complete checkpoint (None when there is none yet); a path: that one."""
    if resume == "auto":
        found = complete_checkpoints(output_dir)
        picked = found[-1] if found else None
        root = Path(output_dir) / CKPT_ROOT
        for skipped in sorted(root.glob("step-*")) if root.is_dir() else []:
            if skipped not in found and (picked is None or skipped.name > picked.name):
                log.warning(
                    "train.resume=auto: skipping %s - it has no %s (its save was interrupted, so it is partial); "
                    "resuming from %s",
                    skipped,
                    MARKER,
                    picked or "the start (no complete checkpoint)",
                )
        return picked
    path = Path(resume)
    if not path.is_dir():
        raise RoCoFTError(
            f"train.resume: checkpoint {path} does not exist; use train.resume=auto or a directory "
            f"under {Path(output_dir) / CKPT_ROOT}."
        )
    if not (path / MARKER).is_file():
        raise RoCoFTError(
            f"train.resume: {path} has no {MARKER}: the save was interrupted, the checkpoint is partial. "
            "Resume from an earlier complete one (train.resume=auto picks it)."
        )
    return path


EARLIER = (
    "resume from an earlier complete checkpoint (train.resume=PATH) or start a new run in another output.dir"
)


def _read(ckpt: Path, name: str, what: str) -> dict:
    data = read_json(ckpt / name, what, f"the checkpoint is damaged; {EARLIER}")
    if not isinstance(data, dict):
        raise RoCoFTError(
            f"{ckpt / name}: {what} is not a JSON object; the checkpoint is damaged; {EARLIER}."
        )
    return data


def verify_checkpoint(ckpt: Path, recipe_dict: dict, world: int) -> dict:
    """Everything about ``ckpt`` that can be checked before a model exists - its marker, the recipe it was
    written for, and the hash of its trainable tensors - so a refused resume writes nothing. Returns the marker."""
    marker = _read(ckpt, MARKER, "completion marker")
    check_signature(ckpt, recipe_dict, world)
    if not (ckpt / TRAINABLE).is_file() or sha256_file(ckpt / TRAINABLE) != marker.get("trainable_sha256"):
        raise RoCoFTError(
            f"{ckpt / TRAINABLE} does not match the hash in {MARKER}: the checkpoint is corrupt. "
            f"{EARLIER[0].upper() + EARLIER[1:]}."
        )
    return marker


def check_signature(ckpt: Path, recipe_dict: dict, world: int) -> None:
    saved = _read(ckpt, "resume_signature.json", "resume signature")
    now = resume_signature(recipe_dict, world)
    saved = {**{k: v for k, v in ADDED_RESUME_KEYS.items() if k in now}, **saved}
    diffs = [f"{k}: checkpoint {saved.get(k)!r} -> now {now[k]!r}" for k in now if saved.get(k) != now[k]]
    if diffs:
        hint = (
            "\n(DeepSpeed ZeRO checkpoints are partitioned for the world size that wrote them; FSDP2, DDP and "
            "one-process checkpoints resume on any number of ranks.)"
            if "world_size" in now and saved.get("world_size") != now["world_size"]
            else ""
        )
        raise RoCoFTError(
            f"refusing to resume from {ckpt}: the run changed in ways that break resume:\n  "
            + "\n  ".join(diffs)
            + "\nRestore those settings, or start a new run in another output.dir."
            + hint
        )


def load_checkpoint(ckpt: Path, backend, params: dict, recipe_dict: dict) -> dict:
    """Restore trainable values, optimizer/scheduler, RNG; returns the trainer state."""
    verify_checkpoint(ckpt, recipe_dict, backend.world)
    tensors = load_file(str(ckpt / TRAINABLE))
    missing = sorted(set(params) - set(tensors))
    if missing:
        raise RoCoFTError(f"{ckpt}: trainable tensors missing from the checkpoint, e.g. {missing[:3]}.")
    backend.load_trainable(params, tensors)
    try:
        backend.load_optimizer_state(ckpt)
    except (RuntimeError, ValueError, KeyError, EOFError, OSError, pickle.UnpicklingError) as e:
        raise RoCoFTError(
            f"{ckpt}: optimizer state cannot be restored ({type(e).__name__}: {str(e)[:200]}); the "
            f"checkpoint is damaged; {EARLIER}."
        ) from None
    rng = ckpt / f"rng-rank{rank()}.pt"
    if not rng.is_file():  # more ranks than wrote the checkpoint (allowed: see the module docstring)
        rng = ckpt / "rng-rank0.pt"
    if not rng.is_file():
        raise RoCoFTError(f"{rng} is missing: the checkpoint is incomplete; {EARLIER}.")
    try:
        set_rng_state(torch.load(rng, weights_only=True))
    except (RuntimeError, ValueError, KeyError, TypeError, EOFError, OSError, pickle.UnpicklingError) as e:
        raise RoCoFTError(
            f"{rng}: RNG state cannot be restored ({type(e).__name__}); the checkpoint is damaged; {EARLIER}."
        ) from None
    return _read(ckpt, "trainer_state.json", "trainer state")


def resume_note(output_dir: Path) -> str:
    """What a user reads after a run stopped on a full disk: which checkpoint is intact."""
    found = complete_checkpoints(output_dir)
    if found:
        return (
            f"The last complete checkpoint, {found[-1].name} ({found[-1]}), is intact: after freeing space, "
            "continue the run with train.resume=auto."
        )
    return (
        "No checkpoint was complete yet: after freeing space, train.resume=auto restarts the run from step 0."
    )
