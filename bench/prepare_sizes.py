"""Time and peak memory of `rocoft-llm prepare` on inputs of hostile size (issue 29). Each case runs
`prepare` as a child process; the peak is the child's maximum resident set size
(``getrusage(RUSAGE_CHILDREN)``), the time its wall clock and its CPU seconds (user + system: on
a shared machine the wall time alone says little). One case per run (the peak is that of every
child so far).

    python bench/prepare_sizes.py                         # one 50 MB response in 5 JSON-lines records
    python bench/prepare_sizes.py --response-mb 10        # a smaller one
    python bench/prepare_sizes.py --file-mb 200           # a 200 MB JSON array of ordinary records
    python bench/prepare_sizes.py --tiny-records 1000000  # 1,000,000 tiny records in JSON lines

The tokenizer is the bundled tiny Llama one (rocoft_llm/recipes/tiny/llama); cutoff_len 256.
Ordinary records: LLM-Adapters shape (a ~150-character question, a ~600-character rationale, a
number answer), written as a JSON array with indent 4 like the LLM-Adapters files.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORDS = ["apples", "the", "answer", "is", "42", "Tom", "has", "5", "more", "and"]


def write_input(path: Path, response_chars: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    words, size = [], 0
    while size < response_chars:
        w = rng.choice(WORDS)
        words.append(w)
        size += len(w) + 1
    small = [
        {"instruction": f"Q{i}", "input": "", "output": "The answer is 1", "answer": "1"} for i in range(4)
    ]
    small.insert(
        2, {"instruction": "Q big", "input": "", "output": " ".join(words)[:response_chars], "answer": "1"}
    )
    path.write_text("".join(json.dumps(r) + "\n" for r in small))


def write_ordinary(path: Path, size: int, seed: int = 0) -> int:
    """A JSON array (indent 4) of LLM-Adapters-shaped records, ``size`` bytes or just over; returns
    the record count. Written record by record (the bench process holds none of it)."""
    rng = random.Random(seed)
    n, written = 0, 0

    def words(k: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(k))

    with open(path, "w") as f:
        f.write("[")
        while written < size:
            record = {
                "instruction": words(30) + "?",
                "input": "",
                "output": words(120),
                "answer": str(n % 97),
            }
            text = ("," if n else "") + "\n    " + json.dumps(record, indent=4).replace("\n", "\n    ")
            f.write(text)
            written += len(text)
            n += 1
        f.write("\n]\n")
    return n


def write_tiny(path: Path, count: int) -> None:
    """``count`` tiny records in JSON lines."""
    with open(path, "w") as f:
        for i in range(count):
            f.write(
                json.dumps({"instruction": f"Q{i}", "input": "", "output": f"A{i}", "answer": "1"}) + "\n"
            )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--response-mb", type=float, default=50.0, help="one response of this size (default case)")
    p.add_argument("--file-mb", type=float, help="instead: a JSON array of ordinary records this large")
    p.add_argument("--tiny-records", type=int, help="instead: this many tiny records in JSON lines")
    p.add_argument("--timeout", type=int, default=900)
    args = p.parse_args()
    import datasets
    import tokenizers
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        if args.file_mb:
            data = Path(tmp) / "big.json"
            n = write_ordinary(data, int(args.file_mb * 1_000_000))
            label = f"JSON array of {n:,} ordinary records, {data.stat().st_size / 1e6:.0f} MB"
        elif args.tiny_records:
            data = Path(tmp) / "tiny.jsonl"
            write_tiny(data, args.tiny_records)
            label = f"{args.tiny_records:,} tiny JSON-lines records, {data.stat().st_size / 1e6:.0f} MB"
        else:
            data = Path(tmp) / "big.jsonl"
            write_input(data, int(args.response_mb * 1_000_000))
            label = f"5 JSON-lines records, one response of {args.response_mb:g} MB"
        cmd = [sys.executable, "-m", "rocoft_llm.cli", "prepare", "--dataset", str(data), "--tokenizer",
               str(REPO / "rocoft_llm" / "recipes" / "tiny" / "llama"), "--out", str(Path(tmp) / "out")]  # fmt: skip
        started = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, cwd=REPO)
        seconds = time.perf_counter() - started
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        peak, cpu = usage.ru_maxrss / 2**20, usage.ru_utime + usage.ru_stime  # KiB -> GiB; CPU seconds
        if proc.returncode != 0:
            sys.exit(f"prepare failed ({proc.returncode}): {proc.stderr[-2000:]}")
        examples = json.loads((Path(tmp) / "out" / "manifest.json").read_text())["examples"]
    print(
        f"# {platform.processor() or platform.machine()}, python {platform.python_version()}, torch "
        f"{torch.__version__}, datasets {datasets.__version__}, tokenizers {tokenizers.__version__}, "
        f"{time.strftime('%Y-%m-%d')}"
    )
    print(f"# load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} at the end (2 cores)")
    print("| input | examples | prepare wall s | CPU s | peak RSS GiB |")
    print("|---|---:|---:|---:|---:|")
    print(f"| {label} | {examples:,} | {seconds:.1f} | {cpu:.1f} | {peak:.2f} |")


if __name__ == "__main__":
    main()
