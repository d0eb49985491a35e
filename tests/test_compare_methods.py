"""bench/compare_methods.py's logic without training: the best learning rate is the lowest
validation NLL, the seeds and ablations run at the tuned rates, and paired differences against
LoRA average each record over seeds before the bootstrap."""

import json
from pathlib import Path

import pytest

from tests.helpers.bench import load_bench_script

compare = load_bench_script("compare_methods")
report = load_bench_script("compare_report")


def rows(sums, tokens):
    return {"rows": [{"index": i, "nll_sum": s, "tokens": n} for i, (s, n) in enumerate(zip(sums, tokens))]}


def test_paired_difference_averages_seeds_then_bootstraps():
    tokens = [10, 20, 30, 40]
    lora = {42: rows([10, 20, 30, 40], tokens), 43: rows([12, 18, 30, 40], tokens)}
    # every token 0.1 nats worse than LoRA's seed average, spread differently over the two seeds
    rows_method = {42: rows([12, 20, 33, 44], tokens), 43: rows([12, 22, 33, 44], tokens)}
    assert report.paired_cell(rows_method, lora) == "+0.1000 [+0.1000, +0.1000]"
    with pytest.raises(ValueError, match="different target tokens"):
        report.paired_cell({42: rows([1, 2, 3, 4], [1, 2, 3, 5])}, lora)


class FakeBench:
    """Records what would run; validation NLL is lowest at a known rate per method."""

    best = {"rows-r3": 1e-2, "columns-r3": 3e-2, "lora-r8": 3e-3, "full": 3e-5, "rows-r1": 3e-2}

    def __init__(self, tmp: Path):
        self.tmp, self.trained = tmp, []

    def train(self, name, overrides, lr, seed, curve):
        run = self.tmp / name
        run.mkdir(exist_ok=True)
        (run / "summary.json").write_text(json.dumps({"final_val_nll": 1.0 + seed / 1000}))
        self.trained.append((name, lr, seed, curve))
        return run

    def nll(self, name, part, run, base=False):
        method = next((m for m in self.best if name.startswith(m)), None)
        lr = 0 if base else float(name.split("-lr")[1].split("-s")[0])
        return {"mean_nll": 1.0 if method and lr == self.best[method] else 2.0, "rows": []}

    def generation(self, run, with_base):
        self.trained.append(("generation", run.name, with_base))


def test_best_rate_by_validation_then_seeds_and_ablations_at_it(tmp_path):
    cfg = dict(compare.BUDGETS["smoke"], lrs=3, extend=1, seeds=[42, 43, 44], ablation_lrs=3)
    b = FakeBench(tmp_path)
    res = compare.run_all(b, cfg)
    methods = {m: FakeBench.best[m] for m in compare.DEFAULT_METHODS}
    assert res["best_lr"] == methods
    # columns' best (3e-2) is the top of its first three rates: the sweep steps up once to bracket it
    assert list(res["sweep"]["columns-r3"]) == [3e-3, 1e-2, 3e-2, 1e-1]
    assert list(res["sweep"]["rows-r3"]) == [3e-3, 1e-2, 3e-2]  # bracketed at once
    seeded = {(n, lr, s) for n, lr, s, _ in (t for t in b.trained if t[0] != "generation") if s != 42}
    for method, lr in methods.items():
        assert {(compare.run_name(method, lr, s), lr, s) for s in (43, 44)} <= seeded
    # ablations: a sweep of their own around rows' tuned rate (1e-2), best by validation
    # r=1's best (3e-2) is at the top edge of the three: one step up brackets it
    assert list(res["ablations"]["rows-r1"]["sweep"]) == [3e-3, 1e-2, 3e-2, 1e-1]
    assert res["ablations"]["rows-r1"]["lr"] == 3e-2  # its own best, not rows'
    assert list(res["ablations"]["rows-r3-wanda-max"]["sweep"]) == [3e-3, 1e-2, 3e-2]
    assert res["ablations"]["rows-r3-wanda-max"]["lr"] == FakeBench.best["rows-r3"]
    one_rate = compare.run_all(FakeBench(tmp_path), dict(cfg, ablation_lrs=1))
    assert {a["lr"] for a in one_rate["ablations"].values()} == {1e-2}
    assert all(len(a["sweep"]) == 1 for a in one_rate["ablations"].values())
    mixed = compare.run_all(FakeBench(tmp_path), dict(cfg, ablation_rates={"rows-r3-wanda-max": 1}))
    assert len(mixed["ablations"]["rows-r3-wanda-max"]["sweep"]) == 1
    assert mixed["ablations"]["rows-r1"]["lr"] == 3e-2
    generation = [t for t in b.trained if t[0] == "generation"]
    assert [g[1] for g in generation] == [compare.run_name(m, lr, 42) for m, lr in methods.items()]
    assert [g[2] for g in generation] == [True, False, False, False]  # the base once


