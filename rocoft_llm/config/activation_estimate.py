"""Activation memory of a Llama-family decoder (Llama-2, Mistral, Qwen2, SmolLM2) in training: the
bytes autograd keeps from the forward to the backward, counted tensor by tensor, for batch x seq tokens.

The model (per token; ``d`` = bytes of the compute dtype - ``model.dtype``, also on a quantized
base, except QLoRA, whose upcast fp32 norms make the hidden states fp32 -, ``h`` hidden, ``i`` intermediate, ``nh`` /
``nkv`` query / key-value heads of ``hd`` dims, ``V`` vocabulary). What each decoder layer keeps:

* each RMSNorm: its input in fp32 (``4h``) and ``rsqrt`` (4 bytes) - not for layer 0's first norm
  when nothing before it needs a gradient (frozen embeddings, no checkpointing);
* attention: q and k after the rotary embedding and v (``d(nh + 2 nkv) hd``: transformers' sdpa
  path passes grouped k/v without repeating them when there is no padding mask), the attention
  output (``d nh hd``) and the fused kernel's log-sum-exp (``4 nh``); no ``seq x seq`` matrices
  (sdpa's fused kernels; eager attention is not modelled);
* MLP: gate output, SiLU output and up output (``3 d i``), kept for SiLU's and the product's backward;
* each linear, what its backward needs besides the weight: a trained full weight (``full``), a
  RoCoFT row / row_column / entries slice, and an LLM.int8 base whose input needs a gradient keep
  their input (q/k/v share one: the norm's output ``d h``; o_proj's is the attention output, already
  kept; gate/up share ``d h``; down_proj ``d i``); a RoCoFT column slice keeps only the ``r``
  selected input features (``d r``, its own copy); a 4-bit base keeps nothing; LoRA keeps its
  dropout mask (1 byte on CUDA, a float on CPU) and dropout output (4 bytes, fp32 adapters) per input feature, or, without
  dropout, its input (an fp32 copy of its own when the compute dtype is not fp32), plus ``A x``
  (``4 r``);
* RoCoFT over a bitsandbytes base (:mod:`rocoft_llm.rocoft.quantized`, additive): besides the above,
  what its index ops keep - rows ``x @ S^T`` (``d r``), row_column also the columns' correction
  (``d (out - r)``), entries ``x`` at the entries' columns and their products (``2 d k``) - and,
  once per layer, ``S - W0[placement]`` (and, below fp32, rows' ``S``) in the compute dtype;
* full finetuning also keeps each norm's normalised input (``d h``) for the norm weight's gradient.

Once per model: the rotary cos and sin (``2 d hd`` per position, shared by the batch), the final
norm (``4h + 4``), the loss's log-softmax in fp32 and the target ids (``4 V + 8`` per target; every
next token counts as a target, ``batch x (seq - 1)``: the upper bound, reached with
``train_on_inputs``), the loop's target mask (1 byte) and, for full finetuning, the final norm's
normalised input (``d h``) and the lm_head input (``d h`` per target: the loop projects only there).

With gradient checkpointing (non-reentrant, one checkpoint per decoder layer) each layer keeps only
its input (``d h``; the position ids, 8 bytes per position, too) - except on an LLM.int8 base,
whose matmul keeps its input as a context attribute that non-reentrant checkpointing cannot drop
(the inputs of q/k/v, o, gate/up and down stay alive: ``d (2h + nh hd + i)`` more per layer, for
RoCoFT and QLoRA alike: the product keeps its non-reentrant checkpointing for QLoRA too rather than
the checkpointing peft's k-bit preparation would switch on); the backward
recomputes one layer at a time, which :func:`transient_bytes` counts. The peak transient besides is the loss's backward (two fp32 ``V``-wide tensors per target
token) and, on a quantized base, one dequantized weight (bitsandbytes dequantizes the weight for
each matmul).

Measured against this model on CPU (tests/config/test_memory_estimate.py): the bytes of the storages
alive at the end of the forward of tiny Llama models, for every method and mode, with and without
checkpointing. Not modelled: padding masks and eager attention (``seq x seq`` terms), autocast over
fp32 weights (estimated as fp32 compute), the allocator's rounding and fragmentation.
"""

from __future__ import annotations

from dataclasses import dataclass

#: the architecture this module models (model_type of the config)
MODELLED = ("llama", "mistral", "qwen2")

