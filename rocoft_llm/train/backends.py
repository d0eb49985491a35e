"""Backends behind one small interface, so the loop has no ``if backend == ...``:

* ``none``  - one process (CPU or one GPU);
* ``ddp``   - DistributedDataParallel (gradients of trainable parameters all-reduced);
* ``fsdp``  - FSDP2 ``fully_shard`` per decoder block (class from the architecture table), then
  the root; frozen weights AND trainable slices sharded; bf16 via MixedPrecisionPolicy;
* ``deepspeed`` - ZeRO stage 0-3 through ``deepspeed.initialize`` with a config generated from the
  recipe (a user JSON merged over it), loss not rescaled by accumulation (``scale_wrt_gas=False``).

Every backend averages gradients over ranks, so the loop scales the token-normalised loss by the
world size: the result is the gradient of (sum of token losses) / (target tokens of the global batch).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from ..architectures import find_architecture
from ..distributed import is_distributed
from ..errors import RoCoFTError
from ..rocoft.apply import trainable_parameters
from .schedule import make_scheduler


def model_inputs(batch: dict) -> dict:
    """The forward's keyword arguments: a padded batch has an attention_mask, a packed one
    position_ids instead. No cache: transformers builds the packed block-causal mask only without
    one (with a cache, packed examples would attend to each other), and training never reads it."""
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "position_ids") if k in batch}
    return {**inputs, "use_cache": False, "logits_to_keep": batch.get("logits_to_keep", 0)}


def _unwrap_norm(norm) -> float:
    if hasattr(norm, "full_tensor"):
        norm = norm.full_tensor()
    return float(norm)


class Backend:
    """Single process; the base for DDP and FSDP2 (which change wrapping and state handling)."""

    name = "none"

    def __init__(self, recipe, device: torch.device, world: int, total_steps: int):
        self.recipe, self.device, self.world, self.total_steps = recipe, device, world, total_steps
        self.autocast_dtype = None
        self.scaler = None
        self.module = self.model = self.optimizer = self.scheduler = None

    # --- set-up -------------------------------------------------------------------------------
    def _precision(self, model) -> None:
        t = self.recipe.train
        want = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}[t.precision]
        weights = next(model.parameters()).dtype
        if want is not None and weights == torch.float32:
            self.autocast_dtype = want  # fp32 weights: compute in the asked precision under autocast
        if t.precision == "fp16":
            self.scaler = torch.amp.GradScaler(self.device.type)

    def _optimizer(self) -> dict:
        t = self.recipe.train
        params = trainable_parameters(self.module)
        self.optimizer = torch.optim.AdamW(params.values(), lr=t.lr, weight_decay=t.weight_decay)
        self.scheduler = make_scheduler(self.optimizer, t.scheduler, t.warmup_steps, self.total_steps)
        return params

    def wrap(self, model) -> dict:
        """Move/wrap/shard ``model``, build optimizer and schedule; returns the trainable parameters
        as the optimizer sees them (FSDP2 replaces parameters with sharded ones)."""
        model.to(self.device)
        self._precision(model)
        self.module = self.model = model
        return self._optimizer()

    # --- one optimizer step ---------------------------------------------------------------------
    def autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def micro_context(self, is_last: bool):
        return contextlib.nullcontext()

    def forward(self, batch: dict):
        with self.autocast():
            return self.model(**model_inputs(batch)).logits

    def backward(self, loss: torch.Tensor, is_last: bool) -> None:
        (self.scaler.scale(loss) if self.scaler else loss).backward()

    def step(self, params: dict) -> float:
        """Clip (or just measure), step, schedule, zero; returns the gradient norm before clipping."""
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        max_norm = self.recipe.train.max_grad_norm or float("inf")
        norm = _unwrap_norm(torch.nn.utils.clip_grad_norm_(list(params.values()), max_norm))
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return norm

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    # --- checkpoint state -------------------------------------------------------------------------
    def optimizer_state(self) -> dict:
        """What rank 0 saves to ``optimizer.pt``: the schedule (the same on every rank) and, for
        backends whose optimizer state is replicated (none, DDP), the optimizer."""
        state = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}
        if self.scaler:
            state["scaler"] = self.scaler.state_dict()
        return state

    def save_sharded_state(self, directory: Path) -> None:
        """Collective: state that every rank holds a part of (FSDP2, DeepSpeed); nothing here."""

    def _load_rank0_state(self, directory: Path) -> dict:
        state = torch.load(directory / "optimizer.pt", map_location=self.device, weights_only=True)
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        return state

    def load_optimizer_state(self, directory: Path) -> None:
        self.optimizer.load_state_dict(self._load_rank0_state(directory)["optimizer"])

    def load_trainable(self, params: dict, tensors: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(tensors[name].to(device=p.device, dtype=p.dtype))


class DDPBackend(Backend):
    name = "ddp"

    def wrap(self, model) -> dict:
        from torch.nn.parallel import DistributedDataParallel

        model.to(self.device)
        self._precision(model)
        self.module = model
        ids = [self.device.index] if self.device.type == "cuda" else None
        self.model = DistributedDataParallel(model, device_ids=ids)
        return self._optimizer()

    def micro_context(self, is_last: bool):
        return contextlib.nullcontext() if is_last else self.model.no_sync()


#: the FSDP2 optimizer state's torch.distributed.checkpoint directory inside a checkpoint
FSDP_OPTIMIZER_DIR = "optimizer_dcp"


def balanced_slice_placement(model):
    """FSDP2 ``shard_placement_fn``: a row slice (r x in_features) has only r rows, so the default
    dim-0 sharding puts it - and its optimizer state - on at most r ranks (2:1 on 2 ranks, nothing
    on ranks >= r); sharding it along in_features gives every rank an equal share. Every other
    parameter keeps FSDP2's default (dim 0)."""
    from torch.distributed.tensor import Shard

    from ..rocoft.layer import ROW, ROW_COLUMN, RoCoFTLinear

    row_slices = {
        id(m.rocoft_slice)
        for m in model.modules()
        if isinstance(m, RoCoFTLinear) and m.mode in (ROW, ROW_COLUMN)
    }
    return lambda param: Shard(1) if id(param) in row_slices else None


