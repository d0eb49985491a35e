"""Step time of RoCoFT rows / columns relative to the frozen-model floor, measured in ONE run.

The floor is the same model with every weight frozen and backward taken to the inputs only: no
parameter-efficient method can be faster. Methods are interleaved step by step (so machine noise
hits all of them alike) and the median step time (forward + backward + AdamW step) is reported.

    python bench/layer_overhead.py                      # CPU-sized Llama (about a minute on 2 cores)
    python bench/layer_overhead.py --layers 2 --seq 128 --steps 5
    python bench/layer_overhead.py --device cuda --dtype bfloat16 --hidden 4096 --intermediate 11008 \
        --layers 32 --heads 32 --seq 1024 --batch 4      # Llama-2-7B shapes on one GPU

Only torch and transformers are needed.
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time

import torch


def build(args):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=args.intermediate,
                      num_hidden_layers=args.layers, num_attention_heads=args.heads, num_key_value_heads=args.heads,
                      max_position_embeddings=max(args.seq, 128))
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg).to(device=args.device, dtype=getattr(torch, args.dtype))


def make_methods(base, args):
    from rocoft_llm import RoCoFTConfig, apply_rocoft, trainable_parameters

    floor = base
    for p in floor.parameters():
        p.requires_grad_(False)
    methods = {"floor": (floor, None)}
    for mode in ("row", "column"):
        model = apply_rocoft(copy.deepcopy(base), RoCoFTConfig(mode=mode, rank=args.rank))
        opt = torch.optim.AdamW(trainable_parameters(model).values(), lr=1e-4)
        methods[f"rocoft-{mode}s"] = (model, opt)
    return methods


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def step(model, opt, embeds, labels):
    x = embeds.detach().requires_grad_(True)  # backward to the inputs for every method, the floor included
    out = model(inputs_embeds=x, labels=labels)
    out.loss.backward()
    if opt is not None:
        opt.step()
        opt.zero_grad(set_to_none=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--intermediate", type=int, default=1376)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--rank", type=int, default=3)
    ap.add_argument("--steps", type=int, default=12, help="timed steps per method (after 2 warm-up steps)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    base = build(args)
    methods = make_methods(base, args)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, args.vocab, (args.batch, args.seq), generator=g).to(args.device)
    with torch.no_grad():
        embeds = base.get_input_embeddings()(ids)
    times = {name: [] for name in methods}
    for i in range(args.steps + 2):
        for name, (model, opt) in methods.items():
            sync(args.device)
            t0 = time.perf_counter()
            step(model, opt, embeds, ids)
            sync(args.device)
            if i >= 2:
                times[name].append(time.perf_counter() - t0)

    from rocoft_llm import trainable_parameters

    floor = statistics.median(times["floor"])
    print(f"# torch {torch.__version__}, {platform.processor() or platform.machine()}, threads "
          f"{torch.get_num_threads()}, device {args.device}, {args.dtype}")
    print(f"# Llama hidden {args.hidden}, intermediate {args.intermediate}, {args.layers} layers, batch "
          f"{args.batch} x {args.seq} tokens, rank {args.rank}, median of {args.steps} interleaved steps")
    print("| method | trainable params | step ms | x floor |")
    print("|---|---:|---:|---:|")
    for name, (model, _) in methods.items():
        med = statistics.median(times[name])
        n = sum(p.numel() for p in trainable_parameters(model).values()) if name != "floor" else 0
        print(f"| {name} | {n:,} | {med * 1e3:.1f} | {med / floor:.3f} |")


if __name__ == "__main__":
    main()
