"""RoCoFT against LoRA and full finetuning on a REAL model, tuned, seeded and scored on held-out data.

From SmolLM2-135M-Instruct (`rocoft-llm fetch-model smollm2-135m`; ``--model`` names another, e.g.
gemma3-270m; ``--override`` changes one setting of every run, e.g. ``data.template=chat`` or
``model.quantize=nf4``), the same data, batch and number of optimizer steps, with the public CLI only (`rocoft-llm train` / `rocoft-llm eval`, one process
per command):

1. sweep: RoCoFT rows r=3, RoCoFT columns r=3, LoRA r=8 and full finetuning, each at (at least)
   three learning rates (seed 0 of the budget), stepping further along a factor-3 ladder while the
   best rate is at an edge of those tried (so it ends bracketed), every run measuring the held-out NLL of the first
   ``curve_records`` validation records every ``curve_every`` steps (``eval.nll_data``: the learning
   curves); the best rate per method is the lowest NLL on the validation part;
2. seeds: the method at its best rate with the other seeds (stages 1 and 2 run method by method, so a
   stopped comparison still answers for the methods it finished); test NLL of every seed
   (``eval --metric nll``), the base model's test NLL, and per method the paired difference against
   LoRA on the same test records (per-record NLL averaged over seeds, bootstrap over records);
3. ablations by held-out NLL, the first seed: r = 1 / 8, selection random / Wanda-max / Wanda-min
   (rows r=3 first and columns r=3 come from stage 2), each at its own rate: ``ablation_lrs`` rates
   of the rows' ladder centred on rows' tuned rate, extended like a method's sweep while the best is
   at an edge, best by validation NLL; each paired against rows r=3 first of the same seed;
4. generation: protocol and equation-recomputed accuracy of the base and of each method's best seed
   (lowest final validation NLL) on every item of SVAMP, MultiArith, AddSub, SingleEq and GSM8K
   whose question math_data.json does not contain (in none of its parts);
5. cost beside quality: trainable parameters, seconds per 1,000 tokens and peak memory of every
   method against the frozen floor, measured in ONE process (``bench/methods.py --model``:
   interleaved rounds of one training step per method on the budget's batch x cutoff, ratios paired
   within each round), so the ratios stand even when the training runs above shared the machine;
   the runs' own training seconds are reported beside them as wall time.

Data: the seeded split of LLM-Adapters' math_data.json by normalised question
(``math_data.json:train`` / ``:validation`` / ``:test``, rocoft_llm/data/file_split.py): no test or
validation question is ever trained on.

Resumable: a finished run (its summary.json) or evaluation (its nll/summary.json) is never redone;
a run stopped half-way restarts from its last checkpoint (``train.resume=auto``). Run it again with
the same arguments to continue; the report is rebuilt from the files each time.

    nice -n 10 python bench/compare_methods.py --budget full  --out bench_out/compare   # hours on CPU
    nice -n 10 python bench/compare_methods.py --budget smoke --out bench_out/compare-smoke  # minutes

Outputs in OUT: runs/<name>/ (training runs), eval/<name>/ (NLL evaluations), results.json,
cost.json (stage 5), results.md (the tables) and learning_curves.png.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from rocoft_llm.version import versions_line

REPO = Path(__file__).resolve().parents[1]

RECIPE = REPO / "recipes" / "smollm2-135m-math.yaml"
MATH_TASKS = ["svamp", "multiarith", "addsub", "singleeq", "gsm8k"]

#: the four methods: recipe overrides (everything else is shared)
METHODS = {
    "rows-r3": ["method=rocoft", "rocoft.mode=row", "rocoft.rank=3", "rocoft.selection=first"],
    "columns-r3": ["method=rocoft", "rocoft.mode=column", "rocoft.rank=3", "rocoft.selection=first"],
    "lora-r8": ["method=lora", "rocoft=null", "lora.r=8", "lora.alpha=16", "lora.dropout=0.0"],
    "full": ["method=full", "rocoft=null"],
}
#: the methods a comparison runs unless ``--methods`` names others
DEFAULT_METHODS = list(METHODS)


def rocoft_overrides(mode: str, selection: str, rank: int = 3, density: float | None = None) -> list[str]:
    """Recipe overrides of one RoCoFT configuration (``density``: the ``entries`` mode's p)."""
    shape = [f"rocoft.density={density:g}"] if density is not None else [f"rocoft.rank={rank}"]
    return ["method=rocoft", f"rocoft.mode={mode}", *shape, f"rocoft.selection={selection}"]


#: RoCoFT at the paper's LLM setting (random selection) and its variants: rows AND columns of every
#: weight (``row_column``), and seeded random entries (``entries``) at the paper's p = 0.01 and at
#: the p whose trainable count matches LoRA r=8 on SmolLM2-135M's seven projections
#: (2,442,240 / 106,168,320 = 0.023)
METHODS.update(
    {
        "rows-r3-random": rocoft_overrides("row", "random"),
        "columns-r3-random": rocoft_overrides("column", "random"),
        "rowcol-r3-random": rocoft_overrides("row_column", "random"),
        "columns-r8-random": rocoft_overrides("column", "random", rank=8),
        "rowcol-r3-first": rocoft_overrides("row_column", "first"),
        "entries-p0.01": rocoft_overrides("entries", "random", density=0.01),
        "entries-p0.023": rocoft_overrides("entries", "random", density=0.023),
    }
)
#: learning-rate ladders (a factor ~3 apart) and where each method's sweep starts on its ladder; a
#: budget's ``lrs`` rates are tried first, then the sweep steps outward while the best rate is at
#: an edge of what was tried (at most ``extend`` more rates): the chosen rate is bracketed
ROCOFT_LADDER = [1e-3, 3e-3, 1e-2, 3e-2, 1e-1]
LADDERS = {
    "rows-r3": ROCOFT_LADDER,
    "columns-r3": ROCOFT_LADDER,
    "lora-r8": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2],
    "full": [3e-6, 1e-5, 3e-5, 1e-4, 3e-4],
}
START = {"rows-r3": 1, "columns-r3": 1, "lora-r8": 2, "full": 1}
for _name in METHODS:  # the RoCoFT configurations start where rows (1e-2) or columns (3e-2) ended
    LADDERS.setdefault(_name, ROCOFT_LADDER)
    START.setdefault(_name, 0 if _name.startswith("entries") else 2 if "columns" in _name else 1)
