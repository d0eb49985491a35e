"""RoCoFT vs the frozen floor, the paper's formulation, LoRA and full finetuning - ONE process, one run.

Every method trains the same Llama-style model (random init) on the same batch; methods are
interleaved in rounds (round r runs a block of steps of every method in turn, so drift in machine
load hits all of them), memory is freed and peak statistics reset between blocks, and the median
step time (forward + backward + AdamW) over all timed steps is reported with tokens/s, peak memory
and the ratios to the floor and to LoRA.

* floor: every weight frozen, backward to the inputs only - no method can beat it;
* rocoft-rows / rocoft-columns: rocoft-llm's layer;
* paper: the reference formulation - each forward concatenates the trainable slice and a frozen
  buffer into a full weight (written here, for comparison only);
* lora-r8: peft LoRA r=8, alpha 16 on the same seven projections;
* full: full finetuning.

    python bench/methods.py --config cpu                 # ~2 minutes on 2 cores
    python bench/methods.py --config gpu                 # Llama-2-7B shapes, bf16, batch 4 x 1024, r=3
    python bench/methods.py --config cpu --layers 2 --seq 128 --rounds 2

Needs torch, transformers and peft (rocoft-llm's layer is imported from this checkout).
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CONFIGS = {
    "cpu": dict(hidden=512, intermediate=1376, layers=4, heads=8, vocab=4096, seq=256, batch=4, rank=3,
                dtype="float32", device="cpu", rounds=3, steps=4),
    "gpu": dict(hidden=4096, intermediate=11008, layers=32, heads=32, vocab=32000, seq=1024, batch=4, rank=3,
                dtype="bfloat16", device="cuda", rounds=3, steps=4),
}
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class PaperRowLinear(nn.Module):
    """The paper's formulation (rows): cat(trainable first r rows, frozen remainder) every forward."""

    def __init__(self, linear: nn.Linear, r: int):
        super().__init__()
        self.trainable = nn.Parameter(linear.weight.detach()[:r].float().clone())
        self.register_buffer("frozen", linear.weight.detach()[r:], persistent=False)  # a view: no extra copy

    def forward(self, x):
        w = torch.cat([self.trainable.to(self.frozen.dtype), self.frozen], 0)
        return F.linear(x, w)


def linears(model):
    return {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear) and n.endswith(TARGETS)}


def swap(model, name, module):
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent), leaf, module)


class Method:
    """setup(model) -> trainable params (model changed in place); teardown(model) restores it."""

    def __init__(self, name, args):
        self.name, self.args, self.saved = name, args, {}

    def setup(self, model):
        a = self.args
        for p in model.parameters():
            p.requires_grad_(False)
        if self.name == "floor":
            return []
        if self.name.startswith("rocoft"):
            from rocoft_llm.rocoft.layer import RoCoFTLinear

            mode = "row" if self.name.endswith("rows") else "column"
            for n, lin in linears(model).items():
                self.saved[n] = lin
                swap(model, n, RoCoFTLinear(lin, torch.arange(a.rank), mode))
            return [m.rocoft_slice for m in model.modules() if isinstance(m, RoCoFTLinear)]
        if self.name == "paper":
            for n, lin in linears(model).items():
                self.saved[n] = lin
                swap(model, n, PaperRowLinear(lin, a.rank))
            return [m.trainable for m in model.modules() if isinstance(m, PaperRowLinear)]
        if self.name == "lora-r8":
            from peft import LoraConfig, get_peft_model

            self.peft = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                                                         target_modules=list(TARGETS)))
            return [p for p in self.peft.parameters() if p.requires_grad]
        if self.name == "full":
            for p in model.parameters():
                p.requires_grad_(True)
            return list(model.parameters())
        raise ValueError(self.name)

    def forward_model(self, model):
        return getattr(self, "peft", model)

    def teardown(self, model):
        for n, lin in self.saved.items():
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