class FSDPBackend(Backend):
    name = "fsdp"

    def wrap(self, model) -> dict:
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        arch = find_architecture(getattr(model.config, "model_type", None))
        block = arch.block_classes.get(model.config.model_type) if arch else None
        if block is None:
            raise RoCoFTError(
                f"FSDP needs the decoder block class of model_type {model.config.model_type!r}; add it to "
                "the architecture table."
            )
        model.to(self.device)
        kwargs = {
            "reshard_after_forward": self.recipe.dist.reshard_after_forward,
            "shard_placement_fn": balanced_slice_placement(model),
        }
        if self.recipe.train.precision == "bf16":
            kwargs["mp_policy"] = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        blocks = [m for m in model.modules() if type(m).__name__ == block]
        if not blocks:
            raise RoCoFTError(f"no {block} modules found to shard in {type(model).__name__}.")
        for m in blocks:
            fully_shard(m, **kwargs)
        fully_shard(model, **kwargs)
        self.module = self.model = model
        return self._optimizer()

    def micro_context(self, is_last: bool):
        self.model.set_requires_gradient_sync(is_last)
        return contextlib.nullcontext()

    def optimizer_state(self) -> dict:
        return {"scheduler": self.scheduler.state_dict()}  # the optimizer's shards go through DCP

    def save_sharded_state(self, directory: Path) -> None:
        """The sharded AdamW state through ``torch.distributed.checkpoint``: saved with each shard's
        place in the full tensor, so it loads on any number of ranks (DCP reshards on load)."""
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        dcp.save(
            {"optimizer": get_optimizer_state_dict(self.model, self.optimizer)},
            checkpoint_id=str(directory / FSDP_OPTIMIZER_DIR),
        )

    def load_optimizer_state(self, directory: Path) -> None:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.api import CheckpointException
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict, set_optimizer_state_dict

        path = directory / FSDP_OPTIMIZER_DIR
        if not (path / ".metadata").is_file():
            raise RoCoFTError(
                f"{path} is missing: {directory} holds no FSDP2 optimizer state (written by another "
                "backend or an older rocoft-llm); resume with the backend and version that wrote it, "
                "or start a new run in another output.dir."
            )
        # the current (sharded) layout tells DCP what each rank needs; it reads those pieces from any layout
        state = {"optimizer": get_optimizer_state_dict(self.model, self.optimizer)}
        try:
            dcp.load(state, checkpoint_id=str(path))
        except CheckpointException as e:  # a BaseException: turn it into the one-message error
            raise RoCoFTError(
                f"{path}: the FSDP2 optimizer state cannot be read ({str(e)[:300]}); the checkpoint is "
                "damaged or belongs to another model. Resume from an earlier checkpoint."
            ) from None
        set_optimizer_state_dict(self.model, self.optimizer, state["optimizer"])
        self._load_rank0_state(directory)

    def load_trainable(self, params: dict, tensors: dict[str, torch.Tensor]) -> None:
        from torch.distributed.tensor import DTensor, distribute_tensor

        with torch.no_grad():
            for name, p in params.items():
                full = tensors[name].to(device=self.device, dtype=p.dtype)
                if isinstance(p, DTensor):
                    p.to_local().copy_(distribute_tensor(full, p.device_mesh, p.placements).to_local())
                else:
                    p.copy_(full)