#: each method's name in bench/methods.py (stage 5: the cost measurement)
COST_NAMES = {
    "rows-r3": "rocoft-rows",
    "columns-r3": "rocoft-columns",
    "lora-r8": "lora-r8",
    "full": "full",
    # the selection does not change a step's cost: the same layer, other indices
    "rows-r3-random": "rocoft-rows",
    "columns-r3-random": "rocoft-columns",
    "rowcol-r3-random": "rocoft-rowcol",
    "rowcol-r3-first": "rocoft-rowcol",
    "columns-r8-random": "rocoft-columns-r8",
    "entries-p0.01": "rocoft-entries-p0.01",
    "entries-p0.023": "rocoft-entries-p0.023",
}
#: ablation -> (method whose ladder and tuned rate its sweep starts from, overrides); rows-r3
#: (first) is the reference
ABLATIONS = {
    "rows-r1": ("rows-r3", ["method=rocoft", "rocoft.mode=row", "rocoft.rank=1", "rocoft.selection=first"]),
    "rows-r8": ("rows-r3", ["method=rocoft", "rocoft.mode=row", "rocoft.rank=8", "rocoft.selection=first"]),
    "rows-r3-random": (
        "rows-r3",
        ["method=rocoft", "rocoft.mode=row", "rocoft.rank=3", "rocoft.selection=random"],
    ),
    "rows-r3-wanda-max": (
        "rows-r3",
        ["method=rocoft", "rocoft.mode=row", "rocoft.rank=3", "rocoft.selection=max"],
    ),
    "rows-r3-wanda-min": (
        "rows-r3",
        ["method=rocoft", "rocoft.mode=row", "rocoft.rank=3", "rocoft.selection=min"],
    ),
}

