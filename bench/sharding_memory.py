"""Per-rank memory of the frozen weights as ranks grow: 1 process vs 2 ranks under FSDP2 and under
DeepSpeed ZeRO-3 (CPU, gloo), same recipe, one invocation. Shows the frozen weights are sharded
(~1/N per rank) while only the slices (and their optimizer state) are trained.

    python bench/sharding_memory.py --layers 8 --hidden 512 --steps 4
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from run_train import REPO, train_run

TINY = REPO / "recipes" / "tiny"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--steps", type=int, default=4)
    args = ap.parse_args()
    import yaml

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_dir = tmp / "model"
        model_dir.mkdir()
        cfg = json.loads((TINY / "llama" / "config.json").read_text())
        cfg.update(hidden_size=args.hidden, intermediate_size=int(args.hidden * 2.6875), num_hidden_layers=args.layers,
                   num_attention_heads=8, num_key_value_heads=8, head_dim=args.hidden // 8)
        (model_dir / "config.json").write_text(json.dumps(cfg))
        for name in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(TINY / "llama" / name, model_dir / name)
        rows = []
        for label, backend, nproc in (("1 process", "none", 1), ("FSDP2, 2 ranks", "fsdp", 2),
                                      ("ZeRO-3, 2 ranks", "deepspeed", 2)):
            out = tmp / backend
            recipe = {"model": {"name_or_path": str(model_dir), "random_init": True, "dtype": "float32"},
                      "rocoft": {"mode": "row", "rank": 3},
                      "data": {"train": [str(TINY / "data" / "train.json")], "cutoff_len": 192,
                               "cache_dir": str(tmp / "cache")},
                      "train": {"global_batch_size": 8, "micro_batch_size": 4 // nproc,
                                "max_steps": args.steps, "warmup_steps": 1, "precision": "fp32"},
                      "dist": {"backend": backend, **({"zero_stage": 3} if backend == "deepspeed" else {})},
                      "output": {"dir": str(out), "report_to": []}}
            path = tmp / f"{backend}.yaml"
            path.write_text(yaml.safe_dump(recipe))
            s, _ = train_run(path, [], out, nproc=nproc)
            rows.append((label, s["frozen_param_bytes_rank0"], s["peak_memory_gib_rank0"], s["trainable_parameters"],
                         s["total_parameters"]))
    base = rows[0][1]
    print(f"# random Llama, hidden {args.hidden}, {args.layers} layers, fp32, {rows[0][4]:,} parameters, RoCoFT rows "
          f"r=3 ({rows[0][3]:,} trainable); CPU, gloo")
    print("| run | frozen weights on rank 0 (MiB) | share of 1-process | peak RSS rank 0 (GiB) |")
    print("|---|---:|---:|---:|")
    for label, frozen, rss, _, _ in rows:
        print(f"| {label} | {frozen / 2**20:.1f} | {frozen / base:.2f} | {rss:.2f} |")


if __name__ == "__main__":
    main()
