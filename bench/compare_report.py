"""Tables and the learning-curve PNG of bench/compare_methods.py, from its results and the runs' files.

Every number comes from a file a command wrote: test / validation NLL from `eval --metric nll`
(nll/summary.json and per-record rows), trainable parameters and training seconds from the runs'
summary.json, step cost against the floor from stage 5's cost.json (bench/methods.py), the
learning curves from metrics.jsonl (val_nll, train_seconds), generation accuracy from
`eval` summaries. Paired differences against LoRA average each record's NLL over the seeds of
each method, then bootstrap over records (the same resample for both sides).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from rocoft_llm.eval.intervals import bootstrap_ratio
from rocoft_llm.eval.tables import models_table, pooled_line

ITERATIONS, SEED = 2000, 0


def seed_mean_rows(per_seed: dict) -> tuple[list[float], list[int]]:
    """Per record: NLL sum averaged over seeds; target tokens (identical across seeds and methods)."""
    seeds = list(per_seed.values())
    counts = [r["tokens"] for r in seeds[0]["rows"]]
    sums = [statistics.fmean(s["rows"][i]["nll_sum"] for s in seeds) for i in range(len(counts))]
    return sums, counts


def paired_cell(a: dict, b: dict) -> str:
    """``a - b`` per target token (seed-averaged records), with its 95% bootstrap interval."""
    sums_a, counts = seed_mean_rows(a)
    sums_b, counts_b = seed_mean_rows(b)
    if counts != counts_b:
        raise ValueError("the two evaluations scored different target tokens")
    diff, (lo, hi) = bootstrap_ratio(sums_a, counts, ITERATIONS, SEED, base_sums=sums_b)
    return f"{diff:+.4f} [{lo:+.4f}, {hi:+.4f}]"


def run_cost(run: Path) -> dict:
    s = json.loads((run / "summary.json").read_text())
    return {"trainable": s["trainable_parameters"], "train_s": s.get("train_seconds")}


def cost_line(cost: dict | None) -> str:
    if cost is None:
        return "Cost: not measured (--no-cost). train s: the runs' wall time for their optimizer steps."
    m, floor = cost["meta"], cost["floor"]
    return (
        f"Cost: one process, {m['rounds']} interleaved rounds of one training step per method (batch "
        f"{m['batch']} x {m['seq']} tokens, {m['threads']} threads; bench/methods.py); x floor = median over "
        f"rounds of the same-round ratio to the frozen floor ({floor['s_per_ktok']:.3f} s / 1,000 tokens, "
        f"peak {floor['peak_gib']:.2f} GiB); peak = CPU allocator bytes of a profiled step. train s: the "
        "runs' wall time for their optimizer steps."
    )


def step_cells(cost: dict | None, method: str) -> str:
    """s / 1k tokens | x floor | peak GiB | x floor peak of ``method`` (dashes when not measured)."""
    if cost is None:
        return "- | - | - | -"
    step = cost["methods"][method]
    return f"{step['s_per_ktok']:.3f} | {step['x_floor']:.3f} | {step['peak_gib']:.2f} | {step['peak_x_floor']:.2f}"


def main_table(res: dict) -> str:
    cost = res["cost"]  # {"meta", "floor", "methods": {method: bench/methods.py's row}}; None: --no-cost
    test = res["test"]
    base = next(iter(test["base"].values()))
    lines = [
        f"Test NLL per response token (nats; {base['records']} records of math_data.json:test, "
        f"{base['target_tokens']} tokens). Base model: {base['mean_nll']:.4f} "
        f"[{base['ci95'][0]:.4f}, {base['ci95'][1]:.4f}].",
        "",
        cost_line(cost),
        "",
        "| method | lr | test NLL mean (sd), seeds | minus LoRA r=8 [95% CI] | minus base [95% CI] | "
        "trainable params | s / 1k tokens | x floor | peak GiB | x floor peak | train s |",
        "|---|---:|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for method, per_seed in test.items():
        if method == "base":
            continue
        means = [s["mean_nll"] for s in per_seed.values()]
        sd = statistics.stdev(means) if len(means) > 1 else float("nan")
        runs = [run_cost(Path(p)) for p in res["runs"][method].values()]
        vs_lora = (
            "-" if method == "lora-r8" or "lora-r8" not in test else paired_cell(per_seed, test["lora-r8"])
        )
        vs_base = paired_cell(per_seed, {s: base for s in per_seed})
        lines.append(
            f"| {method} | {float(res['best_lr'][method]):g} | {statistics.fmean(means):.4f} ({sd:.4f}), "
            f"{len(means)} | {vs_lora} | {vs_base} | {runs[0]['trainable']:,} | {step_cells(cost, method)} | "
            f"{statistics.median(r['train_s'] for r in runs):.0f} |"
        )
    return "\n".join(lines) + "\n"


def sweep_cells(by_lr: dict, best) -> list[str]:
    """``lr: NLL`` per tried rate, the chosen one starred."""
    return [
        f"{float(lr):g}: {nll:.4f}" + (" *" if float(lr) == float(best) else "") for lr, nll in by_lr.items()
    ]


def sweep_table(res: dict) -> str:
    lines = ["Validation NLL by learning rate (first seed; lowest = chosen):", ""]
    width = max(len(by_lr) for by_lr in res["sweep"].values())
    lines += ["| method | " + " | ".join(["lr: NLL"] * width) + " |", "|---|" + "---|" * width]
    for method, by_lr in res["sweep"].items():
        lines.append(f"| {method} | " + " | ".join(sweep_cells(by_lr, res["best_lr"][method])) + " |")
    return "\n".join(lines) + "\n"


def ablation_table(res: dict) -> str:
    if "rows-r3" not in res["test"] or not (res["ablations"] or "columns-r3" in res["test"]):
        return "Ablations: none run (they need rows-r3 among --methods and --ablations other than 'none').\n"
    first_seed = next(iter(res["test"]["rows-r3"]))
    ref = {first_seed: res["test"]["rows-r3"][first_seed]}

    def stage2(method: str) -> dict:  # a method of stage 2 as an ablation row: its first seed
        run = res["runs"][method][first_seed]
        return {"lr": res["best_lr"][method], "sweep": res["sweep"][method], "test": res["test"][method][first_seed], "run": run}  # fmt: skip

    lines = [
        f"Ablations (test NLL, seed {first_seed}, each at its own rate chosen by validation NLL; paired "
        "against rows r=3 first, same seed):",
        "",
        "| variant | lr | test NLL | minus rows-r3 first [95% CI] | trainable params | validation NLL by lr |",
        "|---|---:|---:|---|---:|---|",
    ]
    variants = {"rows-r3 (first)": stage2("rows-r3")}
    if "columns-r3" in res["test"]:
        variants["columns-r3 (first)"] = stage2("columns-r3")
    variants.update(res["ablations"])  # each: lr, sweep (absent in older results), test, run
    for name, a in variants.items():
        diff = "-" if name == "rows-r3 (first)" else paired_cell({first_seed: a["test"]}, ref)
        tried = ", ".join(sweep_cells(a["sweep"], a["lr"])) if a.get("sweep") else "-"
        lines.append(
            f"| {name} | {float(a['lr']):g} | {a['test']['mean_nll']:.4f} | {diff} "
            f"| {run_cost(Path(a['run']))['trainable']:,} | {tried} |"
        )
    return "\n".join(lines) + "\n"


#: generation measures: summary key -> per-item key in `eval`'s <task>.jsonl
GENERATION_MEASURES = {"protocol": "protocol_correct", "equation_recomputed": "equation_correct"}


def item_correct(eval_dir: Path, key: str) -> dict[tuple[str, int], float]:
    """{(task, index): 1.0 / 0.0} from `eval`'s per-item files in ``eval_dir`` (<task>.jsonl)."""
    got = {}
    for path in sorted(eval_dir.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            got[(row["task"], row["index"])] = float(bool(row[key]))
    return got


def paired_accuracy_cell(a: dict, b: dict) -> str:
    """Pooled accuracy of ``a`` minus ``b`` in points, over the same items, with a 95% bootstrap
    interval that resamples items (the same items for both sides)."""
    if a.keys() != b.keys():
        raise ValueError("the two evaluations scored different items")
    items = sorted(a)
    diff, (lo, hi) = bootstrap_ratio(
        [a[i] for i in items], [1] * len(items), ITERATIONS, SEED, base_sums=[b[i] for i in items]
    )
    return f"{100 * diff:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"


def generation_tables(res: dict) -> str:
    if not res["generation"]:
        return "Generation: not run (--no-generation).\n"
    dirs = {}
    for k, (method, run) in enumerate(res["generation"].items()):
        if k == 0:
            dirs["base"] = Path(run) / "eval" / "base"
        dirs[method] = Path(run) / "eval" / "adapted"
    models = {name: json.loads((d / "summary.json").read_text()) for name, d in dirs.items()}
    text = (
        models_table(models, "Generation on held-out math test items (greedy; best seed per method)")
        + "\n"
        + pooled_line(models)
        + "\n"
        + pooled_line(models, "equation_recomputed")
        + "\n"
    )
    correct = {
        m: {k: item_correct(d, key) for k, key in GENERATION_MEASURES.items()} for m, d in dirs.items()
    }
    refs = [r for r in ("lora-r8", "base") if r in correct]
    head = [f"{k} minus {r}" for r in refs for k in GENERATION_MEASURES]
    lines = [
        "",
        f"Pooled accuracy differences in points, paired over the same {len(correct['base']['protocol'])} "
        "items [95% bootstrap CI over items]:",
        "",
        "| method | " + " | ".join(head) + " |",
        "|---|" + "---|" * len(head),
    ]
    for method in dirs:
        if method == "base":
            continue
        cells = [
            "-" if r == method else paired_accuracy_cell(correct[method][k], correct[r][k])
            for r in refs
            for k in GENERATION_MEASURES
        ]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return text + "\n".join(lines) + "\n"


def plot_curves(res: dict, path: Path) -> None:
    """Two panels: validation NLL against optimizer step and against training seconds (first seed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (by_step, by_time) = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for method, runs in res["runs"].items():
        run = Path(next(iter(runs.values())))
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        points = [r for r in rows if "val_nll" in r]
        label = f"{method} (lr {float(res['best_lr'][method]):g})"
        by_step.plot(
            [r["step"] for r in points], [r["val_nll"] for r in points], marker="o", ms=3, label=label
        )
        by_time.plot([r["train_seconds"] for r in points], [r["val_nll"] for r in points], marker="o", ms=3)
    records = res["meta"]["config"]["curve_records"]
    by_step.set_xlabel("optimizer step")
    by_time.set_xlabel("training seconds (optimizer steps only)")
    by_step.set_ylabel(f"validation NLL per response token\n(first {records} records)")
    for ax in (by_step, by_time):
        ax.grid(alpha=0.3)
    by_step.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def quality_points(res: dict) -> list[dict]:
    """name, NLL, interval, seeds, trainable parameters and x floor (None without a cost stage)."""
    configs = {m: (per_seed, res["runs"][m]) for m, per_seed in res["test"].items() if m != "base"}
    for name, a in res.get("ablations", {}).items():
        configs.setdefault(name, ({"0": a["test"]}, {"0": a["run"]}))
    cost = (res.get("cost") or {}).get("methods", {})
    points = []
    for name, (per_seed, runs) in configs.items():
        sums, counts = seed_mean_rows(per_seed)
        nll, (lo, hi) = bootstrap_ratio(sums, counts, ITERATIONS, SEED)
        summary = json.loads((Path(next(iter(runs.values()))) / "summary.json").read_text())
        points.append(
            {
                "name": name,
                "nll": nll,
                "ci": (lo, hi),
                "seeds": len(per_seed),
                "trainable": summary["trainable_parameters"],
                "x_floor": cost[name]["x_floor"] if name in cost else None,
            }
        )
    return points


def plot_quality_per_cost(res: dict, path: Path) -> None:
    """Two panels sharing the NLL axis: against trainable parameters (log) and against x floor."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = quality_points(res)
    base = next(iter(res["test"]["base"].values()))["mean_nll"]
    fig, (by_params, by_cost) = plt.subplots(1, 2, figsize=(11, 4.6), sharey=True)
    for k, p in enumerate(points):
        color = f"C{k % 10}"
        err = [[p["nll"] - p["ci"][0]], [p["ci"][1] - p["nll"]]]
        style = {"fmt": "o", "color": color, "capsize": 3, "mfc": color if p["seeds"] > 1 else "white"}
        label = f"{p['name']} ({p['seeds']} seed{'s' if p['seeds'] > 1 else ''})"
        by_params.errorbar([p["trainable"]], [p["nll"]], yerr=err, label=label, **style)
        if p["x_floor"] is not None:
            by_cost.errorbar([p["x_floor"]], [p["nll"]], yerr=err, **style)
    for ax in (by_params, by_cost):
        ax.axhline(base, color="grey", ls="--", lw=1)
        ax.grid(alpha=0.3)
    by_params.text(
        0.02, base, " base model", color="grey", va="bottom", transform=by_params.get_yaxis_transform()
    )
    by_params.set_xscale("log")
    by_params.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    by_params.set_xlabel("trainable parameters")
    by_cost.set_xlabel("step cost, x the frozen floor (one process, bench/methods.py)")
    if not any(p["x_floor"] is not None for p in points):
        by_cost.text(0.5, 0.5, "cost not measured (--no-cost)", ha="center", transform=by_cost.transAxes)
    by_params.set_ylabel("test NLL per response token\n(95% bootstrap interval over records)")
    by_params.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def render(res: dict, out: Path) -> str:
    """results.md, learning_curves.png and quality_per_cost.png in ``out``; returns the markdown (also
    printed)."""
    res = json.loads(json.dumps(res, default=str))  # the same (string) keys as a reloaded results.json
    meta = res["meta"]
    c = meta["config"]
    text = "\n".join(
        [
            f"# {meta['command']}",
            "",
            f"date: {meta['date']}; machine: {meta['machine']}; torch threads: {meta['threads']}",
            f"versions: {meta['versions']}",
            f"budget {meta['budget']}: {c['steps']} optimizer steps x batch {c['batch']} (cutoff {c['cutoff']}, "
            f"response-only loss), seeds {c['seeds']}, learning rates {meta['lrs']}; validation "
            f"{c['validation_records'] or 'all'} records, test {c['test_records'] or 'all'} records; "
            f"wall time of the last invocation {meta['wall_minutes']} min (finished runs and evaluations reused)",
            f"model: {meta.get('model', 'not recorded')}; overrides of every run: {' '.join(c.get('overrides') or []) or 'none'}",
            "",
            main_table(res),
            sweep_table(res),
            ablation_table(res),
            generation_tables(res),
            "![learning curves](learning_curves.png)",
            "",
            "![test NLL per trainable parameter and per step cost](quality_per_cost.png)",
        ]
    )
    plot_curves(res, out / "learning_curves.png")
    plot_quality_per_cost(res, out / "quality_per_cost.png")
    (out / "results.md").write_text(text + "\n")
    print(text, flush=True)
    return text
