"""The typed recipe: one pydantic tree for a whole run (model, method, rocoft, lora, data, train,
dist, eval, output). Each field's docstring is the user documentation of its key (``rocoft-llm
validate --explain KEY``); constraints that need no other field (ranges, finite numbers, non-empty)
are declared with the field. Checks across fields or against files live in :mod:`.checks`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from ..data.settings import DataOptions
from ..eval.decoding import GenerationSettings
from ..methods import method_names
from ..rocoft.config import RoCoFTConfig
from ..strict_settings import Float, StrictModel

PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]
Probability = Annotated[Float, Field(ge=0, lt=1)]
#: numpy's seed range (``transformers.set_seed`` seeds numpy too)
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
#: attention kernels transformers' ``attn_implementation`` accepts by name (a Hub kernel repo id,
#: ``owner/name``, is accepted as well)
ATTENTION_KERNELS = ("eager", "sdpa", "flash_attention_2", "flash_attention_3", "flex_attention")


def known_attention(name: str) -> str:
    """``model.attn_implementation`` names a kernel transformers knows, or a Hub kernel repo."""
    if name in ATTENTION_KERNELS or (name.count("/") == 1 and all(name.split("/"))):
        return name
    raise ValueError(
        f"{name!r} is not an attention kernel; use one of {', '.join(ATTENTION_KERNELS)}, a Hub kernel "
        "repo id (kernels-community/flash-attn), or null for transformers' choice"
    )


def registered_method(name: str) -> str:
    """``method:`` names a method of the registry (built-in or registered by the user's code)."""
    if name not in method_names():
        raise ValueError(f"{name!r} is not a registered method; use one of {', '.join(method_names())}")
    return name


class ModelSection(StrictModel):
    """The base model and how it is loaded."""

    name_or_path: str
    """HF Hub id or local directory (config.json [+ safetensors] [+ tokenizer])."""
    dtype: Literal["float32", "bfloat16", "float16"] = "bfloat16"
    """dtype the frozen weights are loaded in; trainable slices are always fp32 masters."""
    random_init: bool = False
    """Build the model from its config.json with random weights (tiny recipes, benchmarks)."""
    tokenizer: str | None = None
    """Tokenizer id or path when it differs from name_or_path."""
    revision: str | None = None
    """Hub revision (branch, tag or commit) of name_or_path."""
    trust_remote_code: bool = False
    """Allow the model's own Python code from the Hub (only for models you trust)."""
    dropout: Probability | None = None
    """Override the architecture's dropout probabilities, in [0, 1) (Table 10 of the paper uses 0.1)."""
    attn_implementation: Annotated[str, AfterValidator(known_attention)] | None = None
    """transformers attention kernel (eager, sdpa, flash_attention_2); null = transformers' choice."""
    pad_token_id: NonNegativeInt = 0
    """Pad id for batching (Llama-2 has no pad token; LLM-Adapters uses 0)."""
    quantize: Literal["nf4", "fp4", "int8"] | None = None
    """Store the frozen base's linear weights (all but the output head) quantized through bitsandbytes
    (``pip install 'rocoft-llm[quant]'``): nf4 or fp4 (4 bits with double quantization, QLoRA's
    storage) or int8 (LLM.int8); null = everything in model.dtype, which 4-bit layers also compute in.
    RoCoFT (every mode) and LoRA (peft's QLoRA path) train on it, on one process or under DDP; full
    finetuning, FSDP and DeepSpeed are refused. The slices are exact with respect to the dequantized
    weights; eval loads the base the same way; merge writes a full-precision model from the dequantized
    weights (docs/quantization.md)."""


class RoCoFTSection(RoCoFTConfig):
    """The ``rocoft:`` section is :class:`RoCoFTConfig` itself (same fields, defaults and docs)."""

    # pydantic's own __init__: a recipe collects every error itself instead of the API's RoCoFTError
    __init__ = StrictModel.__init__


class LoRASection(StrictModel):
    """The LoRA baseline (method: lora), through peft."""

    r: PositiveInt = 8
    """LoRA rank."""
    alpha: PositiveInt = 16
    """LoRA scaling numerator (scale = alpha / r)."""
    dropout: Probability = 0.05
    """Dropout on the LoRA input, in [0, 1)."""
    targets: Annotated[list[str], Field(min_length=1)] | None = None
    """nn.Linear names to adapt; null = the architecture table's targets."""


class DataSection(DataOptions):
    """Training data: the shared data options (also `rocoft-llm prepare`'s) plus what to train on."""

    train: list[str] = Field(default_factory=list)
    """Dataset ids (boolq, gsm8k, commonsense, math ...) or local LLM-Adapters JSON files."""
    cache_dir: str | None = None
    """Root of the prepared-data cache (CACHE/prepared/<key>); default $ROCOFT_CACHE or ~/.cache/rocoft-llm."""


class TrainSection(StrictModel):
    """Optimization and run length."""

    global_batch_size: PositiveInt = 16
    """Examples per optimizer step across ALL ranks; accumulation = global / (micro x world)."""
    micro_batch_size: PositiveInt = 4
    """Examples per forward on one device."""
    packing: bool = False
    """Padding-free micro-batches: a micro-batch's examples are concatenated into rows as long as its
    longest example, position ids restart at 0 per example and attention stays inside each example,
    so little compute goes to pad tokens. Same examples per step and the same loss as padded batches.
    Llama-family and GPT-J with eager / sdpa / flex attention; refused for BLOOM (its attention
    ignores position ids) and flash-attention (transformers keeps examples apart there only in a
    single row)."""
    epochs: Annotated[Float, Field(gt=0)] = 1.0
    """Passes over the data (fractions allowed); ignored when max_steps is set."""
    max_steps: PositiveInt | None = None
    """Stop after this many optimizer steps (overrides epochs)."""
    lr: Annotated[Float, Field(gt=0)] = 1e-3
    """Peak learning rate of AdamW (paper: 1e-3 math, 2e-3 commonsense)."""
    weight_decay: Annotated[Float, Field(ge=0)] = 0.0
    """AdamW weight decay (on RoCoFT slices it decays the selected pretrained weights too)."""
    warmup_steps: NonNegativeInt = 0
    """Optimizer steps of linear warmup from 0 to lr; must be fewer than the run's steps."""
    scheduler: Literal["cosine", "linear", "constant"] = "cosine"
    """Learning-rate decay after warmup (transformers.get_scheduler): to 0 by cosine or linearly, or constant."""
    max_grad_norm: Annotated[Float, Field(gt=0)] | None = 1.0
    """Clip the global gradient norm to this value; null = no clipping."""
    seed: Seed = 42
    """Seed of data order, dropout and random initialisation (transformers.set_seed), 0 to 2**32-1."""
    precision: Literal["bf16", "fp16", "fp32"] = "bf16"
    """Compute precision (autocast over fp32 weights; fp16 uses a gradient scaler)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass (less memory, ~30% more compute)."""
    save_steps: PositiveInt | None = None
    """Write a resumable checkpoint every N optimizer steps; null = only at the end."""
    save_total_limit: PositiveInt = 2
    """Keep this many most recent complete checkpoints."""
    log_steps: PositiveInt = 1
    """Log loss, learning rate and throughput every N optimizer steps."""
    resume: Annotated[str, Field(min_length=1)] | None = None
    """null, "auto" (latest complete checkpoint in output.dir), or a checkpoint path."""


class DistSection(StrictModel):
    """How the run is spread over processes."""

    backend: Literal["none", "ddp", "fsdp", "deepspeed"] = "none"
    """none (one process), ddp, fsdp (FSDP2) or deepspeed (ZeRO)."""
    zero_stage: Annotated[int, Field(ge=0, le=3)] | None = None
    """DeepSpeed ZeRO stage 0-3 (deepspeed only; default 3)."""
    deepspeed_config: str | None = None
    """A user DeepSpeed JSON merged over the generated one."""
    zero_init: bool = False
    """Load the model partitioned with zero.Init (models that do not fit one rank)."""
    reshard_after_forward: bool = True
    """FSDP2: free gathered weights after the forward (less memory, one more all-gather in backward)."""
    cpu_offload: bool = False
    """Offload parameters and optimizer state to CPU memory (FSDP2 / ZeRO)."""
    timeout_minutes: PositiveInt = 30
    """Collective timeout: a hung rank fails the job after this long instead of hanging it."""


class EvalSection(GenerationSettings):
    """Defaults of `rocoft-llm eval --run` for this run: the decoding settings plus the tasks."""

    tasks: list[str] = Field(default_factory=list)
    """Task ids evaluated after training (boolq, gsm8k, svamp ...)."""
    nll_data: str | None = None
    """Held-out records whose NLL per target token is measured DURING training (a JSON file or a split
    part, e.g. math_data.json:validation); metrics.jsonl then has val_nll and train_seconds."""
    nll_steps: PositiveInt | None = None
    """Measure eval.nll_data every N optimizer steps and after the last; null = after the last step only."""
    nll_records: PositiveInt | None = 128
    """The first N records of eval.nll_data (a fixed subset, cheap enough to measure often); null = all."""


class OutputSection(StrictModel):
    """Where the run writes."""

    dir: Annotated[str, Field(min_length=1)]
    """Output directory of the run (adapter, metrics, checkpoints)."""
    overwrite: bool = False
    """Replace a non-empty output.dir (never done silently)."""
    merge: bool = False
    """Also write a merged HF model directory at the end."""
    report_to: list[Literal["tensorboard", "wandb"]] = Field(default_factory=lambda: ["tensorboard"])
    """Metric writers besides metrics.jsonl: tensorboard, wandb (when installed), or []."""


class Recipe(StrictModel):
    """A whole run. Required: model.name_or_path and output.dir; everything else has a default."""

    model: ModelSection
    """The base model."""
    output: OutputSection
    """Where the run writes."""
    method: Annotated[str, AfterValidator(registered_method)] = "rocoft"
    """A registered method (:mod:`rocoft_llm.methods`): rocoft (rows/columns), lora (peft baseline)
    or full finetuning."""
    rocoft: RoCoFTSection = Field(default_factory=RoCoFTSection)
    """RoCoFT settings (method: rocoft)."""
    lora: LoRASection = Field(default_factory=LoRASection)
    """LoRA settings (method: lora)."""
    data: DataSection = Field(default_factory=DataSection)
    """Training data."""
    train: TrainSection = Field(default_factory=TrainSection)
    """Optimization."""
    dist: DistSection = Field(default_factory=DistSection)
    """Distribution over processes."""
    eval: EvalSection = Field(default_factory=EvalSection)
    """Evaluation defaults."""
