"""RoCoFT vs the frozen floor, the paper's formulation, LoRA and full finetuning - ONE process, one run.

Every method trains the same Llama-style model (random init) on the same batch; methods are
interleaved in rounds (round r runs a block of steps of every method in turn, so drift in machine
load hits all of them), memory is freed and peak statistics reset between blocks, and the median
step time (forward + backward + AdamW) over all timed steps is reported with tokens/s and peak
memory; the ratios to the floor and to LoRA pair the methods within each round (median over rounds
of the ratio of same-round block medians), which cancels slow drift in a shared machine's load.
Each block's first step is not timed (it pays the setup: optimizer state, fresh allocations). The
last lines check issue 7's targets (the GPU ones for the gpu configuration, the CPU ones
otherwise) and say met / MISSED for each.

Peak memory: on CUDA, ``torch.cuda.max_memory_allocated`` over each method's blocks. On CPU (no
allocator statistics) one extra, untimed step per method - setup, first step with the optimizer
state creation, teardown - runs under ``torch.profiler`` with ``profile_memory``; the CPU
allocator's running total of bytes allocated during it, at its highest, plus the model weights
and the input batch that were live before it, is the method's peak. Both count tensor bytes the
allocator hands out, so they compare like with like across methods.

* floor: every weight frozen, backward to the inputs only - no method can beat it;
* rocoft-rows / rocoft-columns / rocoft-rowcol (rows AND columns) / rocoft-entries-pP (the seeded
  random-entry variant at density P, e.g. rocoft-entries-p0.01): rocoft-llm's layer;
* paper: the reference formulation - each forward concatenates the trainable slice and a frozen
  buffer into a full weight (written here, for comparison only);
* lora-r8: peft LoRA r=8, alpha 16 on the same seven projections;
* full: full finetuning;
* floor-nf4, rocoft-*-nf4, lora-r8-nf4: the same on a copy of the model whose linears (all but the
  output head) are stored in bitsandbytes NF4 with double quantization, computing in the model's
  dtype (``model.quantize: nf4``; RoCoFT through its quantized layer, LoRA as peft's QLoRA layers).
  Their peak counts the packed weights and quantization constants instead of the full-precision
  ones; on CUDA the other model's resident bytes are subtracted from each method's peak. Needs
  bitsandbytes (``pip install 'rocoft-llm[quant]'``).

    python bench/methods.py --config cpu                 # ~2 minutes on 2 cores
    python bench/methods.py --config cpu --profile 5     # + where each method's op time goes
    python bench/methods.py --config gpu                 # Llama-2-7B shapes, bf16, batch 4 x 1024, r=3
    python bench/methods.py --config cpu --layers 2 --seq 128 --rounds 2
    python bench/methods.py --config gpu --device cpu --layers 1 --hidden 256 --intermediate 688 --seq 64
                                                         # the gpu code path (bf16) as a CPU smoke run
    python bench/methods.py --model models/smollm2-135m --batch 8 --seq 256 --rounds 3 --steps 1 \
        --methods floor,rocoft-rows,rocoft-columns,lora-r8,full --json cost.json
                                                         # a pretrained model instead of the random Llama
    python bench/methods.py --model models/smollm2-135m --batch 8 --seq 256 --rounds 3 --steps 1 \
        --methods floor,floor-nf4,rocoft-columns,rocoft-columns-nf4,lora-r8,lora-r8-nf4
                                                         # NF4 base against the fp32 base

``--model`` (a local Hugging Face directory) replaces the random Llama: its own shapes, the same
seven projection names; ``--json FILE`` also writes the table as JSON (bench/compare_methods.py
reads it for the cost columns of its comparison).

Needs torch, transformers and peft (rocoft-llm's layer is imported from this checkout).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

CONFIGS = {
    "cpu": dict(
        hidden=512,
        intermediate=1376,
        layers=4,
        heads=8,
        vocab=4096,
        seq=256,
        batch=4,
        rank=3,
        dtype="float32",
        device="cpu",
        rounds=10,
        steps=2,
    ),
    "gpu": dict(
        hidden=4096,
        intermediate=11008,
        layers=32,
        heads=32,
        vocab=32000,
        seq=1024,
        batch=4,
        rank=3,
        dtype="bfloat16",
        device="cuda",
        rounds=3,
        steps=4,
    ),
}
#: the random Llama's shape options (``--model`` brings its own)
SHAPE_OPTIONS = ("layers", "hidden", "intermediate", "heads", "vocab")
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
#: a method name ending in this runs on the NF4-quantized copy of the model
NF4 = "-nf4"


class PaperRowLinear(nn.Module):
    """The paper's formulation (rows): cat(trainable first r rows, frozen remainder) every forward."""

    def __init__(self, linear: nn.Linear, r: int):
        super().__init__()
        self.trainable = nn.Parameter(linear.weight.detach()[:r].float().clone())
        self.register_buffer("frozen", linear.weight.detach()[r:], persistent=False)  # a view: no extra copy

    def forward(self, x):
        w = torch.cat([self.trainable.to(self.frozen.dtype), self.frozen], 0)
        return F.linear(x, w)


