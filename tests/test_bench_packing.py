"""bench/packing_throughput.py end to end on the tiny model and data (the real model and data are
its default; BENCHMARKS.md quotes that run): both modes train the same steps, so the real and the
target tokens agree, the packed mode computes fewer pad positions, and the ratio line is printed."""

import json
import subprocess
import sys

from tests.helpers.bench import table_rows
from tests.helpers.paths import REPO, TINY


def test_packing_benchmark_compares_the_same_steps(tmp_path):
    data = tmp_path / "mixed.json"  # instruction data of mixed length: short and long records
    records = [
        {
            "instruction": f"What is {i} + {i + 1}?" + (" Explain every step of the sum." * 8) * (i % 2),
            "input": "",
            "output": f"{i} + {i + 1} = {2 * i + 1}. The answer is {2 * i + 1}",
            "answer": str(2 * i + 1),
        }
        for i in range(32)
    ]
    data.write_text(json.dumps(records))
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "packing_throughput.py"),
            "--model",
            str(TINY / "llama"),
            "--random-init",
            "--data",
            str(data),
            "--steps",
            "2",
            "--micro-batch",
            "8",
            "--cutoff",
            "512",  # the tiny tokenizer is byte-level
            "--threads",
            "1",
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {k: v for k, v in table_rows(proc.stdout, "mode").items() if k in ("padded", "packed")}
    padded, packed = rows["padded"], rows["packed"]
    assert padded[3] == packed[3] and padded[5] == packed[5]  # real and target tokens: the same steps
    n = {mode: int(row[2].replace(",", "")) for mode, row in rows.items()}
    real = int(packed[3].replace(",", ""))
    assert real <= n["packed"] < n["padded"]  # packed rows: fewer pad positions than padded

    assert "packed / padded:" in proc.stdout and "x (median of same-step time ratios)" in proc.stdout