ATTN_INPUT = ("q_proj", "k_proj", "v_proj")
MLP_INPUT = ("gate_proj", "up_proj")


@dataclass(frozen=True)
class Dims:
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int

    @classmethod
    def from_config(cls, config) -> Dims:
        heads = config.num_attention_heads
        return cls(
            hidden=config.hidden_size,
            intermediate=config.intermediate_size,
            layers=config.num_hidden_layers,
            heads=heads,
            kv_heads=getattr(config, "num_key_value_heads", None) or heads,
            head_dim=getattr(config, "head_dim", None) or config.hidden_size // heads,
            vocab=config.vocab_size,
        )


@dataclass(frozen=True)
class Saving:
    """What the training setup makes each linear keep (see the module docstring).

    ``kind``: rocoft, lora or full (what the method trains: :data:`KINDS`); ``mode`` / ``rank`` / ``density``: RoCoFT's; ``targets``:
    adapted linears (leaf names); ``lora_r`` / ``lora_dropout``: LoRA's; ``d``: bytes of the compute
    dtype; ``quantized``: the base is bitsandbytes' (RoCoFT then acts additively on its output);
    ``int8_base``: that base is LLM.int8 (it keeps its input); ``dropout_mask``: bytes of a dropout
    mask element (1 on CUDA, whose fused dropout keeps a bool mask; the CPU keeps a float one)."""

    kind: str
    targets: tuple[str, ...]
    d: int
    mode: str = "column"
    rank: int = 3
    density: float | None = None
    lora_r: int = 8
    lora_dropout: float = 0.0
    quantized: bool = False
    int8_base: bool = False
    dropout_mask: int = 1

    def keeps_input(self, leaf: str, input_needs_grad: bool) -> bool:
        """The linear keeps its whole input alive (shared with the other linears reading it)."""
        if self.kind == "full":
            return True
        if leaf in self.targets and self.kind == "rocoft" and self.mode != "column":
            # the additive entries layer over a quantized base reads x at the entries only
            return not (self.quantized and self.mode == "entries") or (self.int8_base and input_needs_grad)
        if leaf in self.targets and self.kind == "lora" and self.lora_dropout == 0 and self.d == 4:
            return True  # LoRA's A keeps its input: the layer input itself when no cast is needed
        return self.int8_base and input_needs_grad

    def own_bytes(self, leaf: str, n_in: int, n_out: int) -> int:
        """Bytes per token the linear (``n_in`` -> ``n_out`` features) keeps in tensors of its own."""
        if leaf not in self.targets:
            return 0
        if self.kind == "lora":
            if self.lora_dropout > 0:
                kept = (self.dropout_mask + 4) * n_in  # dropout mask + dropout output (fp32)
            else:
                kept = 0 if self.d == 4 else 4 * n_in  # the fp32 cast of the input
            return kept + 4 * self.lora_r
        if self.kind != "rocoft":
            return 0
        r, d = self.rank, self.d
        if self.mode == "column":
            return d * r  # x[..., idx]
        if not self.quantized:
            return 0
        # the additive layer over a quantized base (rocoft/quantized.py): what its index ops keep
        if self.mode == "row":
            return d * r  # x @ S^T, kept by index_copy
        if self.mode == "row_column":
            return d * r + d * r + d * (n_out - r)  # rows' x @ S^T; columns' x[..., idx] and delta
        k = self.entries(n_in, n_out)
        return 2 * d * k  # x at the entries' columns and the products, kept by index_add

    def entries(self, n_in: int, n_out: int) -> int:
        from ..rocoft.placement import entries_count

        return entries_count(self.density, (n_out, n_in))

    def constant_bytes(self, leaf: str, n_in: int, n_out: int, input_needs_grad: bool) -> int:
        """Bytes the linear keeps whatever the token count: a quantized RoCoFT layer's fp32 slices in
        the compute dtype (``S - W0[placement]``, and for rows ``S`` itself, which is the parameter
        when the compute dtype is fp32 and a cast copy otherwise), kept by its products for the input
        gradient (only when the input needs one); for entries also their output row ids and (input
        gradient) column ids."""
        if leaf not in self.targets or self.kind != "rocoft" or not self.quantized:
            return 0
        r, d = self.rank, self.d
        if self.mode == "entries":
            return (8 + (d + 8) * input_needs_grad) * self.entries(n_in, n_out)
        if not input_needs_grad:
            return 0
        rows = 0 if d == 4 else d * r * n_in  # S cast to the compute dtype
        return {"row": rows, "column": d * n_out * r, "row_column": rows + d * (n_out - r) * r}[self.mode]


