"""Per-rank memory as ranks grow: 1 process, then N ranks under FSDP2 and under DeepSpeed ZeRO-3,
same recipe, one invocation. Shows the frozen weights are sharded (~1/N per rank) and what each
rank holds of the trainable slices and of their optimizer state (FSDP2 and ZeRO-3 shard both).

    python bench/sharding_memory.py                           # CPU (gloo): 1 vs 2 vs 4 ranks
    python bench/sharding_memory.py --ranks 2 --layers 4      # quicker
    python bench/sharding_memory.py --shape llama2-7b --ranks 1 --precision bf16 --seq 1024 --steps 3
                                                              # on GPU machines: ranks = GPUs used
                                                              # (bench/gpu_check.sh runs this)

Every run is ``rocoft-llm train`` on a random-init Llama (bundled tiny tokenizer and data, RoCoFT
rows r=3) launched by this script (torchrun for N > 1); the numbers come from each run's
summary.json: ``*_bytes_rank0`` are the local shards rank 0 holds after training; peak memory is
``torch.cuda.max_memory_allocated`` on GPU and the whole process's max RSS on CPU (Python, torch
and datasets included, which hides the saving at small sizes).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
from pathlib import Path

from run_train import REPO, train_run

TINY = REPO / "recipes" / "tiny"
SHAPES = {  # hidden, intermediate, layers, heads, vocab
    "small": (512, 1376, 8, 8, None),
    "llama2-7b": (4096, 11008, 32, 32, 32000),
}


def model_dir(tmp: Path, hidden: int, intermediate: int, layers: int, heads: int, vocab: int | None) -> Path:
    """A config-only Llama directory (random init) with the bundled tiny tokenizer."""
    out = tmp / "model"
    out.mkdir()
    cfg = json.loads((TINY / "llama" / "config.json").read_text())
    cfg.update(
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        head_dim=hidden // heads,
    )
    if vocab:
        cfg["vocab_size"] = vocab  # the tiny tokenizer's ids are a prefix of any larger vocabulary
    (out / "config.json").write_text(json.dumps(cfg))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(TINY / "llama" / name, out / name)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=list(SHAPES), default="small")
    ap.add_argument("--layers", type=int, help="override the shape's layer count")
    ap.add_argument("--ranks", default="2,4", help="comma-separated rank counts for the sharded runs")
    ap.add_argument("--backends", default="fsdp,deepspeed", help="sharded backends to run (fsdp, deepspeed)")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--seq", type=int, default=192, help="data.cutoff_len")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per training run")
    args = ap.parse_args()
    import yaml

    hidden, intermediate, layers, heads, vocab = SHAPES[args.shape]
    layers = args.layers or layers
    ranks = [int(n) for n in args.ranks.split(",") if n.strip()]
    names = {"fsdp": "FSDP2", "deepspeed": "ZeRO-3"}
    backends = [b for b in args.backends.split(",") if b]
    unknown = sorted(set(backends) - set(names))
    if unknown:
        ap.error(f"--backends: {', '.join(unknown)} not among {', '.join(names)}")
    runs = [("1 process", "none", 1)] + [
        (f"{names[b]}, {n} rank{'s' if n > 1 else ''}", b, n) for n in ranks for b in backends
    ]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = model_dir(tmp, hidden, intermediate, layers, heads, vocab)
        for label, backend, nproc in runs:
            out = tmp / f"{backend}-{nproc}"
            global_batch = 4 * max(ranks + [1])  # same global batch for every run; micro batch divides it
            recipe = {
                "model": {
                    "name_or_path": str(model),
                    "random_init": True,
                    "dtype": "bfloat16" if args.precision == "bf16" else "float32",
                },
                "rocoft": {"mode": "row", "rank": 3},
                "data": {
                    "train": [str(TINY / "data" / "train.json")],
                    "cutoff_len": args.seq,
                    "cache_dir": str(tmp / "cache"),
                },
                "train": {
                    "global_batch_size": global_batch,
                    "micro_batch_size": 1,
                    "max_steps": args.steps,
                    "warmup_steps": min(1, args.steps - 1),
                    "precision": args.precision,
                },
                "dist": {"backend": backend, **({"zero_stage": 3} if backend == "deepspeed" else {})},
                "output": {"dir": str(out), "report_to": []},
            }
            path = tmp / f"{backend}-{nproc}.yaml"
            path.write_text(yaml.safe_dump(recipe))
            print(f"# running: {label}", flush=True)
            s, metrics = train_run(
                path, [], out, nproc=nproc, timeout=args.timeout, torchrun=backend != "none"
            )
            step_s = statistics.median(m["step_s"] for m in metrics[1:]) if len(metrics) > 1 else None
            rows.append((label, s, step_s))
    single = rows[0][1]
    print(
        f"# random Llama ({args.shape}), hidden {hidden}, {layers} layers, {args.precision}, "
        f"{single['total_parameters']:,} parameters, RoCoFT rows r=3 ({single['trainable_parameters']:,} trainable); "
        f"global batch {global_batch} x <= {args.seq} tokens, {args.steps} steps"
    )
    print(
        "| run | frozen on rank 0 (MiB) | x 1-process | slices on rank 0 (KiB) | optimizer state on rank 0 (KiB) "
        "| peak memory rank 0 (GiB) | median step s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, s, step_s in rows:
        frozen = s["frozen_param_bytes_rank0"]
        print(
            f"| {label} | {frozen / 2**20:.1f} | {frozen / single['frozen_param_bytes_rank0']:.2f} "
            f"| {s['trainable_param_bytes_rank0'] / 2**10:.1f} | {s['optimizer_state_bytes_rank0'] / 2**10:.1f} "
            f"| {s['peak_memory_gib_rank0']:.2f} | {step_s if step_s is None else f'{step_s:.3f}'} |"
        )


if __name__ == "__main__":
    main()