def shown_path(path) -> str:
    """A model path as the table header shows it: ``~/...`` under the home directory (not this
    machine's absolute path); anything else (a Hub id, a relative path) unchanged."""
    home = str(Path.home())
    return "~" + str(path)[len(home) :] if str(path).startswith(home + "/") else str(path)


def linears(model):
    return {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear) and n.endswith(TARGETS)}


def swap(model, name, module):
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent), leaf, module)


def rocoft_mode(name: str, rank: int) -> tuple[str, float | None, int]:
    """(mode, density, rank) of a rocoft-* method name: rocoft-rows, -columns, -rowcol (``--rank``, or
    their own with a suffix: rocoft-columns-r8), -entries-p0.01."""
    kind = name.removeprefix("rocoft-")
    if kind.startswith("entries-p"):
        return "entries", float(kind.removeprefix("entries-p")), rank
    kind, _, own_rank = kind.partition("-r")
    modes = {"rows": "row", "columns": "column", "rowcol": "row_column"}
    if kind not in modes or (own_rank and not own_rank.isdigit()):
        raise ValueError(f"{name}: use rocoft-rows, rocoft-columns, rocoft-rowcol (-rN) or rocoft-entries-pP")
    return modes[kind], None, int(own_rank) if own_rank else rank


class Method:
    """setup(model) -> trainable params (model changed in place); teardown(model) restores it."""

    def __init__(self, name, args):
        self.name, self.args, self.saved = name, args, {}
        #: runs on the NF4 copy of the model; ``kind`` is the method without the suffix
        self.quantized = name.endswith(NF4)
        self.kind = name.removesuffix(NF4)
        if self.quantized and self.kind in ("paper", "full"):
            raise ValueError(f"{name}: only floor, rocoft-* and lora-r8 run on an NF4 base")

    def setup(self, model):
        a = self.args
        for p in model.parameters():
            p.requires_grad_(False)
        if self.kind == "floor":
            return []
        if self.kind.startswith("rocoft"):
            from rocoft_llm.rocoft.layer import RoCoFTLinear
            from rocoft_llm.rocoft.placement import entries_count
            from rocoft_llm.rocoft.quantized import QuantizedRoCoFTLinear, is_quantized_linear
            from rocoft_llm.rocoft.selection import random_entries

            mode, density, rank = rocoft_mode(self.kind, a.rank)
            for n, lin in linears(model).items():
                self.saved[n] = lin
                if mode == "entries":
                    shape = (lin.out_features, lin.in_features)
                    index = random_entries(shape[0] * shape[1], entries_count(density, shape), 0, n)
                else:
                    index = torch.arange(rank)
                columns = torch.arange(rank) if mode == "row_column" else None
                layer = QuantizedRoCoFTLinear if is_quantized_linear(lin) else RoCoFTLinear
                swap(model, n, layer(lin, index, mode, column_index=columns))
            return [s for m in model.modules() if isinstance(m, RoCoFTLinear) for s in m.slices()]
        if self.kind == "paper":
            for n, lin in linears(model).items():
                self.saved[n] = lin
                swap(model, n, PaperRowLinear(lin, a.rank))
            return [m.trainable for m in model.modules() if isinstance(m, PaperRowLinear)]
        if self.kind == "lora-r8":
            from peft import LoraConfig, get_peft_model

            self.peft = get_peft_model(
                model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=list(TARGETS))
            )
            return [p for p in self.peft.parameters() if p.requires_grad]
        if self.kind == "full":
            for p in model.parameters():
                p.requires_grad_(True)
            return list(model.parameters())
        raise ValueError(self.name)

    def forward_model(self, model):
        return getattr(self, "peft", model)

    def teardown(self, model):
        for n, lin in self.saved.items():
            wrapped = model.get_submodule(n)
            if hasattr(wrapped, "base_layer") and lin.bias is None:  # the quantized layer holds the bias
                lin.bias = wrapped.bias
            lin.weight.requires_grad_(False)
            swap(model, n, lin)
        self.saved = {}
        if hasattr(self, "peft"):
            self.peft.unload()
            del self.peft
        for p in model.parameters():
            p.requires_grad_(False)
            p.grad = None


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def reset_memory(device):
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def tensor_bytes(tensors) -> int:
    """Bytes of ``tensors``, with the quantization constants of bitsandbytes 4-bit weights."""
    total = 0
    for t in tensors:
        total += t.numel() * t.element_size()
        state = getattr(t, "quant_state", None)
        while state is not None:  # absmax per block; with double quantization, its own constants too
            total += sum(x.numel() * x.element_size() for x in (state.absmax, state.code) if x is not None)
            state = getattr(state, "state2", None)
    return total


