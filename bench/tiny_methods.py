"""Tokens/s and peak memory of the tiny recipe on CPU for RoCoFT rows, columns, LoRA and full
finetuning, measured in one invocation (each method in its own process, so peak RSS is its own).

    python bench/tiny_methods.py --steps 40
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from run_train import REPO, shown_path, train_run

METHODS = {
    "rocoft-rows": ["method=rocoft", "rocoft.mode=row"],
    "rocoft-columns": ["method=rocoft", "rocoft.mode=column"],
    "lora-r8": ["method=lora", "rocoft=null", "lora.r=8", "train.lr=1e-3"],
    "full": ["method=full", "rocoft=null", "train.lr=1e-3"],
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--recipe", default=str(REPO / "recipes/tiny-llama-rows.yaml"))
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, overrides in METHODS.items():
            out = Path(tmp) / name
            summary, metrics = train_run(
                args.recipe,
                [*overrides, f"train.max_steps={args.steps}", "train.save_steps=null", "output.report_to=[]"],
                out,
            )
            tps = statistics.median(m["tokens_per_s"] for m in metrics[2:])
            rows.append(
                (
                    name,
                    summary["trainable_parameters"],
                    tps,
                    summary["peak_memory_gib_rank0"],
                    summary["final_loss"],
                )
            )
    print(
        f"# tiny recipe ({shown_path(args.recipe)}), {args.steps} steps, CPU, median tokens/s over steps 3..{args.steps}"
    )
    print("| method | trainable params | tokens/s | peak RSS GiB | final loss |")
    print("|---|---:|---:|---:|---:|")
    for name, n, tps, mem, loss in rows:
        print(f"| {name} | {n:,} | {tps:,.0f} | {mem:.2f} | {loss:.4f} |")


if __name__ == "__main__":
    main()