def fake_run(path: Path, trainable: int, curve: list[float]) -> str:
    path.mkdir(parents=True)
    (path / "summary.json").write_text(
        json.dumps({"trainable_parameters": trainable, "peak_memory_gib_rank0": 6.0, "train_seconds": 100})
    )
    steps = [
        {"step": i + 1, "tokens_per_s": 100.0, "val_nll": v, "train_seconds": 10.0 * (i + 1)}
        for i, v in enumerate(curve)
    ]
    (path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in [{"step": 0}, *steps]) + "\n")
    return str(path)


def test_report_of_a_partial_comparison_renders_every_table(tmp_path):
    """Rows and LoRA with seeds plus two ablations, no columns, full or generation: the tables say
    what ran; differences come from the per-record rows."""
    tokens = [10, 20]

    def evaluation(per_token):
        return {"mean_nll": per_token, "ci95": [per_token - 0.1, per_token + 0.1], "records": 2,
                "target_tokens": 30, **rows([per_token * n for n in tokens], tokens)}  # fmt: skip

    res = {
        "sweep": {
            "rows-r3": {"0.003": 0.7, "0.01": 0.6, "0.03": 0.65},
            "lora-r8": {"0.001": 0.6, "0.003": 0.5},
        },
        "best_lr": {"rows-r3": 0.01, "lora-r8": 0.003},
        "runs": {
            m: {s: fake_run(tmp_path / f"{m}-{s}", n, [0.9, 0.7]) for s in ("42", "43")}
            for m, n in (("rows-r3", 449280), ("lora-r8", 2442240))
        },  # fmt: skip
        "test": {
            "base": {"0": evaluation(1.0)},
            "rows-r3": {"42": evaluation(0.6), "43": evaluation(0.62)},
            "lora-r8": {"42": evaluation(0.5), "43": evaluation(0.52)},
        },  # fmt: skip
        "ablations": {
            "rows-r1": {
                "run": fake_run(tmp_path / "r1", 149760, []),
                "lr": 0.01,
                "sweep": {"0.003": 0.8, "0.01": 0.7},
                "test": evaluation(0.65),
            }
        },
        "generation": {},
        "cost": {
            "meta": {"rounds": 3, "batch": 8, "seq": 256, "threads": 1},
            "floor": {"s_per_ktok": 5.0, "peak_gib": 1.0},
            "methods": {
                "rows-r3": {"s_per_ktok": 5.2, "x_floor": 1.04, "peak_gib": 1.1, "peak_x_floor": 1.1},
                "lora-r8": {"s_per_ktok": 6.0, "x_floor": 1.2, "peak_gib": 1.3, "peak_x_floor": 1.3},
            },
        },
        "meta": {
            "command": "python bench/compare_methods.py --budget short",
            "budget": "short",
            "config": {**compare.BUDGETS["short"]},
            "lrs": {},
            "date": "d",
            "machine": "m",
            "threads": 1,
            "versions": "v",
            "wall_minutes": 1.0,
        },  # fmt: skip
    }
    text = report.render(res, tmp_path)
    assert (
        "| rows-r3 | 0.01 | 0.6100 (0.0141), 2 | +0.1000 [+0.1000, +0.1000] | -0.3900 [-0.3900, -0.3900] "
        "| 449,280 | 5.200 | 1.040 | 1.10 | 1.10 | 100 |" in text
    )
    assert "(5.000 s / 1,000 tokens, peak 1.00 GiB)" in text
    assert (
        "| rows-r1 | 0.01 | 0.6500 | +0.0500 [+0.0500, +0.0500] | 149,760 | 0.003: 0.8000, 0.01: 0.7000 * |"
        in text
    )
    assert "columns-r3" not in text and "Generation: not run" in text
    assert (tmp_path / "learning_curves.png").stat().st_size > 1000
    assert (tmp_path / "quality_per_cost.png").stat().st_size > 1000
    points = {p["name"]: p for p in report.quality_points(res)}
    assert set(points) == {"rows-r3", "lora-r8", "rows-r1"}
    assert points["rows-r3"]["nll"] == pytest.approx(0.61) and points["rows-r3"]["seeds"] == 2
    assert points["rows-r1"]["seeds"] == 1 and points["rows-r1"]["x_floor"] is None
    assert points["lora-r8"]["trainable"] == 2442240 and points["lora-r8"]["x_floor"] == 1.2
    res["cost"] = None  # --no-cost: dashes, and the line says so
    text = report.render(res, tmp_path)
    assert "Cost: not measured (--no-cost)" in text and "| 449,280 | - | - | - | - | 100 |" in text


