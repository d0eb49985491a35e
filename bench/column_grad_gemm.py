"""Why the column-mode slice gradient is computed as (x[..., idx]^T @ grad_y)^T: the two orders of
the same skinny product, timed on this machine (plus the row-mode product and the input-gradient
GEMM every method pays, for scale).

    python bench/column_grad_gemm.py
"""

from __future__ import annotations

import argparse
import time

import torch


def per_call_ms(fn, n: int) -> float:
    for _ in range(5):
        fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=1024)
    ap.add_argument("--out", type=int, default=1376)
    ap.add_argument("--inp", type=int, default=512)
    ap.add_argument("--rank", type=int, default=3)
    ap.add_argument("--calls", type=int, default=50)
    a = ap.parse_args()
    torch.manual_seed(0)
    x, gy = torch.randn(a.tokens, a.inp), torch.randn(a.tokens, a.out)
    w, idx = torch.randn(a.out, a.inp), torch.arange(a.rank)
    xi = x.index_select(1, idx)
    rows = {
        "input gradient grad_y @ W (every method)": lambda: gy @ w,
        "columns: grad_y^T @ x[..., idx]": lambda: gy.t() @ xi,
        "columns: (x[..., idx]^T @ grad_y)^T  (used)": lambda: (xi.t() @ gy).t(),
        "rows: grad_y[..., idx]^T @ x  (used)": lambda: gy.index_select(1, idx).t() @ x,
    }
    print(
        f"# {a.tokens} tokens, weight {a.out} x {a.inp}, rank {a.rank}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    print("| product | ms per call |")
    print("|---|---:|")
    for name, fn in rows.items():
        print(f"| {name} | {per_call_ms(fn, a.calls):.3f} |")


if __name__ == "__main__":
    main()