def peak_gib(device):
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**30
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # process-wide on CPU


def run_block(method, model, embeds, labels, steps, device, warmup):
    params = method.setup(model)
    opt = torch.optim.AdamW(params, lr=1e-5) if params else None
    fwd = method.forward_model(model)
    times = []
    for i in range(warmup + steps):
        sync(device)
        t0 = time.perf_counter()
        x = embeds.detach().requires_grad_(True)  # backward to the inputs for every method
        fwd(inputs_embeds=x, labels=labels).loss.backward()
        if opt is not None:
            opt.step()
            opt.zero_grad(set_to_none=True)
        sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    n_train = sum(p.numel() for p in params)
    del opt, params
    method.teardown(model)
    return times, n_train


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", choices=list(CONFIGS), default="cpu")
    for key in ("layers", "seq", "batch", "rank", "rounds", "steps", "hidden", "intermediate"):
        ap.add_argument(f"--{key}", type=int)
    ap.add_argument("--methods", default="floor,rocoft-rows,rocoft-columns,paper,lora-r8,full")
    args = ap.parse_args()
    cfg = {**CONFIGS[args.config], **{k: v for k, v in vars(args).items() if v is not None and k in CONFIGS["cpu"]}}
    a = argparse.Namespace(**cfg)
    if a.device == "cuda" and not torch.cuda.is_available():
        sys.exit("the gpu configuration needs a CUDA device")
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=a.vocab, hidden_size=a.hidden, intermediate_size=a.intermediate,
                         num_hidden_layers=a.layers, num_attention_heads=a.heads, num_key_value_heads=a.heads,
                         max_position_embeddings=max(a.seq, 128))
    with torch.device(a.device):
        model = LlamaForCausalLM(config).to(getattr(torch, a.dtype))
    ids = torch.randint(0, a.vocab, (a.batch, a.seq), device=a.device)
    with torch.no_grad():
        embeds = model.get_input_embeddings()(ids)
    methods = [Method(m, a) for m in args.methods.split(",")]
    times = {m.name: [] for m in methods}
    peaks = {m.name: 0.0 for m in methods}
    counts = {}
    for rnd in range(a.rounds):
        for m in methods:
            reset_memory(a.device)
            t, counts[m.name] = run_block(m, model, embeds, ids, a.steps, a.device, warmup=1 if rnd == 0 else 0)
            times[m.name].extend(t)
            peaks[m.name] = max(peaks[m.name], peak_gib(a.device))
    tokens = a.batch * a.seq
    med = {k: statistics.median(v) for k, v in times.items()}
    dev = torch.cuda.get_device_name() if a.device == "cuda" else (platform.processor() or platform.machine())
    import peft
    import transformers

    print(f"# {args.config}: {dev}, torch {torch.__version__}, transformers {transformers.__version__}, peft "
          f"{peft.__version__}, {a.dtype}, threads {torch.get_num_threads()}")
    print(f"# Llama hidden {a.hidden}, intermediate {a.intermediate}, {a.layers} layers, batch {a.batch} x {a.seq}, "
          f"rank {a.rank}; {a.rounds} interleaved rounds x {a.steps} steps per method; median step")
    print("| method | trainable params | step ms | tokens/s | x floor | x LoRA | peak GiB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, t in med.items():
        vs_lora = f"{t / med['lora-r8']:.2f}" if "lora-r8" in med else "-"
        vs_floor = f"{t / med['floor']:.3f}" if "floor" in med else "-"
        peak = f"{peaks[name]:.2f}" if a.device != "cpu" else "n/a"
        print(f"| {name} | {counts[name]:,} | {t * 1e3:.1f} | {tokens / t:,.0f} | {vs_floor} | {vs_lora} | {peak} |")
    if a.device == "cpu":
        print("# peak memory per method is a GPU figure (on CPU the process RSS only grows); see bench/sharding_memory.py")


if __name__ == "__main__":
    main()