BUDGETS = {
    "full": dict(
        steps=96, batch=8, cutoff=256, warmup=6, curve_every=12, curve_records=128, validation_records=None,
        test_records=None, lrs=3, extend=2, seeds=[42, 43, 44], ablations=list(ABLATIONS), ablation_lrs=3, gen_tasks=MATH_TASKS,
        gen_limit=None, gen_max_new=160, eval_batch=16, cost_rounds=5, save_steps=24,
    ),
    # a quarter of the steps, half the curve records, learning rates chosen on 128 validation
    # records: about 15 min per run on one core of the 2-core machine (two invocations with disjoint
    # --methods sharing OUT), so a method with its sweep and seeds takes about 1.5 h
    "short": dict(
        steps=24, batch=8, cutoff=256, warmup=2, curve_every=6, curve_records=64, validation_records=128,
        test_records=None, lrs=3, extend=2, seeds=[42, 43, 44], ablations=list(ABLATIONS), ablation_lrs=3, gen_tasks=MATH_TASKS,
        gen_limit=None, gen_max_new=160, eval_batch=16, cost_rounds=3, save_steps=12,
    ),
    # proves every stage end to end in minutes; its numbers are not results
    "smoke": dict(
        steps=3, batch=2, cutoff=160, warmup=1, curve_every=1, curve_records=4, validation_records=6,
        test_records=6, lrs=2, extend=1, seeds=[42, 43], ablations=["rows-r1", "rows-r3-wanda-max"], ablation_lrs=2,
        gen_tasks=["addsub"], gen_limit=2, gen_max_new=8, eval_batch=4, cost_rounds=1, save_steps=None,
    ),
}  # fmt: skip


