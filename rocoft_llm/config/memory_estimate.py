"""Bytes per GPU of a training run, from the model's shapes (its config, built on the meta device;
no weights) and the storage each part takes: what ``rocoft-llm validate`` prints, and what
BENCHMARKS.md's memory table at paper scale comes from.

Parts (each divided by the world size where the backend shards it):

* frozen weights: the base's parameters in ``model.dtype``; with ``model.quantize`` every linear but
  the output head in bitsandbytes' storage (:func:`quantized_weight_bytes`) and the rest (embeddings,
  norms, lm_head) as bitsandbytes leaves them: in ``model.dtype``, or fp32 for LoRA (peft's
  ``prepare_model_for_kbit_training`` upcasts them). A quantized RoCoFT column / row_column / entries
  layer also keeps the frozen values at its placement in fp32;
* trainable: RoCoFT slices and LoRA matrices are fp32 masters (4 bytes); full finetuning trains the
  weights in ``model.dtype`` (no fp32 master copy: the optimizer steps the weights themselves);
* gradients: one per trainable value, in its dtype (DDP adds its bucket copy);
* optimizer: AdamW's two moments in the trainable dtype plus a 4-byte step per tensor;
* activations and the peak transient: :mod:`.activation_estimate`.

Sharding: FSDP2 and ZeRO-3 divide weights, trainable values, gradients and optimizer state;
ZeRO-2 gradients and optimizer state; ZeRO-1 optimizer state. Activations are per GPU.
Not covered: the CUDA context (~0.5 GiB), the allocator's cache and fragmentation, communication
buffers, FSDP's gathered blocks, DeepSpeed's own fp32 copies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from .activation_estimate import MODELLED, Dims, Saving, activation_bytes, transient_bytes
from .model_shapes import LinearShape, linear_shapes, parameter_shapes

GIB = 2**30
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
#: bitsandbytes' 4-bit block size (values sharing one absmax) and the double-quantisation block
#: size (absmax values sharing one fp32 scale); transformers' defaults
BLOCKSIZE, NESTED_BLOCKSIZE = 64, 256


def quantized_weight_bytes(
    out_features: int, in_features: int, quantize: str, double_quant: bool = True
) -> int:
    """Bytes bitsandbytes stores for one (out, in) weight.

    nf4 / fp4 (``bitsandbytes.functional.quantize_4bit``): n = out x in values, two per byte
    (``ceil(n/2)``), one absmax per block of 64 (``B = ceil(n/64)``): fp32 (``4B``), or with double
    quantisation (QLoRA's, transformers' ``bnb_4bit_use_double_quant``) uint8 (``B``) + one fp32
    scale per 256 absmax values (``4 ceil(B/256)``) + an fp32 offset (4) + the 256-entry fp32 code
    book of that second quantisation (1024, one copy per weight); plus the 16-entry fp32 code book
    (64). Checked against the tensors bitsandbytes 0.50 creates (tests/config). int8 (LLM.int8, ``Int8Params``): one byte per
    value + one fp32 scale per output row (``n + 4 out``)."""
    n = out_features * in_features
    if quantize == "int8":
        return n + 4 * out_features
    if quantize not in ("nf4", "fp4"):
        raise ValueError(f"quantize must be nf4, fp4 or int8, got {quantize!r}")
    blocks = math.ceil(n / BLOCKSIZE)
    scales = blocks + 4 * math.ceil(blocks / NESTED_BLOCKSIZE) + 4 + 1024 if double_quant else 4 * blocks
    return math.ceil(n / 2) + scales + 64


@dataclass(frozen=True)
class Setup:
    """What the estimate depends on besides the model (a recipe's answer: :func:`setup_from_recipe`)."""

    #: what the method trains: RoCoFT slices (its ``rocoft:`` section), peft LoRA (``lora:``) or
    #: every weight (``full``, a method that ``trains_all_weights``); see :func:`method_kind`
    kind: str = "rocoft"
    targets: tuple[str, ...] = ()  #: adapted linears (leaf names)
    rocoft: object = None  #: the ``rocoft:`` section (RoCoFTConfig) for method rocoft
    lora_r: int = 8
    lora_dropout: float = 0.05
    dtype: str = "bfloat16"  #: model.dtype
    quantize: str | None = None
    batch: int = 1
    seq: int = 1024
    checkpointing: bool = False
    precision: str = "bf16"  #: train.precision
    backend: str = "none"
    world_size: int = 1
    zero_stage: int | None = None
    #: the device: cuda (the estimate's purpose) or cpu, whose dropout keeps a float mask instead of
    #: a bool one and whose AdamW steps one tensor at a time instead of all at once (foreach)
    device: str = "cuda"


@dataclass
class Estimate:
    """Bytes per GPU of each part; ``activations`` None where the architecture is not modelled."""

    frozen: int
    trainable: int
    gradients: int
    optimizer: int
    activations: int | None
    transient: int | None
    #: AdamW's step: on CUDA (foreach) one temporary the size of all trainable values, on CPU of the
    #: largest trainable tensor
    step_transient: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> int | None:
        """The peak: what lives across steps (weights, trainable values, AdamW's state) plus the
        larger of two moments - the start of the backward (activations + transient) and the
        optimizer step (all gradients + the step's temporary), when the activations are gone.
        Gradients are made during the backward as the activations are freed; counting them at the
        end only is exact at both ends and an approximation in between."""
        if self.activations is None:
            return None
        static = self.frozen + self.trainable + self.optimizer
        return static + max(self.activations + self.transient, self.gradients + self.step_transient)


def _shard(setup: Setup) -> dict[str, int]:
    """What the backend divides by the world size: part -> divisor."""
    w = setup.world_size
    parts = dict.fromkeys(("frozen", "trainable", "gradients", "optimizer"), 1)
    if setup.backend == "fsdp":
        return dict.fromkeys(parts, w)
    if setup.backend == "deepspeed":
        stage = 3 if setup.zero_stage is None else setup.zero_stage
        for part, from_stage in (("optimizer", 1), ("gradients", 2), ("frozen", 3), ("trainable", 3)):
            if stage >= from_stage:
                parts[part] = w
    return parts


def _trainable_tensors(config, setup: Setup, linears: dict[str, LinearShape]) -> list[tuple[int, int]]:
    """(values, bytes per value) of every trainable tensor."""
    params = parameter_shapes(config)
    if setup.kind == "full":
        size = DTYPE_BYTES[setup.dtype]
        return [(math.prod(p.shape), size) for p in params]
    layers = config.num_hidden_layers
    out = []
    for t in setup.targets:
        s = linears[t]
        if setup.kind == "lora":
            out += [(setup.lora_r * s.in_features, 4), (s.out_features * setup.lora_r, 4)] * layers
        else:
            from ..methods.rocoft import trainable_shapes

            out += [(math.prod(dims), 4) for dims in trainable_shapes(setup.rocoft, s)] * layers
            if setup.rocoft.train_bias and any(p.linear == t and p.name.endswith("bias") for p in params):
                out += [(s.out_features, 4)] * layers
    return out


def _frozen(config, setup: Setup, linears: dict[str, LinearShape]) -> tuple[int, int]:
    """(frozen bytes, the largest weight's dequantized bytes - 0 without quantisation)."""
    size = DTYPE_BYTES[setup.dtype]
    if setup.kind == "full":
        return 0, 0
    rest = 4 if setup.quantize and setup.kind == "lora" else size  # QLoRA's fp32 norms/embeddings
    total, largest = 0, 0
    for p in parameter_shapes(config):
        n = math.prod(p.shape)
        if setup.quantize and p.linear and not p.output_head and len(p.shape) == 2:
            total += quantized_weight_bytes(p.shape[0], p.shape[1], setup.quantize)
            largest = max(largest, n * size)
        else:
            total += n * rest
    if setup.quantize and setup.kind == "rocoft" and setup.rocoft.mode != "row":
        from ..methods.rocoft import trainable_shapes

        for t in setup.targets:  # the frozen values at the placement, fp32 (the layer subtracts them)
            kept = trainable_shapes(setup.rocoft, linears[t])[-1]
            total += 4 * math.prod(kept) * config.num_hidden_layers
    return total, largest


def compute_dtype_bytes(setup: Setup) -> int:
    """Bytes of the dtype activations are computed in: model.dtype (also on a quantized base, whose
    4-bit matmuls compute in it), except QLoRA, whose upcast norms make the hidden states fp32."""
    if setup.quantize and setup.kind == "lora":
        return 4
    return DTYPE_BYTES[setup.dtype]


def estimate(config, setup: Setup) -> Estimate:
    """The :class:`Estimate` of ``setup`` on the model ``config`` describes (``ValueError`` for a
    method whose kind is not modelled)."""
    if setup.kind not in KINDS:
        raise ValueError(f"the memory of a method with a {setup.kind!r} section is not modelled")
    linears = linear_shapes(config)
    shard = _shard(setup)
    tensors = _trainable_tensors(config, setup, linears)
    trainable = sum(n * b for n, b in tensors)
    gradients = trainable * (2 if setup.backend == "ddp" else 1)
    optimizer = 2 * trainable + 4 * len(tensors)
    frozen, dequantized = _frozen(config, setup, linears)
    notes = []
    activations = transient = None
    if setup.dtype == "float32" and setup.precision != "fp32" and not setup.quantize:
        notes.append(
            f"train.precision {setup.precision} over float32 weights (autocast) is estimated as fp32 compute; "
            "model.dtype: bfloat16 is what the estimate models exactly"
        )
    if config.model_type in MODELLED:
        d = compute_dtype_bytes(setup)
        rocoft = setup.rocoft if setup.kind == "rocoft" else None
        saving = Saving(
            setup.kind,
            tuple(setup.targets),
            d,
            mode=rocoft.mode if rocoft else "column",
            rank=rocoft.rank if rocoft else 0,
            density=rocoft.density if rocoft else None,
            lora_r=setup.lora_r,
            lora_dropout=setup.lora_dropout,
            quantized=setup.quantize is not None,
            int8_base=setup.quantize == "int8",
            dropout_mask=1 if setup.device == "cuda" else 4,
        )
        dims, tokens = Dims.from_config(config), setup.batch * setup.seq
        first_needs_grad = setup.checkpointing or setup.kind == "full"
        activations = activation_bytes(
            dims, saving, setup.batch, setup.seq, setup.checkpointing, first_needs_grad
        )
        transient = transient_bytes(dims, saving, tokens, setup.checkpointing, dequantized)
    else:
        notes.append(f"activations are modelled for {', '.join(MODELLED)} only, not {config.model_type}")
    return Estimate(
        frozen=frozen // shard["frozen"],
        trainable=trainable // shard["trainable"],
        gradients=gradients // shard["gradients"],
        optimizer=optimizer // shard["optimizer"],
        activations=activations,
        transient=transient,
        step_transient=(trainable if setup.device == "cuda" else max((n * b for n, b in tensors), default=0))
        // shard["optimizer"],
        notes=notes,
    )


KINDS = ("rocoft", "lora", "full")


def method_kind(method) -> str:
    """What a registered method trains, as the estimate models it: ``full`` for a method that trains
    every weight, else its recipe section (``rocoft``, ``lora``); other sections are not modelled."""
    return "full" if method.trains_all_weights else str(method.section)


def setup_from_recipe(recipe, config, world_size: int = 1) -> Setup:
    """The :class:`Setup` a recipe means on ``world_size`` GPUs: one micro-batch of
    ``train.micro_batch_size`` x ``data.cutoff_len`` tokens (the longest a row can be)."""
    from ..architectures import default_targets
    from ..methods import get_method

    method = get_method(recipe.method)
    targets = method.targets(recipe) if method.section else None
    if method.section and not targets:
        targets = default_targets(config.model_type, None)
    return Setup(
        kind=method_kind(method),
        targets=tuple(t.rsplit(".", 1)[-1] for t in targets or ()),
        rocoft=recipe.rocoft,
        lora_r=recipe.lora.r,
        lora_dropout=recipe.lora.dropout,
        dtype=recipe.model.dtype,
        quantize=getattr(recipe.model, "quantize", None),
        batch=recipe.train.micro_batch_size,
        seq=recipe.data.cutoff_len,
        checkpointing=recipe.train.gradient_checkpointing,
        precision=recipe.train.precision,
        backend=recipe.dist.backend,
        world_size=world_size,
        zero_stage=recipe.dist.zero_stage,
    )


def estimate_for_recipe(recipe, world_size: int = 1) -> tuple[Estimate, Setup, Estimate | None]:
    """(estimate, its setup, the estimate with gradient checkpointing when the recipe has it off) of
    a recipe; ``ValueError`` saying why when its model config cannot be read offline or its method
    is not modelled."""
    from .model_shapes import resolve_config

    try:  # as validate's other checks: never run model code
        config, where = resolve_config(recipe.model.name_or_path, trust_remote_code=False)
    except (ValueError, OSError) as e:
        raise ValueError(
            f"the model config cannot be read without running its code: {str(e)[:120]}"
        ) from None
    if config is None:
        raise ValueError(f"the model config cannot be read offline: {where}")
    setup = setup_from_recipe(recipe, config, world_size)
    est = estimate(config, setup)
    checkpointed = None if setup.checkpointing else estimate(config, replace(setup, checkpointing=True))
    return est, setup, checkpointed


COLUMNS = ("frozen", "trainable", "gradients", "optimizer", "activations", "transient", "total")


def gib(n: int | None) -> str:
    return "-" if n is None else f"{n / GIB:.2f}"


def estimate_lines(est: Estimate, setup: Setup, with_checkpointing: Estimate | None = None) -> list[str]:
    """The compact table ``validate`` prints (GiB per GPU)."""
    what = setup.kind + (f" {setup.rocoft.mode}" if setup.kind == "rocoft" else "")
    base = setup.quantize or setup.dtype
    lines = [
        f"memory estimate per GPU, GiB ({what} on a {base} base, micro-batch {setup.batch} x {setup.seq} "
        f"tokens, {setup.world_size} GPU{'s' if setup.world_size > 1 else ''}, dist.backend {setup.backend}, "
        "gradient checkpointing "
        f"{'on' if setup.checkpointing else 'off'}):",
        "  " + "  ".join(f"{c:>11}" for c in COLUMNS),
        "  " + "  ".join(f"{gib(getattr(est, c)):>11}" for c in COLUMNS),
    ]
    if with_checkpointing is not None and with_checkpointing.total is not None:
        lines.append(f"  with train.gradient_checkpointing=true: total {gib(with_checkpointing.total)}")
    lines += [f"  note: {n}" for n in est.notes]
    return lines


def fit_line(est: Estimate, gpu_gib: float) -> tuple[bool | None, str]:
    """(fits?, the line saying it) for a GPU of ``gpu_gib`` GiB; None when there is no total."""
    if est.total is None:
        floor = est.frozen + est.trainable + est.optimizer + est.gradients + est.step_transient
        if floor > gpu_gib * GIB:  # the parts that are modelled already exceed it
            return False, (
                f"DOES NOT FIT in {gpu_gib:g} GiB: the weights, gradients and optimizer state alone take "
                f"{floor / GIB:.2f} GiB (activations not modelled)"
            )
        return None, f"--gpu-memory {gpu_gib:g}: cannot tell ({'; '.join(est.notes)})"
    left = gpu_gib * GIB - est.total
    if left >= 0:
        return (
            True,
            f"FITS in {gpu_gib:g} GiB ({left / GIB:.2f} GiB left for the CUDA context and the allocator)",
        )
    return False, f"DOES NOT FIT in {gpu_gib:g} GiB ({-left / GIB:.2f} GiB over)"
