"""Padding-free (``train.packing: true``) vs right-padded training on real data: target tokens per second.

The demo recipe (recipes/smollm2-135m-demo.yaml: SmolLM2-135M-Instruct, RoCoFT rows r=3, LLM-Adapters'
math_data.json, cutoff 256, response-only loss, micro-batch 8) trains the SAME optimizer steps both
ways, interleaved: step s padded, then step s packed (the order alternates per step, so drift in
the machine's load hits both), each through the training loop itself (``train.loop.run_loop``, one
step at a time, one model and optimizer). Each mode's first step is untimed (allocations). Printed:
per mode the median step time, the tokens it processed (pad positions included), the real and the
target tokens (those that carry loss: the same for both), and target tokens per second; the ratio
is the median over steps of the same-step padded / packed step times.

    python bench/packing_throughput.py --steps 6                    # CPU, the fetched model
    python bench/packing_throughput.py --device cuda --steps 20     # GPU (bench/gpu_check.sh)
    python bench/packing_throughput.py --export-kit models/packing-kit   # config, tokenizer and data
        # for a machine without the model cache: then --model models/packing-kit --random-init
        # --data models/packing-kit/math_data.json (random weights: the same shapes and timing)

Needs the model (`rocoft-llm fetch-model smollm2-135m`, or --model) and math_data.json (--data,
default ../shared/data/llm_adapters/ft-training_set/math_data.json).
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

DEFAULT_DATA = REPO.parent / "shared" / "data" / "llm_adapters" / "ft-training_set" / "math_data.json"
MODES = ("padded", "packed")
TARGET_RATIO = 1.3  # issue 21: >= 1.3x target tokens per second at micro-batch 8


def fetched_model() -> Path:
    from rocoft_llm.models.registry_models import fetch_model

    return fetch_model("smollm2-135m")[0]  # a cache hit once `rocoft-llm fetch-model` has run


def export_kit(dest: Path, model: Path, data: Path) -> None:
    """The small files a machine without the model cache or the shared data needs (no weights)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        if (model / name).is_file():
            shutil.copy(model / name, dest / name)
    shutil.copy(data, dest / "math_data.json")
    print(f"wrote {dest}: {', '.join(sorted(p.name for p in dest.iterdir()))}")


class StepRecords:
    """The loop's logger: keeps each step's record (its ``step_s``)."""

    def __init__(self):
        self.records = []

    def log(self, record: dict) -> None:
        self.records.append(record)


