"""Examples/s of the generation evaluation on the tiny model: batched (8, left padding + attention
mask) vs one at a time, same prompts, greedy, in one run. Target: batched >= 4x.

    python bench/eval_throughput.py --n 64
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    args = ap.parse_args()
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from rocoft_llm.data.templates import get_template
    from rocoft_llm.eval.generate import generate, prepare_tokenizer

    torch.manual_seed(0)
    tiny = REPO / "recipes" / "tiny" / "llama"
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(tiny)).eval()
    tok = prepare_tokenizer(AutoTokenizer.from_pretrained(tiny))
    records = json.loads((REPO / "recipes/tiny/data/train.json").read_text())[: args.n]
    prompts = [get_template("llm_adapters").render_prompt(r["instruction"]) for r in records]
    generate(model, tok, prompts[:8], batch_size=8, num_beams=1, max_new_tokens=4)  # warm-up
    rates = {}
    for bs in (args.batch_size, 1):
        t0 = time.perf_counter()
        generate(model, tok, prompts, batch_size=bs, num_beams=1, max_new_tokens=args.max_new_tokens)
        rates[bs] = len(prompts) / (time.perf_counter() - t0)
    print(
        f"# tiny Llama (recipes/tiny/llama), {len(prompts)} prompts, greedy, max_new_tokens {args.max_new_tokens}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print("| batch size | examples/s |")
    print("|---:|---:|")
    for bs, r in rates.items():
        print(f"| {bs} | {r:.1f} |")
    speedup = rates[args.batch_size] / rates[1]
    print(
        f"speed-up batched / one at a time: {speedup:.1f}x (target >= 4x: {'met' if speedup >= 4 else 'MISSED'})"
    )


if __name__ == "__main__":
    main()