def deepspeed_config(recipe, accumulation: int) -> dict:
    """The DeepSpeed config a recipe means (a user JSON from dist.deepspeed_config is merged over it)."""
    t, d = recipe.train, recipe.dist
    stage = 3 if d.zero_stage is None else d.zero_stage
    config = {
        "train_micro_batch_size_per_gpu": t.micro_batch_size,
        "gradient_accumulation_steps": accumulation,
        "train_batch_size": t.global_batch_size,
        "gradient_clipping": t.max_grad_norm or 0.0,
        "zero_optimization": {
            "stage": stage,
            "stage3_param_persistence_threshold": 0 if stage == 3 else 10**5,
        },
        "bf16": {"enabled": t.precision == "bf16"},
        "fp16": {"enabled": t.precision == "fp16"},
        "zero_force_ds_cpu_optimizer": False,
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }
    if d.cpu_offload and stage == 3:
        config["zero_optimization"]["offload_param"] = {"device": "cpu"}
    if d.deepspeed_config:
        from ..io_utils import read_json

        user = read_json(
            d.deepspeed_config, "DeepSpeed config (dist.deepspeed_config)", "fix it or remove the key"
        )
        if not isinstance(user, dict):
            raise RoCoFTError(
                f"{d.deepspeed_config}: a DeepSpeed config is a JSON object, got {type(user).__name__}; "
                "fix it or remove dist.deepspeed_config."
            )
        _merge(config, user)
    return config


def _merge(base: dict, extra: dict) -> None:
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v


class DeepSpeedBackend(Backend):
    name = "deepspeed"

    def __init__(self, recipe, device, world, total_steps, ds_config: dict):
        super().__init__(recipe, device, world, total_steps)
        self.config = ds_config  # the one deepspeed_config(...) build_model also used

    def wrap(self, model) -> dict:
        import deepspeed

        t = self.recipe.train
        params = trainable_parameters(model)
        optimizer = torch.optim.AdamW(params.values(), lr=t.lr, weight_decay=t.weight_decay)
        self.model, self.optimizer, _, self.scheduler = deepspeed.initialize(
            model=model,
            optimizer=optimizer,
            config=self.config,
            lr_scheduler=lambda opt: make_scheduler(opt, t.scheduler, t.warmup_steps, self.total_steps),
        )
        self.module = self.model.module
        return params

    def forward(self, batch: dict):
        return self.model(**model_inputs(batch)).logits

    def backward(self, loss: torch.Tensor, is_last: bool) -> None:
        self.model.backward(loss, scale_wrt_gas=False)
        self.model.step()  # DeepSpeed counts micro-steps; it only updates at the accumulation boundary

    def step(self, params: dict) -> float:
        norm = self.model.get_global_grad_norm()
        return float(norm) if norm is not None else float("nan")

    @property
    def lr(self) -> float:
        return self.model.get_lr()[0]

    def optimizer_state(self) -> dict | None:
        return None  # DeepSpeed's own files hold optimizer and schedule

    def save_sharded_state(self, directory: Path) -> None:
        self.model.save_checkpoint(str(directory / "deepspeed"), tag="state", exclude_frozen_parameters=True)

    def load_optimizer_state(self, directory: Path) -> None:
        path, _ = self.model.load_checkpoint(
            str(directory / "deepspeed"), tag="state", load_module_strict=False
        )
        if path is None:
            raise RoCoFTError(
                f"DeepSpeed could not load {directory / 'deepspeed'}; the checkpoint is incomplete."
            )

    def load_trainable(self, params: dict, tensors: dict[str, torch.Tensor]) -> None:
        pass  # restored with the optimizer by load_checkpoint


def make_backend(recipe, device, world: int, total_steps: int, ds_config: dict | None = None) -> Backend:
    kind = recipe.dist.backend
    if kind in ("ddp", "fsdp") and not is_distributed():
        raise RoCoFTError(
            f"dist.backend: {kind} needs a process group: launch with `torchrun --nproc-per-node N "
            "-m rocoft_llm.cli train ...` (N may be 1), or set dist.backend: none for one process."
        )
    if kind == "none" and world > 1:
        raise RoCoFTError(
            f"launched with {world} processes but dist.backend is none; set dist.backend to ddp, fsdp or "
            "deepspeed."
        )
    if kind == "deepspeed":
        return DeepSpeedBackend(recipe, device, world, total_steps, ds_config)
    return {"none": Backend, "ddp": DDPBackend, "fsdp": FSDPBackend}[kind](recipe, device, world, total_steps)
