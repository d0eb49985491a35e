"""Time and peak memory of `rocoft-llm prepare` on inputs of hostile size (issue 29): one huge
response among a few small records. Each case runs `prepare` as a child process; the peak is the
child's maximum resident set size (``getrusage(RUSAGE_CHILDREN)``), the time its wall clock.

    python bench/prepare_sizes.py                    # one 50 MB response in 5 JSON-lines records
    python bench/prepare_sizes.py --response-mb 10   # a smaller one

The tokenizer is the bundled tiny Llama one (rocoft_llm/recipes/tiny/llama); cutoff_len 256.
"""

from __future__ import annotations

import argparse
import json
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--response-mb", type=float, default=50.0)
    p.add_argument("--timeout", type=int, default=900)
    args = p.parse_args()
    import datasets
    import tokenizers
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "big.jsonl"
        write_input(data, int(args.response_mb * 1_000_000))
        cmd = [sys.executable, "-m", "rocoft_llm.cli", "prepare", "--dataset", str(data), "--tokenizer",
               str(REPO / "rocoft_llm" / "recipes" / "tiny" / "llama"), "--out", str(Path(tmp) / "out")]  # fmt: skip
        started = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, cwd=REPO)
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # KiB -> GiB
        if proc.returncode != 0:
            sys.exit(f"prepare failed ({proc.returncode}): {proc.stderr[-2000:]}")
    print(
        f"# {platform.processor() or platform.machine()}, python {platform.python_version()}, torch "
        f"{torch.__version__}, datasets {datasets.__version__}, tokenizers {tokenizers.__version__}, "
        f"{time.strftime('%Y-%m-%d')}"
    )
    print("| input | prepare wall s | peak RSS GiB |")
    print("|---|---:|---:|")
    print(f"| 5 JSON-lines records, one response of {args.response_mb:g} MB | {seconds:.1f} | {peak:.2f} |")


if __name__ == "__main__":
    main()