def nf4_copy(model, dtype: str):
    """A copy of ``model`` whose linears (all but the output head) are bitsandbytes NF4 with double
    quantization computing in ``dtype``: the storage ``model.quantize: nf4`` loads."""
    import copy

    import bitsandbytes as bnb

    from rocoft_llm.rocoft.quantized import DOUBLE_QUANT

    quantized = copy.deepcopy(model)
    head_copy = quantized.get_output_embeddings()
    device = next(model.parameters()).device
    for name, lin in list(quantized.named_modules()):
        if not isinstance(lin, nn.Linear) or lin is head_copy:
            continue
        q = bnb.nn.Linear4bit(
            lin.in_features,
            lin.out_features,
            bias=lin.bias is not None,
            compute_dtype=getattr(torch, dtype),
            compress_statistics=DOUBLE_QUANT,
            quant_type="nf4",
            device="cpu",
        )
        q.weight = bnb.nn.Params4bit(
            lin.weight.detach().cpu(), requires_grad=False, compress_statistics=DOUBLE_QUANT, quant_type="nf4"
        )
        if lin.bias is not None:
            q.bias = nn.Parameter(lin.bias.detach().cpu(), requires_grad=False)
        swap(quantized, name, q.to(device))
    return quantized


def profiled_peak_bytes(fn) -> int:
    """Highest running total of CPU-allocator bytes allocated (and not yet freed) while ``fn`` runs.

    The profiler's allocation records carry the CPU allocator's running total for allocations it
    saw, so frees of tensors that existed before ``fn`` are not subtracted: if anything, an
    overestimate for the method that frees such tensors (none of the methods here does).
    """
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    peak, stack = 0, list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        event = stack.pop()
        if event.tag == _EventType.Allocation and event.extra_fields.device.type == "cpu":
            peak = max(peak, event.extra_fields.total_allocated)
        stack.extend(event.children)
    return peak


def one_step(fwd, opt, embeds, labels, device) -> None:
    """Forward, backward to the inputs (every method, the floor too), AdamW step if anything trains."""
    fwd(inputs_embeds=embeds.detach().requires_grad_(True), labels=labels).loss.backward()
    if opt is not None:
        opt.step()
        opt.zero_grad(set_to_none=True)
    sync(device)


