"""Paired held-out NLL of two evaluations of the SAME records that may tokenize them differently.

`rocoft-llm eval --metric nll` pairs two models only when both score the same target tokens (the
same data options). Two prompt formats (``data.template=chat`` against the LLM-Adapters prompt)
score the same response texts, but the tokens at the prompt-response boundary and the end marker
can differ. This script pairs such evaluations by record: each record's NLL in nats (the whole
response) is comparable across formats, and so is its difference normalised by B's target tokens.

    python bench/paired_nll.py A/nll/adapted-math_data-test.jsonl B/nll/adapted-math_data-test.jsonl \
        [A2.jsonl B2.jsonl ...] [--names chat-lora,...]

A side may name several rows files joined by commas (``s42.jsonl,s43.jsonl,s44.jsonl``: the seeds of
one configuration); each record's NLL is then the mean over those files, as `bench/compare_methods.py`
averages seeds before pairing. The files of one side must score the same target tokens.

Each pair prints: records, target tokens of A and B, mean NLL per token of each, and A - B as nats
per record and as nats per B-token, each with a 95% bootstrap interval over records (the same
resampled records on both sides; 2,000 resamples, seed 0).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rocoft_llm.eval.intervals import bootstrap_ratio

ITERATIONS, SEED = 2000, 0


def read_rows(path: Path) -> dict[int, tuple[float, int]]:
    """record index -> (NLL sum in nats, target tokens) from an ``eval --metric nll`` rows file."""
    rows = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        rows[int(row["index"])] = (float(row["nll_sum"]), int(row["tokens"]))
    return rows


def read_side(spec: str) -> dict[int, tuple[float, int]]:
    """One side of a pair: a rows file, or several joined by commas (seeds) averaged per record."""
    paths = [Path(x) for x in spec.split(",") if x.strip()]
    sides = [read_rows(path) for path in paths]
    first = sides[0]
    for path, rows in zip(paths[1:], sides[1:]):
        if rows.keys() != first.keys() or any(rows[k][1] != first[k][1] for k in first):
            raise ValueError(f"{path} scores other records or target tokens than {paths[0]}; "
                             "average only seeds of one configuration on the same data")  # fmt: skip
    return {k: (sum(rows[k][0] for rows in sides) / len(sides), first[k][1]) for k in first}


def paired_row(a: dict[int, tuple[float, int]], b: dict[int, tuple[float, int]]) -> dict:
    """The pair's statistics; the two files must hold the same records."""
    if a.keys() != b.keys():
        raise ValueError(
            f"the evaluations hold different records ({len(a)} vs {len(b)}; same split and --limit?)"
        )
    keys = sorted(k for k in a if a[k][1] and b[k][1])  # records whose response was cut away entirely: none
    sa, ta = [a[k][0] for k in keys], [a[k][1] for k in keys]
    sb, tb = [b[k][0] for k in keys], [b[k][1] for k in keys]
    per_record = bootstrap_ratio(sa, [1] * len(keys), ITERATIONS, SEED, base_sums=sb)
    per_token = bootstrap_ratio(sa, tb, ITERATIONS, SEED, base_sums=sb)
    return {
        "records": len(keys),
        "tokens_a": sum(ta),
        "tokens_b": sum(tb),
        "mean_a": sum(sa) / sum(ta),
        "mean_b": sum(sb) / sum(tb),
        "per_record": per_record,
        "per_b_token": per_token,
    }


def cell(value: tuple[float, tuple[float, float]], digits: int) -> str:
    est, (lo, hi) = value
    return f"{est:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "files",
        nargs="+",
        help="pairs of rows files: A B [A2 B2 ...]; a side may join seeds' files with commas",
    )
    ap.add_argument("--names", default="", help="comma-separated names of the pairs, in order")
    args = ap.parse_args()
    if len(args.files) % 2:
        sys.exit("give the rows files in pairs: A B [A2 B2 ...]")
    pairs = list(zip(args.files[::2], args.files[1::2]))
    names = [n.strip() for n in args.names.split(",") if n.strip()] or [
        f"pair {i + 1}" for i in range(len(pairs))
    ]
    if len(names) != len(pairs):
        sys.exit(f"--names: {len(names)} names for {len(pairs)} pairs")
    print("| pair | records | tokens A | tokens B | NLL/token A | NLL/token B | A - B nats per record [95% CI] "
          "| A - B per B-token [95% CI] |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---|---|")
    for name, (fa, fb) in zip(names, pairs):
        try:
            r = paired_row(read_side(fa), read_side(fb))
        except ValueError as e:
            sys.exit(f"{name}: {fa} vs {fb}: {e}")
        print(
            f"| {name} | {r['records']} | {r['tokens_a']:,} | {r['tokens_b']:,} | {r['mean_a']:.4f} | "
            f"{r['mean_b']:.4f} | {cell(r['per_record'], 3)} | {cell(r['per_b_token'], 4)} |"
        )


if __name__ == "__main__":
    main()
