"""The typed recipe: one dataclass tree for a whole run (model, method, rocoft, lora, data,
train, dist, eval, output). Field docs are the user documentation of each key."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

REQUIRED = object()  # marker default for keys a recipe must set


@dataclass
class ModelSection:
    #: HF Hub id or local directory (config.json [+ safetensors] [+ tokenizer]).
    name_or_path: str = REQUIRED  # type: ignore[assignment]
    #: dtype the frozen weights are loaded in; trainable slices are always fp32 masters.
    dtype: Literal["float32", "bfloat16", "float16"] = "bfloat16"
    #: build the model from its config.json with random weights (tiny recipes, benchmarks).
    random_init: bool = False
    #: tokenizer id or path when it differs from name_or_path.
    tokenizer: str | None = None
    revision: str | None = None
    trust_remote_code: bool = False
    #: override the architecture's dropout probabilities (Table 10 of the paper uses 0.1).
    dropout: float | None = None
    attn_implementation: str | None = None
    #: pad id for batching (Llama-2 has no pad token; LLM-Adapters uses 0).
    pad_token_id: int = 0


@dataclass
class RoCoFTSection:
    mode: Literal["row", "column"] = "row"
    rank: int = 3
    selection: Literal["first", "random", "max", "min", "mixed"] = "first"
    #: nn.Linear names to adapt; null = the architecture table's q/k/v/o + feed-forward.
    targets: list[str] | None = None
    train_bias: bool = False
    seed: int = 0
    #: indices computed once by `rocoft-llm select` (overrides selection).
    indices_file: str | None = None
    #: regexes of extra parameters to train in full (norms, lm_head); empty = frozen.
    also_train: list[str] = field(default_factory=list)
    #: calibration batches for the Wanda-scored selections (max/min/mixed).
    calibration_batches: int = 32


@dataclass
class LoRASection:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    targets: list[str] | None = None


@dataclass
class DataSection:
    #: dataset ids (boolq, gsm8k, commonsense, math ...) or local LLM-Adapters JSON files.
    train: list[str] = field(default_factory=list)
    #: where dataset ids are read from: LLM-Adapters JSON files, or the original datasets (converted).
    source: Literal["llm_adapters", "hub"] = "llm_adapters"
    #: LLM-Adapters checkout or copy (<task>/test.json, ft-training_set/*.json); or $ROCOFT_LLM_ADAPTERS_DIR.
    llm_adapters_dir: str | None = None
    #: offline copies of the original datasets: DIR/<id>/<split>.jsonl.
    hub_dir: str | None = None
    #: llm_adapters (exact upstream text), alpaca_clean, or a custom string with {instruction} and {output}.
    template: str = "llm_adapters"
    cutoff_len: int = 256
    train_on_inputs: bool = True
    add_eos: bool = True
    overlength: Literal["truncate", "drop", "error"] = "truncate"
    bad_records: Literal["error", "drop"] = "error"
    num_proc: int = 1
    cache_dir: str | None = None


@dataclass
class TrainSection:
    #: examples per optimizer step across ALL ranks; accumulation = global / (micro x world).
    global_batch_size: int = 16
    #: examples per forward on one device.
    micro_batch_size: int = 4
    epochs: float = 1.0
    #: stop after this many optimizer steps (overrides epochs).
    max_steps: int | None = None
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 0
    scheduler: Literal["cosine", "linear", "constant"] = "cosine"
    max_grad_norm: float | None = 1.0
    seed: int = 42
    precision: Literal["bf16", "fp16", "fp32"] = "bf16"
    gradient_checkpointing: bool = False
    save_steps: int | None = None
    save_total_limit: int = 2
    log_steps: int = 1
    #: null, "auto" (latest complete checkpoint in output.dir), or a checkpoint path.
    resume: str | None = None


@dataclass
class DistSection:
    backend: Literal["none", "ddp", "fsdp", "deepspeed"] = "none"
    #: DeepSpeed ZeRO stage 0-3 (deepspeed only; default 3).
    zero_stage: int | None = None
    #: a user DeepSpeed JSON merged over the generated one.
    deepspeed_config: str | None = None
    #: load the model partitioned with zero.Init (models that do not fit one rank).
    zero_init: bool = False
    reshard_after_forward: bool = True
    cpu_offload: bool = False
    timeout_minutes: int = 30


@dataclass
class EvalSection:
    #: task ids evaluated after training (boolq, gsm8k, svamp ...).
    tasks: list[str] = field(default_factory=list)
    num_beams: int = 4
    #: null = protocol default (32 commonsense, 256 math).
    max_new_tokens: int | None = None
    batch_size: int = 8


@dataclass
class OutputSection:
    dir: str = REQUIRED  # type: ignore[assignment]
    overwrite: bool = False
    #: also write a merged HF model directory at the end.
    merge: bool = False
    report_to: list[str] = field(default_factory=lambda: ["tensorboard"])


@dataclass
class Recipe:
    model: ModelSection
    output: OutputSection
    method: Literal["rocoft", "lora", "full"] = "rocoft"
    rocoft: RoCoFTSection = field(default_factory=RoCoFTSection)
    lora: LoRASection = field(default_factory=LoRASection)
    data: DataSection = field(default_factory=DataSection)
    train: TrainSection = field(default_factory=TrainSection)
    dist: DistSection = field(default_factory=DistSection)
    eval: EvalSection = field(default_factory=EvalSection)