def train_steps(method, model, embeds, labels, steps, device, warmup=0):
    """Set the method up, run ``warmup + steps`` training steps, tear it down.

    Returns the timed (post-warmup) step times and the trainable parameter count."""
    params = method.setup(model)
    opt = torch.optim.AdamW(params, lr=1e-5) if params else None
    fwd = method.forward_model(model)
    times = []
    for i in range(warmup + steps):
        sync(device)
        t0 = time.perf_counter()
        one_step(fwd, opt, embeds, labels, device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    n_train = sum(p.numel() for p in params)
    del opt, params
    method.teardown(model)
    return times, n_train


def cpu_peak_gib(method, model, embeds, labels) -> float:
    """One untimed, profiled step of ``method`` (setup and optimizer state included) on CPU."""
    live_before = (
        tensor_bytes(model.parameters()) + tensor_bytes(model.buffers()) + tensor_bytes([embeds, labels])
    )
    gc.collect()
    return (
        live_before + profiled_peak_bytes(lambda: train_steps(method, model, embeds, labels, 1, "cpu"))
    ) / 2**30


def profiled_op_ms(method, model, embeds, labels, device) -> dict[str, float]:
    """{op: ms} of ONE step of ``method`` under torch.profiler (after an unprofiled step that warms
    its caches): self CPU time of each op on CPU (idle and most interpreter time left out); on
    CUDA, the GPU time of the kernels each op launched itself (CPU-side ops only, so no kernel is
    counted twice)."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    on_cuda = device.startswith("cuda")
    activities = [ProfilerActivity.CPU, ProfilerActivity.CUDA] if on_cuda else [ProfilerActivity.CPU]
    params = method.setup(model)
    try:
        opt = torch.optim.AdamW(params, lr=1e-5) if params else None
        fwd = method.forward_model(model)
        for profiled in (False, True):
            with profile(activities=activities) if profiled else contextlib.nullcontext() as prof:
                one_step(fwd, opt, embeds, labels, device)
        events = [e for e in prof.key_averages() if e.device_type == DeviceType.CPU]
        if on_cuda:
            return {e.key: e.self_device_time_total / 1e3 for e in events if e.self_device_time_total > 0}
        return {e.key: e.self_cpu_time_total / 1e3 for e in events}
    finally:
        method.teardown(model)


def print_profile(methods, model, embeds, labels, rounds, device):
    """Per method: profiled op time of a step vs the floor, and the ops that add most to it.

    ``rounds`` interleaved rounds of one profiled step per method; each op's time is its MINIMUM
    over the rounds (a shared machine only ever adds time), so the totals compare the work."""
    per_round = [
        {m.name: profiled_op_ms(m, model, embeds, labels, device) for m in methods} for _ in range(rounds)
    ]
    results = {}
    for m in methods:
        ops = {k for r in per_round for k in r[m.name]}
        best = {k: min(r[m.name].get(k, 0.0) for r in per_round) for k in ops}
        results[m.name] = (sum(best.values()), best)
    base = results.get("floor", next(iter(results.values())))
    kind = "GPU kernel time" if device.startswith("cuda") else "self CPU time"
    print(
        f"# torch.profiler, {kind} per op: {rounds} interleaved rounds of one step per method; per op the "
        "minimum over rounds"
    )
    print("| method | op ms per step | x floor | largest additions over the floor (ms per step) |")
    print("|---|---:|---:|---|")
    for name, (total, ops) in results.items():
        extra = sorted(((ops.get(k, 0.0) - base[1].get(k, 0.0), k) for k in ops), reverse=True)[:3]
        extra_text = ", ".join(f"{k} +{d:.1f}" for d, k in extra if d > 0.05) or "-"
        print(f"| {name} | {total:.1f} | {total / base[0]:.3f} | {extra_text} |")


def paired_ratio(blocks: dict, a: str, b: str) -> float:
    """Step time of ``a`` relative to ``b``: the median over rounds of the ratio of their block
    medians IN THE SAME ROUND. Pairing within a round cancels the slow drift of a shared machine's
    load, which otherwise moves whole-run medians by several percent."""
    return statistics.median(
        statistics.median(x) / statistics.median(y) for x, y in zip(blocks[a], blocks[b])
    )


def check_targets(config: str, ratio, peaks: dict) -> list[str]:
    """issue 7's targets as ``met`` / ``MISSED`` lines, for the methods present in ``peaks``.

    ``ratio(a, b)`` is a's step time over b's; ``peaks`` maps method -> peak memory."""
    lines = []

    def check(label, ok):
        lines.append(f"{label}: {'met' if ok else 'MISSED'}")

    rocoft = [m for m in ("rocoft-rows", "rocoft-columns") if m in peaks]
    if "floor" in peaks:
        limit = 1.05 if config == "gpu" else 1.10
        for m in rocoft:
            x = ratio(m, "floor")
            check(f"{m} step <= {limit:.2f}x floor ({x:.3f}x)", x <= limit)
        if config == "gpu":
            for m, slack in (("rocoft-columns", 0.02), ("rocoft-rows", 0.20)):
                if m in peaks:
                    check(
                        f"{m} peak <= floor + {slack:.0%} ({peaks[m] / peaks['floor'] - 1:+.1%})",
                        peaks[m] <= (1 + slack) * peaks["floor"],
                    )
    if "lora-r8" in peaks:
        for m in rocoft:
            x = ratio("lora-r8", m)
            if config == "gpu":
                check(f"{m} >= 1.5x faster than LoRA ({x:.2f}x)", x >= 1.5)
                check(
                    f"{m} peak >= 25% below LoRA ({1 - peaks[m] / peaks['lora-r8']:.1%} below)",
                    peaks[m] <= 0.75 * peaks["lora-r8"],
                )
            else:
                check(f"{m} faster than LoRA ({x:.2f}x)", x > 1)
    if "paper" in peaks and config != "gpu":
        for m in rocoft:
            x = ratio("paper", m)
            check(f"{m} faster than the paper formulation ({x:.2f}x)", x > 1)
    return lines


def build_model(a, path: str | None):
    """The model at ``path`` (rocoft-llm's loader; its own shapes; random weights from its config.json
    when the directory holds none), else the configuration's random Llama."""
    from transformers import LlamaConfig, LlamaForCausalLM

    if path:
        from rocoft_llm.model_loading import load_model

        weights = [*Path(path).glob("*.safetensors"), *Path(path).glob("*.bin")]
        return load_model(path, dtype=a.dtype, device=a.device, random_init=not weights)
    config = LlamaConfig(
        vocab_size=a.vocab,
        hidden_size=a.hidden,
        intermediate_size=a.intermediate,
        num_hidden_layers=a.layers,
        num_attention_heads=a.heads,
        num_key_value_heads=a.heads,
        max_position_embeddings=max(a.seq, 128),
    )
    with torch.device(a.device):
        return LlamaForCausalLM(config).to(getattr(torch, a.dtype))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", choices=list(CONFIGS), default="cpu")
    for key in ("seq", "batch", "rank", "rounds", "steps", *SHAPE_OPTIONS):
        ap.add_argument(f"--{key}", type=int)
    ap.add_argument(
        "--device", help="override the configuration's device (e.g. the gpu shapes' code path on cpu)"
    )
    ap.add_argument(
        "--dtype", choices=["float32", "bfloat16", "float16"], help="override the configuration's dtype"
    )
    ap.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="after the timing, ROUNDS interleaved rounds of one torch.profiler step per method",
    )
    ap.add_argument("--methods", default="floor,rocoft-rows,rocoft-columns,paper,lora-r8,full")
    ap.add_argument("--model", help="a local pretrained model directory instead of the random Llama")
    ap.add_argument("--json", help="also write the results table to this JSON file")
    args = ap.parse_args()
    shape_options = [k for k in SHAPE_OPTIONS if getattr(args, k) is not None]
    if args.model and shape_options:
        sys.exit(f"--model {args.model} has its own shapes: drop --{', --'.join(shape_options)}")
    cfg = {
        **CONFIGS[args.config],
        **{k: v for k, v in vars(args).items() if v is not None and k in CONFIGS["cpu"]},
    }
    a = argparse.Namespace(**cfg)
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit(
            f"--config {args.config} runs on {a.device} but no CUDA device is visible; "
            "use a GPU machine, or --device cpu with smaller --layers/--hidden for a smoke run"
        )
    torch.manual_seed(0)
    try:
        methods = [Method(m, a) for m in args.methods.split(",")]
    except ValueError as e:
        sys.exit(str(e))
    model = build_model(a, args.model)
    ids = torch.randint(0, model.config.vocab_size, (a.batch, a.seq), device=a.device)
    with torch.no_grad():
        embeds = model.get_input_embeddings()(ids)
    # the model each method trains: the NF4 copy for *-nf4 (its embeddings are the same, unquantized)
    models = {False: model}
    if any(m.quantized for m in methods):
        models[True] = nf4_copy(model, a.dtype)
    resident = {k: tensor_bytes(v.parameters()) + tensor_bytes(v.buffers()) for k, v in models.items()}
    blocks = {m.name: [] for m in methods}  # per method: one list of step times per round
    peaks = {m.name: 0.0 for m in methods}
    counts = {}
    on_cuda = a.device.startswith("cuda")
    for _ in range(a.rounds):
        for m in methods:
            reset_memory(a.device)
            # every block's first step is untimed: it pays the setup (optimizer state, fresh allocations)
            t, counts[m.name] = train_steps(m, models[m.quantized], embeds, ids, a.steps, a.device, warmup=1)
            blocks[m.name].append(t)
            if on_cuda:  # less the other model, resident but not this method's
                others = sum(b for k, b in resident.items() if k != m.quantized)
                peaks[m.name] = max(peaks[m.name], (torch.cuda.max_memory_allocated() - others) / 2**30)
    if not on_cuda:
        for m in methods:
            peaks[m.name] = cpu_peak_gib(m, models[m.quantized], embeds, ids)
    tokens = a.batch * a.seq
    med = {k: statistics.median(t for block in v for t in block) for k, v in blocks.items()}

    def ratio(num, den):
        return paired_ratio(blocks, num, den)

    dev = torch.cuda.get_device_name() if on_cuda else (platform.processor() or platform.machine())
    import peft
    import transformers

    print(
        f"# {args.config}: {dev}, torch {torch.__version__}, transformers {transformers.__version__}, peft "
        f"{peft.__version__}, {a.dtype}, threads {torch.get_num_threads()}"
    )
    shapes = (
        f"{shown_path(args.model)} ({sum(p.numel() for p in model.parameters()):,} parameters)"
        if args.model
        else f"Llama hidden {a.hidden}, intermediate {a.intermediate}, {a.layers} layers"
    )
    print(
        f"# {shapes}, batch {a.batch} x {a.seq}, rank {a.rank}; {a.rounds} interleaved rounds x (1 + {a.steps}) "
        "steps per method; step ms = median of the timed steps; x floor / x LoRA = median over rounds of "
        "the same-round ratios"
    )
    table = {
        name: {
            "trainable": counts[name],
            "step_ms": t * 1e3,
            "tokens_per_s": tokens / t,
            "s_per_ktok": 1000 * t / tokens,
            "x_floor": ratio(name, "floor") if "floor" in med else None,
            "x_lora": ratio(name, "lora-r8") if "lora-r8" in med else None,
            "peak_gib": peaks[name],
            "peak_x_floor": peaks[name] / peaks["floor"] if "floor" in peaks else None,
        }
        for name, t in med.items()
    }
    print("| method | trainable params | step ms | tokens/s | x floor | x LoRA | peak GiB | peak x floor |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, row in table.items():
        vs_lora = "-" if row["x_lora"] is None else f"{row['x_lora']:.2f}"
        vs_floor = "-" if row["x_floor"] is None else f"{row['x_floor']:.3f}"
        mem_floor = "-" if row["peak_x_floor"] is None else f"{row['peak_x_floor']:.3f}"
        print(
            f"| {name} | {row['trainable']:,} | {row['step_ms']:.1f} | {row['tokens_per_s']:,.0f} | {vs_floor} "
            f"| {vs_lora} | {row['peak_gib']:.4g} | {mem_floor} |"
        )
    print(
        "# peak: "
        + (
            "torch.cuda.max_memory_allocated per method (reset between blocks)"
            if on_cuda
            else "CPU allocator bytes in one profiled untimed step per method + weights and batch"
        )
    )
    print(f"# targets ({'gpu' if args.config == 'gpu' and on_cuda else 'cpu'}):")
    for line in check_targets("gpu" if args.config == "gpu" and on_cuda else "cpu", ratio, peaks):
        print(f"#   {line}")
    if args.json:
        meta = {"model": args.model or shapes, "batch": a.batch, "seq": a.seq, "rank": a.rank, "rounds": a.rounds,
                "steps": a.steps, "dtype": a.dtype, "threads": torch.get_num_threads()}  # fmt: skip
        Path(args.json).write_text(json.dumps({"meta": meta, "methods": table}, indent=1))
    if args.profile:
        for quantized, group in ((q, [m for m in methods if m.quantized == q]) for q in models):
            if group:
                print_profile(group, models[quantized], embeds, ids, args.profile, a.device)


if __name__ == "__main__":
    main()
