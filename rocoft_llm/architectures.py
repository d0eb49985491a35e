"""The ONE architecture table: which linears RoCoFT targets in each model family, and the facts
about each family that the rest of the package needs (decoder block class for FSDP wrapping,
checkpoint key prefix for streaming merges, dropout knobs, fused projections).

Adding a family is adding an entry here, never a branch elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import RoCoFTError


@dataclass(frozen=True)
class FusedQKV:
    """A projection whose output rows hold several logical matrices, interleaved per head.

    BLOOM's ``query_key_value`` has ``3 * hidden`` output rows laid out as
    ``(num_heads, 3, head_dim)``: for head ``h`` the rows ``h*3*hd .. h*3*hd+hd-1`` are its query,
    the next ``hd`` its key, the next ``hd`` its value. RoCoFT defines "r rows" of such a
    projection as r rows of EACH part (query, key, value), i.e. 3r fused rows in total, and
    "r columns" as r input columns (each column spans q, k and v).
    """

    parts: tuple[str, ...] = ("query", "key", "value")
    heads_attr: str = "n_head"


@dataclass(frozen=True)
class Architecture:
    family: str
    model_types: tuple[str, ...]
    targets: tuple[str, ...]
    block_classes: dict[str, str]
    base_model_prefix: str
    dropout_attrs: tuple[str, ...]
    fused: dict[str, FusedQKV] = field(default_factory=dict)
    has_bias: bool = False
    #: transformers restricts this family's attention to one example when several are packed in a
    #: row with position ids restarting at 0 (``train.packing``); checked per family in the installed
    #: transformers and by tests/train/test_packing.py
    packs_by_position_ids: bool = True


ARCHITECTURES: tuple[Architecture, ...] = (
    Architecture(
        family="llama",
        model_types=("llama", "mistral", "qwen2", "qwen3"),
        targets=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
        block_classes={
            "llama": "LlamaDecoderLayer",
            "mistral": "MistralDecoderLayer",
            "qwen2": "Qwen2DecoderLayer",
            "qwen3": "Qwen3DecoderLayer",
        },
        base_model_prefix="model",
        dropout_attrs=("attention_dropout",),
    ),
    Architecture(
        family="bloom",
        model_types=("bloom",),
        targets=("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"),
        block_classes={"bloom": "BloomBlock"},
        base_model_prefix="transformer",
        dropout_attrs=("hidden_dropout", "attention_dropout"),
        fused={"query_key_value": FusedQKV(heads_attr="n_head")},
        has_bias=True,
        # BloomModel takes no position_ids and builds its causal mask and ALiBi from attention_mask
        # only: packed examples would attend to each other
        packs_by_position_ids=False,
    ),
    Architecture(
        family="gemma3",
        # the text-only Gemma-3 decoder (Gemma3ForCausalLM, e.g. gemma-3-270m / -1b); the multimodal
        # Gemma3ForConditionalGeneration ("gemma3") nests it under a vision tower and is not covered
        model_types=("gemma3_text",),
        targets=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
        block_classes={"gemma3_text": "Gemma3DecoderLayer"},
        base_model_prefix="model",
        dropout_attrs=("attention_dropout",),
        # lm_head is tied to embed_tokens and stays frozen (also_train: [embed_tokens] trains both);
        # q_norm/k_norm and the four RMSNorms per layer are frozen like every non-target parameter.
        # Packing: sliding-window and global layers both restrict attention to the example by the
        # restarting position ids (tests/train/test_packing.py checks it with a window shorter than
        # the examples). export-gguf writes llama tensors only and refuses this family.
    ),
    Architecture(
        family="gptj",
        model_types=("gptj",),
        targets=("q_proj", "k_proj", "v_proj", "out_proj", "fc_in", "fc_out"),
        block_classes={"gptj": "GPTJBlock"},
        base_model_prefix="transformer",
        dropout_attrs=("resid_pdrop", "embd_pdrop", "attn_pdrop"),
        has_bias=True,
    ),
)


def supported_model_types() -> list[str]:
    return sorted(t for a in ARCHITECTURES for t in a.model_types)


def find_architecture(model_type: str | None) -> Architecture | None:
    """The table entry for ``config.model_type``, or None when the family is not in the table."""
    for arch in ARCHITECTURES:
        if model_type in arch.model_types:
            return arch
    return None


def get_architecture(model_type: str | None) -> Architecture:
    arch = find_architecture(model_type)
    if arch is None:
        raise RoCoFTError(
            f"model_type {model_type!r} is not in rocoft-llm's architecture table "
            f"(supported: {', '.join(supported_model_types())}). "
            "Fix: pass explicit targets (e.g. targets=['q_proj', 'v_proj'] / rocoft.targets in the "
            "recipe) naming the nn.Linear modules to adapt."
        )
    return arch


def default_targets(
    model_type: str | None, user_targets: list[str] | tuple[str, ...] | None
) -> tuple[str, ...]:
    """User targets win; otherwise the table's; an unknown family without targets is an error."""
    if user_targets:
        return tuple(user_targets)
    return get_architecture(model_type).targets


#: attention kernels that keep packed examples apart by restarting position ids in every row of a
#: micro-batch: eager, sdpa and flex build transformers' block-causal mask. Not flash-attention:
#: transformers uses its varlen kernel only for a batch of ONE row, and attends across examples otherwise
PACKING_KERNELS = (None, "eager", "sdpa", "flex_attention")


def packing_problem(model_type: str | None, attn_implementation: str | None) -> str | None:
    """Why ``train.packing: true`` cannot train this model exactly (None when it can)."""
    arch = find_architecture(model_type)
    fix = "set train.packing: false (padded micro-batches; the loss is the same, only slower)"
    if arch is None:
        return (
            f"train.packing: true is only enabled for the families of the architecture table whose "
            f"attention transformers restricts by position ids; model_type {model_type!r} is not in the "
            f"table; {fix}"
        )
    if not arch.packs_by_position_ids:
        return (
            f"train.packing: true cannot be used with model_type {model_type!r}: transformers builds its "
            "attention mask (and ALiBi biases) from attention_mask alone and ignores position ids, so "
            f"packed examples would attend to each other; {fix}"
        )
    if attn_implementation not in PACKING_KERNELS:
        kernels = ", ".join(k for k in PACKING_KERNELS if k)
        return (
            f"train.packing: true with attention kernel {attn_implementation!r}: only {kernels} keep the "
            f"examples of packed rows apart; set model.attn_implementation to one of them, or {fix}"
        )
    return None


def fused_layout(model_type: str | None, target: str) -> FusedQKV | None:
    arch = find_architecture(model_type)
    return arch.fused.get(target) if arch else None