class Bench:
    """Runs `rocoft-llm` commands, each once: finished outputs are found and reused."""

    def __init__(self, cfg: dict, out: Path, model: str, data_file: str, env: dict, timeout: int):
        self.cfg, self.out, self.model, self.file, self.env, self.timeout = (
            cfg,
            out,
            model,
            data_file,
            env,
            timeout,
        )
        self.log = out / "commands.log"
        #: ``--override`` items, applied to every training run after the budget's own settings
        self.extra = list(cfg.get("overrides", []))

    def cli(self, args: list[str]) -> None:
        with open(self.log, "a") as f:
            f.write(f"\n$ rocoft-llm {' '.join(args)}\n")
            f.flush()
            proc = subprocess.run(
                [sys.executable, "-m", "rocoft_llm.cli", *args],
                cwd=REPO, stdout=f, stderr=subprocess.STDOUT, env=self.env, timeout=self.timeout,
            )  # fmt: skip
        if proc.returncode != 0:
            sys.exit(f"`rocoft-llm {' '.join(args[:4])} ...` failed (exit {proc.returncode}); see {self.log}")

    def shared_overrides(self) -> list[str]:
        c = self.cfg
        return (
            [
                f"model.name_or_path={self.model}",
                f"data.train=[{self.file}:train]",
                f"data.cutoff_len={c['cutoff']}",
                f"train.global_batch_size={c['batch']}",
                f"train.micro_batch_size={c['batch']}",
                f"train.max_steps={c['steps']}",
                f"train.warmup_steps={c['warmup']}",
                f"eval.nll_data={self.file}:validation",
                f"eval.nll_records={c['curve_records']}",
                f"eval.batch_size={c['eval_batch']}",
                "output.report_to=[]",
                "train.resume=auto",
            ]
            + ([f"train.save_steps={c['save_steps']}"] if c["save_steps"] else [])
            + self.extra
        )

    def train(self, name: str, overrides: list[str], lr: float, seed: int, curve: bool) -> Path:
        """One training run (skipped when finished); ``curve``: measure the validation subset every
        curve_every steps (else after the last step only)."""
        run = self.out / "runs" / name
        if not (run / "summary.json").is_file():
            print(f"train {name}", flush=True)
            every = [f"eval.nll_steps={self.cfg['curve_every']}"] if curve else []
            self.cli(
                ["train", str(RECIPE), *self.shared_overrides(), *overrides, *every, f"train.lr={lr}",
                 f"train.seed={seed}", f"output.dir={run}"]
            )  # fmt: skip
            shutil.rmtree(run / "checkpoints", ignore_errors=True)  # only for resuming; GBs for full
        return run

    def nll(self, name: str, part: str, run: Path, base: bool = False) -> dict:
        """``eval --metric nll`` of a run on a split part: summary + per-record rows. ``base``: the run's
        base model instead (``--with-base``: the same data options, so the same target tokens)."""
        target = self.out / "eval" / name / part
        done = target / "nll" / "summary.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target.parent / f".{part}.lock", "w") as lock:  # invocations sharing OUT: one evaluates
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not done.is_file():
                print(f"eval nll {name} on {part}", flush=True)
                limit = self.cfg[f"{part}_records"]
                self.cli(
                    ["eval", "--metric", "nll", "--run", str(run), *(["--with-base"] if base else []),
                     "--tasks", f"{self.file}:{part}", "--nll-targets", "response",
                     "--batch-size", str(self.cfg["eval_batch"]), "--out", str(target),
                     *(["--limit", str(limit)] if limit else [])]
                )  # fmt: skip
        variant = "base" if base else "adapted"
        (rows_file,) = sorted((target / "nll").glob(f"{variant}-*.jsonl"))
        rows = [json.loads(line) for line in rows_file.read_text().splitlines()]
        (summary,) = [s for s in json.loads(done.read_text())["summaries"] if s["variant"] == variant]
        return {**summary, "rows": rows}

    def generation_files(self) -> list[str]:
        """Per math test set, the items whose question math_data.json does not contain (none of its
        parts: the issue's held-out items), as LLM-Adapters files OUT/generation/<task>/test.json."""
        from rocoft_llm.data.heldout_split import normalise_question
        from rocoft_llm.data.sources import from_llm_adapters

        known = {normalise_question(r["instruction"]) for r in json.loads(Path(self.file).read_text())}
        files = []
        for task in self.cfg["gen_tasks"]:
            path = self.out / "generation" / task / "test.json"
            if not path.is_file():
                records = from_llm_adapters(task, "test", str(Path(self.file).parents[1])).records
                kept = [r for r in records if normalise_question(r["instruction"]) not in known]
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps(kept))
                tmp.replace(path)
            files.append(str(path))
        return files

    def generation(self, run: Path, with_base: bool) -> None:
        """Protocol + equation-recomputed accuracy on the held-out math test items (RUN/eval/)."""
        if (run / "eval" / "adapted" / "summary.json").is_file():
            return
        print(f"eval generation {run.name}", flush=True)
        c = self.cfg
        self.cli(
            ["eval", "--run", str(run), "--tasks", ",".join(self.generation_files()), "--num-beams", "1",
             "--max-new-tokens", str(c["gen_max_new"]), "--batch-size", str(c["eval_batch"]),
             *(["--limit", str(c["gen_limit"])] if c["gen_limit"] else []), *(["--with-base"] if with_base else [])]
        )  # fmt: skip

    def cost(self) -> dict:
        """Stage 5: bench/methods.py on the model for the floor and all four methods in one process
        (OUT/cost.json; measured once, under a lock for invocations sharing OUT); returns the floor's
        row and this invocation's methods' rows under their names here."""
        path = self.out / "cost.json"
        with open(self.out / ".cost.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not path.is_file():
                print("cost: floor and every method, interleaved, one process", flush=True)
                c, tmp = self.cfg, path.with_suffix(".tmp")
                names = ",".join(dict.fromkeys(["floor", *COST_NAMES.values()]))
                with open(self.log, "a") as f:
                    f.write(f"\n$ python bench/methods.py --model {self.model} ... --json {path}\n")
                    f.flush()
                    proc = subprocess.run(
                        [sys.executable, str(REPO / "bench" / "methods.py"), "--model", self.model,
                         "--batch", str(c["batch"]), "--seq", str(c["cutoff"]), "--rank", "3", "--steps", "1",
                         "--rounds", str(c["cost_rounds"]), "--methods", names, "--json", str(tmp)],
                        cwd=REPO, stdout=f, stderr=subprocess.STDOUT, env=self.env, timeout=self.timeout,
                    )  # fmt: skip
                if proc.returncode != 0:
                    sys.exit(f"bench/methods.py (cost) failed (exit {proc.returncode}); see {self.log}")
                tmp.replace(path)
        measured = json.loads(path.read_text())
        by_name = measured["methods"]
        return {
            "meta": measured["meta"],
            "floor": by_name["floor"],
            "methods": {m: by_name[COST_NAMES[m]] for m in self.cfg["methods"]},
        }


def run_name(method: str, lr: float, seed: int) -> str:
    return f"{method}-lr{lr:g}-s{seed}"


def final_val(run: Path) -> float:
    return json.loads((run / "summary.json").read_text())["final_val_nll"]


def sweep(b: Bench, cfg: dict, name: str, overrides: list[str], ladder: list[float], lo: int, count: int,
          seed: int, curve: bool) -> dict[float, float]:  # fmt: skip
    """Validation NLL per tried learning rate: ``count`` rates of ``ladder`` from index ``lo``, then
    one step outward while the best is at an edge (``extend`` steps at most); ``count`` 1 tries the
    one rate only."""
    tried, hi = {}, min(lo + count, len(ladder)) - 1
    for extra in range(cfg["extend"] + 1):
        for k in range(lo, hi + 1):
            lr = ladder[k]
            if lr not in tried:
                run = b.train(run_name(name, lr, seed), overrides, lr, seed, curve=curve)
                tried[lr] = b.nll(run.name, "validation", run)["mean_nll"]
        best = ladder.index(min(tried, key=tried.get))
        may_extend = count > 1 and extra < cfg["extend"]
        if best == hi and hi + 1 < len(ladder) and may_extend:
            hi += 1
        elif best == lo and lo > 0 and may_extend:
            lo -= 1
        else:
            break
    return dict(sorted(tried.items()))


def run_all(b: Bench, cfg: dict) -> dict:
    """Every stage, one method at a time (its sweep, then its seeds at the best rate), then the
    ablations and generation; returns what the report needs (file names and per-record rows)."""
    seed0 = cfg["seeds"][0]
    res: dict = {"sweep": {}, "best_lr": {}, "test": {}, "runs": {}, "ablations": {}}
    methods = cfg.get("methods", DEFAULT_METHODS)
    for method in methods:  # 1. sweep (or the rate given by --fixed-lr), 2. seeds at the best rate
        fixed = cfg.get("fixed_lr", {}).get(method)
        ladder, start, count = LADDERS[method], START[method], cfg["lrs"]
        if fixed:  # exactly these rates, no extension
            ladder, start, count = fixed, 0, len(fixed)
        res["sweep"][method] = sweep(b, cfg, method, METHODS[method], ladder, start, count, seed0, curve=True)
        lr = res["best_lr"][method] = min(res["sweep"][method], key=res["sweep"][method].get)
        for seed in cfg["seeds"]:
            run = b.train(run_name(method, lr, seed), METHODS[method], lr, seed, curve=seed == seed0)
            res["runs"].setdefault(method, {})[seed] = str(run)
            res["test"].setdefault(method, {})[seed] = b.nll(run.name, "test", run)
            if "base" not in res["test"]:  # the base model, with the runs' data options
                res["test"]["base"] = {0: b.nll("base", "test", run, base=True)}
    for name in cfg["ablations"]:  # 3. ablations, each swept around the tuned rate of its reference
        ref, overrides = ABLATIONS[name]
        ladder = LADDERS[ref]
        centre = ladder.index(res["best_lr"][ref])
        count = cfg.get("ablation_rates", {}).get(name, cfg["ablation_lrs"])
        tried = sweep(b, cfg, name, overrides, ladder, max(0, centre - count // 2), count, seed0, curve=False)
        lr = min(tried, key=tried.get)
        run = b.train(run_name(name, lr, seed0), overrides, lr, seed0, curve=False)
        res["ablations"][name] = {
            "run": str(run),
            "lr": lr,
            "sweep": tried,
            "test": b.nll(run.name, "test", run),
        }
    res["generation"] = {}
    for k, method in enumerate(methods if cfg.get("generation", True) else []):  # 4. best seed by validation
        runs = {seed: Path(p) for seed, p in res["runs"][method].items()}
        best = min(runs, key=lambda s: final_val(runs[s]))
        b.generation(runs[best], with_base=k == 0)
        res["generation"][method] = str(runs[best])
    return res


def parse_ablations(text: str) -> tuple[list[str], dict[str, int]]:
    """``--ablations``: comma-separated names, each optionally ``=N`` (its number of sweep rates,
    instead of the budget's ``ablation_lrs``); ``none`` for none. Returns (names, {name: N})."""
    names, rates = [], {}
    for item in (a.strip() for a in text.split(",")):
        if not item or item == "none":
            continue
        name, _, count = item.partition("=")
        if name not in ABLATIONS:
            raise ValueError(f"{name!r} is not an ablation; use names of {', '.join(ABLATIONS)} (or 'none')")
        if count:
            if not count.isdigit() or int(count) < 1:
                raise ValueError(f"{item!r}: the number of rates after '=' must be a whole number >= 1")
            rates[name] = int(count)
        names.append(name)
    return names, rates


def parse_fixed_lrs(text: str) -> dict[str, list[float]]:
    """``--fixed-lr``: comma-separated ``METHOD=RATE`` or ``METHOD=RATE/RATE/...``: that method tries
    exactly these rates (best by validation NLL, no extension) instead of its ladder's sweep - a rate
    an earlier comparison at the same budget tuned, or a short list of candidates when a full sweep is
    too costly."""
    fixed = {}
    for item in (a.strip() for a in text.split(",") if a.strip()):
        name, _, rates = item.partition("=")
        if name not in METHODS:
            raise ValueError(f"{name!r} is not a method; use names of {', '.join(METHODS)}")
        try:
            fixed[name] = sorted(float(r) for r in rates.split("/"))
        except ValueError:
            raise ValueError(f"{item!r}: write METHOD=RATE or METHOD=RATE/RATE, e.g. lora-r8=0.003") from None
        if not all(r > 0 for r in fixed[name]):
            raise ValueError(f"{item!r}: the rates must be positive")
    return fixed


def parse_overrides(items: list[str]) -> list[str]:
    """``--override KEY=VALUE`` (repeatable): recipe overrides every training run gets after the
    budget's own (e.g. ``data.template=chat`` or ``model.quantize=nf4``), so one comparison varies one
    setting against another comparison in a second OUT. Keys the budget itself sets are refused: the
    budget would no longer be the one the report names."""
    fixed = ("model.name_or_path", "data.train", "data.cutoff_len", "train.", "eval.", "output.", "method")
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key.strip() or not value.strip():
            raise ValueError(f"{item!r}: write KEY=VALUE, e.g. data.template=chat")
        if key.strip().startswith(fixed):
            raise ValueError(
                f"{item!r}: {key} is set by the budget or the method; choose another --budget or method"
            )
    return list(items)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget", choices=list(BUDGETS), default="full")
    ap.add_argument("--out", default="bench_out/compare")
    ap.add_argument(
        "--llm-adapters-dir",
        default=os.environ.get("ROCOFT_LLM_ADAPTERS_DIR")
        or str(REPO.parent / "shared" / "data" / "llm_adapters"),
    )
    ap.add_argument("--threads", type=int, help="OMP_NUM_THREADS of every command (default: torch's)")
    ap.add_argument("--timeout", type=int, default=6 * 3600, help="per command, seconds")
    ap.add_argument("--report-only", action="store_true", help="rebuild results.md/png from OUT/results.json")
    ap.add_argument(
        "--no-generation", action="store_true", help="skip stage 4 (about 3 hours of the full budget)"
    )
    ap.add_argument(
        "--no-cost",
        action="store_true",
        help="skip stage 5 (the step-cost measurement): for invocations that share a busy machine",
    )
    ap.add_argument(
        "--methods",
        default=",".join(DEFAULT_METHODS),
        help="comma-separated methods (default: the four; the RoCoFT configurations "
        f"{', '.join(m for m in METHODS if m not in DEFAULT_METHODS)} are named here too); differences "
        "against LoRA need lora-r8; invocations with disjoint subsets may share --out, one per core",
    )
    ap.add_argument(
        "--seeds",
        help="comma-separated seeds instead of the budget's (the first one sweeps): e.g. the seeds "
        "that finished, for a report of a comparison stopped early",
    )
    ap.add_argument(
        "--fixed-lr",
        default="",
        help="METHOD=RATE[/RATE...],...: that method tries exactly these rates instead of its sweep (a "
        "rate an earlier comparison at the same budget tuned; the report lists the rates tried)",
    )
    ap.add_argument(
        "--ablations",
        help="comma-separated subset of the budget's ablations to run (default: all of them; 'none'); "
        "NAME=N sweeps N rates for that one (1: rows' tuned rate only)",
    )
    ap.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="recipe override for every training run (repeatable), e.g. data.template=chat or "
        "model.quantize=nf4; use its own --out; needs --no-cost (stage 5 measures the plain methods)",
    )
    ap.add_argument(
        "--model",
        default="smollm2-135m",
        help="the `rocoft-llm fetch-model` name of the real model (default smollm2-135m), or a local model directory",
    )
    args = ap.parse_args()
    from compare_report import render

    out = Path(args.out).resolve()
    if args.report_only:
        render(json.loads((out / "results.json").read_text()), out)
        return
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown or not methods:
        sys.exit(f"--methods {args.methods}: use names of {', '.join(METHODS)}")
    cfg = dict(BUDGETS[args.budget], generation=not args.no_generation, methods=methods)
    if args.seeds:
        try:
            cfg["seeds"] = [int(x) for x in args.seeds.split(",") if x.strip()]
        except ValueError:
            sys.exit(f"--seeds {args.seeds}: write whole numbers separated by commas, e.g. 42,43")
        if not cfg["seeds"]:
            sys.exit("--seeds: give at least one seed")
    try:
        cfg["fixed_lr"] = parse_fixed_lrs(args.fixed_lr)
    except ValueError as e:
        sys.exit(f"--fixed-lr {args.fixed_lr}: {e}")
    if args.ablations is not None:
        try:
            cfg["ablations"], cfg["ablation_rates"] = parse_ablations(args.ablations)
        except ValueError as e:
            sys.exit(f"--ablations {args.ablations}: {e}")
    try:
        cfg["overrides"] = parse_overrides(args.override)
    except ValueError as e:
        sys.exit(f"--override {e}")
    if cfg["overrides"] and not args.no_cost:
        sys.exit("--override: add --no-cost (stage 5 measures the methods without the overrides)")
    if "rows-r3" not in methods:
        cfg["ablations"] = []  # ablations sweep around rows' tuned rate and are paired against rows-r3
    data_file = Path(args.llm_adapters_dir).resolve() / "ft-training_set" / "math_data.json"
    if not data_file.is_file():
        sys.exit(f"{data_file} not found; pass --llm-adapters-dir DIR (with ft-training_set/math_data.json).")
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **({"OMP_NUM_THREADS": str(args.threads)} if args.threads else {})}
    started = time.time()
    if Path(args.model).is_dir():
        model = str(Path(args.model).resolve())
    else:
        fetched = subprocess.run(
            [sys.executable, "-m", "rocoft_llm.cli", "fetch-model", args.model],
            cwd=REPO, capture_output=True, text=True, env=env, timeout=1800,
        )  # fmt: skip
        if fetched.returncode != 0:
            sys.exit(f"rocoft-llm fetch-model {args.model} failed:\n{fetched.stdout}\n{fetched.stderr}")
        model = fetched.stdout.strip().rsplit("-> ", 1)[-1]
    b = Bench(cfg, out, model, str(data_file), env, args.timeout)
    res = run_all(b, cfg)
    res["cost"] = None if args.no_cost else b.cost()
    res["meta"] = {
        "command": f"python bench/compare_methods.py {' '.join(sys.argv[1:])}",
        "budget": args.budget,
        "config": cfg,
        "lrs": {m: list(res["sweep"][m]) for m in cfg["methods"]},
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "threads": args.threads or "default",
        "versions": versions_line(),
        "model": model,
        "data": str(data_file),
        "wall_minutes": round((time.time() - started) / 60, 1),
    }
    (out / "results.json").write_text(json.dumps(res, indent=1, default=str))
    render(res, out)


if __name__ == "__main__":
    main()