def _linears(dims: Dims) -> dict[str, tuple[int, int]]:
    """(in, out) features of each linear of a decoder layer."""
    h, i, q, kv = dims.hidden, dims.intermediate, dims.heads * dims.head_dim, dims.kv_heads * dims.head_dim
    return {
        "q_proj": (h, q),
        "k_proj": (h, kv),
        "v_proj": (h, kv),
        "o_proj": (q, h),
        "gate_proj": (h, i),
        "up_proj": (h, i),
        "down_proj": (i, h),
    }


def layer_bytes(dims: Dims, saving: Saving, input_needs_grad: bool) -> int:
    """Bytes per token one decoder layer keeps for the backward (module docstring)."""
    h, i, d = dims.hidden, dims.intermediate, saving.d
    norm = 4 * h + 4
    full_norm = d * h if saving.kind == "full" else 0
    total = (norm + full_norm) if input_needs_grad else 0
    if any(saving.keeps_input(t, input_needs_grad) for t in ATTN_INPUT):
        total += d * h
    total += sum(saving.own_bytes(t, *shape) for t, shape in _linears(dims).items())
    total += d * (dims.heads + 2 * dims.kv_heads) * dims.head_dim  # q, k (rotated), v
    total += d * dims.heads * dims.head_dim + 4 * dims.heads  # attention output (o_proj's input), lse
    total += norm + full_norm
    if any(saving.keeps_input(t, True) for t in MLP_INPUT):
        total += d * h
    total += 3 * d * i  # gate, silu(gate), up
    if saving.keeps_input("down_proj", True):
        total += d * i
    return total


def layer_constant_bytes(dims: Dims, saving: Saving, input_needs_grad: bool = True) -> int:
    """Bytes one decoder layer keeps independently of the token count (q/k/v keep nothing when
    their input needs no gradient)."""
    return sum(
        saving.constant_bytes(t, *shape, input_needs_grad or t not in ATTN_INPUT)
        for t, shape in _linears(dims).items()
    )


def activation_bytes(
    dims: Dims, saving: Saving, batch: int, seq: int, checkpointing: bool, input_needs_grad: bool
) -> int:
    """Bytes kept from the forward to the backward for a micro-batch of ``batch`` x ``seq`` tokens.
    ``input_needs_grad``: the first layer's input needs a gradient (trained embeddings, or the input
    gradients gradient checkpointing turns on)."""
    h, d, tokens = dims.hidden, saving.d, batch * seq
    targets = batch * (seq - 1)  # next-token targets: every position but the last
    model = 2 * d * dims.head_dim * seq  # cos, sin (one row of positions for the whole batch)
    model += (4 * h + 4) * tokens + tokens  # final norm; the loop's target mask (bool)
    model += (4 * dims.vocab + 8) * targets + 8  # log-softmax (fp32), target ids, loss
    if saving.kind == "full":
        model += d * h * (tokens + targets)  # final norm's normalised input; lm_head's (targets only)
    if checkpointing:
        kept = d * h  # the layer's input
        if saving.int8_base:  # bitsandbytes' int8 matmul keeps its input outside autograd's hooks
            kept += d * (2 * h + dims.heads * dims.head_dim + dims.intermediate)
        return model + tokens * dims.layers * kept + 8 * seq  # the position ids
    first = layer_bytes(dims, saving, input_needs_grad)
    rest = layer_bytes(dims, saving, True) * (dims.layers - 1)
    constant = layer_constant_bytes(dims, saving, input_needs_grad)
    constant += (dims.layers - 1) * layer_constant_bytes(dims, saving)
    return model + tokens * (first + rest) + constant


def transient_bytes(dims: Dims, saving: Saving, tokens: int, checkpointing: bool, dequantized: int) -> int:
    """The largest short-lived memory of a step on top of what is kept (module docstring):
    the loss's backward, one recomputed layer under checkpointing, and ``dequantized`` bytes (the
    largest weight a quantized base dequantizes for one matmul)."""
    loss = 2 * 4 * dims.vocab * tokens
    recompute = (
        layer_bytes(dims, saving, True) * tokens + layer_constant_bytes(dims, saving) if checkpointing else 0
    )
    return loss + recompute + dequantized