def test_generation_differences_pair_items_and_bootstrap(tmp_path):
    """Per-item correctness from `eval`'s <task>.jsonl: the difference is in points over the same
    items; a one-sided difference (b right wherever a is) has an interval that excludes zero."""
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    for d, right in ((a_dir, {0, 1}), (b_dir, {0, 1, 2, 3})):
        d.mkdir()
        for task in ("addsub", "svamp"):
            rows = [{"task": task, "index": i, "protocol_correct": i in right} for i in range(10)]
            (d / f"{task}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (a_dir / "summary.json").write_text("[]")  # not read by item_correct
    a, b = report.item_correct(a_dir, "protocol_correct"), report.item_correct(b_dir, "protocol_correct")
    assert len(a) == 20 and sum(a.values()) == 4 and sum(b.values()) == 8
    cell = report.paired_accuracy_cell(a, b)
    assert cell.startswith("-20.0 [")
    lo, hi = (float(x) for x in cell.split("[")[1].rstrip("]").split(","))
    assert lo < -20.0 < hi < 0
    del b[("svamp", 9)]
    with pytest.raises(ValueError, match="different items"):
        report.paired_accuracy_cell(a, b)


def test_ablations_option_takes_names_and_per_ablation_rate_counts():
    assert compare.parse_ablations("rows-r1, rows-r3-random=1,none") == (
        ["rows-r1", "rows-r3-random"],
        {"rows-r3-random": 1},
    )
    assert compare.parse_ablations("none") == ([], {})
    with pytest.raises(ValueError, match="'rows-r2' is not an ablation"):
        compare.parse_ablations("rows-r2")
    with pytest.raises(ValueError, match="whole number >= 1"):
        compare.parse_ablations("rows-r1=0")


def test_fixed_rates_replace_the_sweep(tmp_path):
    assert compare.parse_fixed_lrs("lora-r8=0.003, rowcol-r3-random=0.03/0.01") == {
        "lora-r8": [0.003],
        "rowcol-r3-random": [0.01, 0.03],
    }
    for bad, words in (
        ("lora-r9=1", "not a method"),
        ("lora-r8=fast", "METHOD=RATE"),
        ("full=-1", "positive"),
    ):
        with pytest.raises(ValueError, match=words):
            compare.parse_fixed_lrs(bad)
    cfg = dict(compare.BUDGETS["smoke"], seeds=[42], methods=["lora-r8", "columns-r3"], ablations=[])
    cfg["fixed_lr"] = {"lora-r8": [3e-3], "columns-r3": [1e-2, 3e-2]}
    res = compare.run_all(FakeBench(tmp_path), cfg)
    # exactly the given rates, no extension although columns' best (3e-2) is at the top edge
    assert list(res["sweep"]["lora-r8"]) == [3e-3] and list(res["sweep"]["columns-r3"]) == [1e-2, 3e-2]
    assert res["best_lr"] == {"lora-r8": 3e-3, "columns-r3": 3e-2}


def test_overrides_reach_every_training_run_after_the_budget(tmp_path):
    cfg = dict(compare.BUDGETS["smoke"], overrides=compare.parse_overrides(["data.template=chat"]))
    bench = compare.Bench(cfg, tmp_path, "MODEL", "DATA.json", {}, 10)
    seen = []
    bench.cli = seen.append
    bench.train("lora-r8-lr0.003-s42", compare.METHODS["lora-r8"], 0.003, 42, curve=False)
    (args,) = seen
    assert "data.template=chat" in args
    assert args.index("data.template=chat") > args.index("train.resume=auto")  # after the budget's own
    for bad, words in (
        ("data.template", "KEY=VALUE"),
        ("train.lr=1", "set by the budget"),
        ("method=full", "set by the budget"),
        ("=chat", "KEY=VALUE"),
    ):
        with pytest.raises(ValueError, match=words):
            compare.parse_overrides([bad])


def test_paired_nll_pairs_records_across_tokenizations(tmp_path):
    """Two prompt formats score the same responses with different token counts: the difference per
    record is exact on a hand-made case, the per-token one is normalised by B's tokens, and files
    with different records are refused."""
    paired = load_bench_script("paired_nll")
    a = {0: (10.0, 10), 1: (20.0, 21), 2: (6.0, 4)}
    b = {0: (9.0, 10), 1: (18.0, 20), 2: (5.0, 5)}
    row = paired.paired_row(a, b)
    assert row["records"] == 3 and (row["tokens_a"], row["tokens_b"]) == (35, 35)
    assert row["per_record"][0] == pytest.approx((1 + 2 + 1) / 3)
    assert row["per_b_token"][0] == pytest.approx(4 / 35)
    assert row["mean_a"] == pytest.approx(36 / 35) and row["mean_b"] == pytest.approx(32 / 35)
    lo, hi = row["per_record"][1]
    assert 1.0 <= lo <= hi <= 2.0  # every record's difference lies in [1, 2]
    path = tmp_path / "rows.jsonl"
    path.write_text('{"index": 3, "nll_sum": 1.5, "tokens": 2}\n')
    assert paired.read_rows(path) == {3: (1.5, 2)}
    with pytest.raises(ValueError, match="different records"):
        paired.paired_row(a, {0: (1.0, 1)})


def test_paired_nll_averages_the_seeds_of_a_side(tmp_path):
    """A side naming several rows files (seeds) is their per-record mean; files of one side that
    score other target tokens are refused, naming the file."""
    paired = load_bench_script("paired_nll")
    s1, s2, other = tmp_path / "s1.jsonl", tmp_path / "s2.jsonl", tmp_path / "other.jsonl"
    s1.write_text('{"index": 0, "nll_sum": 1.0, "tokens": 2}\n{"index": 1, "nll_sum": 4.0, "tokens": 3}\n')
    s2.write_text('{"index": 0, "nll_sum": 3.0, "tokens": 2}\n{"index": 1, "nll_sum": 5.0, "tokens": 3}\n')
    other.write_text('{"index": 0, "nll_sum": 3.0, "tokens": 9}\n{"index": 1, "nll_sum": 5.0, "tokens": 3}\n')
    assert paired.read_side(f"{s1},{s2}") == {0: (2.0, 2), 1: (4.5, 3)}
    assert paired.read_side(str(s1)) == paired.read_rows(s1)
    with pytest.raises(ValueError, match="other.jsonl scores other records"):
        paired.read_side(f"{s1},{other}")