def positions(examples: list[dict], pad_id: int) -> dict[str, int]:
    """Token positions each mode computes for these examples (pad positions included)."""
    from rocoft_llm.train.batching import collate_packed

    return {
        "padded": len(examples) * max(len(e["input_ids"]) for e in examples),
        "packed": collate_packed(examples, pad_id)["input_ids"].numel(),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default=str(REPO / "recipes" / "smollm2-135m-demo.yaml"))
    ap.add_argument("--model", help="model directory (default: the fetched SmolLM2-135M-Instruct)")
    ap.add_argument("--random-init", action="store_true", help="random weights from --model's config")
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--micro-batch", type=int, default=8)
    ap.add_argument("--cutoff", type=int, default=None, help="data.cutoff_len override (recipe: 256)")
    ap.add_argument("--steps", type=int, default=6, help="timed steps per mode (+1 untimed each)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default=None, help="train.precision override (bf16 on GPU)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--cache-dir", default=str(REPO / "bench_out" / "cache"))
    ap.add_argument("--export-kit", help="write config, tokenizer and data to this directory and stop")
    args = ap.parse_args()

    model_dir = Path(args.model) if args.model else fetched_model()
    if args.export_kit:
        export_kit(Path(args.export_kit), model_dir, Path(args.data))
        return
    import torch
    import transformers

    from rocoft_llm.config import load_recipe
    from rocoft_llm.train.backends import make_backend
    from rocoft_llm.train.batching import BatchPlan, target_tokens
    from rocoft_llm.train.loop import LoopContext, run_loop
    from rocoft_llm.train.model_setup import build_model
    from rocoft_llm.train.run import load_training_data

    if args.threads:
        torch.set_num_threads(args.threads)
    m = args.micro_batch
    overrides = [
        f"model.name_or_path={model_dir}",
        f"model.random_init={str(args.random_init).lower()}",
        f"data.train=[{args.data}]",
        f"data.cache_dir={args.cache_dir}",
        f"train.micro_batch_size={m}",
        f"train.global_batch_size={m}",
        "train.scheduler=constant",
        "train.warmup_steps=0",
        f"output.dir={REPO / 'bench_out' / 'packing'}",
        *([f"train.precision={args.precision}"] if args.precision else []),
        *([f"data.cutoff_len={args.cutoff}"] if args.cutoff else []),
    ]
    recipe, _ = load_recipe(args.recipe, overrides, offline_checks=False)
    dataset, _ = load_training_data(recipe)
    device = torch.device(args.device)
    model, _, _ = build_model(recipe)
    total = 2 * (args.steps + 1)
    backend = make_backend(recipe, device, 1, total)
    params = backend.wrap(model)
    plan = BatchPlan(len(dataset), m, m, 1, recipe.train.seed)
    labels = dataset["labels"]
    records = {mode: StepRecords() for mode in MODES}

    def context(mode: str, step: int) -> LoopContext:
        return LoopContext(
            backend=backend,
            params=params,
            dataset=dataset,
            labels=labels,
            plan=plan,
            total_steps=step + 1,
            pad_id=recipe.model.pad_token_id,
            log_steps=1,
            save_steps=0,
            flops_per_token=0.0,
            logger=records[mode],
            save=lambda *a: None,
            packing=mode == "packed",
        )

    counts = []
    for step in range(args.steps + 1):
        for mode in MODES if step % 2 == 0 else MODES[::-1]:
            run_loop(context(mode, step), {"step": step})
        examples = [dataset[i] for i in plan.global_indices(step)]
        counts.append(
            {
                "target": sum(target_tokens(labels[i]) for i in plan.global_indices(step)),
                "real": sum(len(e["input_ids"]) for e in examples),
                **positions(examples, recipe.model.pad_token_id),
            }
        )
    timed = slice(1, None)
    seconds = {mode: [r["step_s"] for r in records[mode].records][timed] for mode in MODES}
    counts = counts[timed]
    target = sum(c["target"] for c in counts)
    real = sum(c["real"] for c in counts)
    computed = {mode: sum(c[mode] for c in counts) for mode in MODES}
    ratio = statistics.median(p / q for p, q in zip(seconds["padded"], seconds["packed"], strict=True))
    rate = {mode: target / sum(seconds[mode]) for mode in MODES}

    threads = torch.get_num_threads() if device.type == "cpu" else None
    kind = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine()
    print(
        f"# {device.type}: {kind}, torch {torch.__version__}, transformers {transformers.__version__}"
        + (f", threads {threads}" if threads else "")
    )
    print(
        f"# {model_dir.name}{' (random init)' if args.random_init else ''}, {Path(args.data).name} "
        f"({len(dataset):,} examples, cutoff {recipe.data.cutoff_len}), {recipe.method} "
        f"{recipe.rocoft.mode} r={recipe.rocoft.rank}, {recipe.train.precision}, micro-batch {m} = one step; "
        f"steps 1-{args.steps} of the seeded order, interleaved, each mode's step 0 untimed"
    )
    print(
        "| mode | step s (median) | positions computed | real tokens | pad share | target tokens "
        "| target tok/s | x padded |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for mode in MODES:
        pad = 1 - real / computed[mode]
        print(
            f"| {mode} | {statistics.median(seconds[mode]):.3f} | {computed[mode]:,} | {real:,} | "
            f"{pad:.1%} | {target:,} | {rate[mode]:,.0f} | {rate[mode] / rate['padded']:.2f} |"
        )
    verdict = "met" if ratio >= TARGET_RATIO else "MISSED"
    print(
        f"# packed / padded: {ratio:.2f}x (median of same-step time ratios); "
        f"target >= {TARGET_RATIO}x: {verdict}"
    )


if __name__ == "__main__":
    main()
