"""95% intervals: Wilson score intervals for accuracies (sound at small n and near 0% / 100%), and
percentile bootstrap intervals over records for per-token means such as held-out NLL."""

from __future__ import annotations

import math


def wilson(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """(low, high) of the Wilson score interval for ``correct`` successes out of ``n``."""
    if n == 0:
        return (0.0, 0.0)
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def accuracy_cell(correct: int, n: int) -> dict:
    """``{correct, accuracy, ci95}`` as every summary stores it."""
    lo, hi = wilson(correct, n)
    return {"correct": correct, "accuracy": correct / n if n else 0.0, "ci95": [round(lo, 4), round(hi, 4)]}


def bootstrap_ratio(
    sums: list[float],
    counts: list[int],
    iterations: int = 1000,
    seed: int = 0,
    base_sums: list[float] | None = None,
) -> tuple[float, tuple[float, float]]:
    """(estimate, 95% percentile interval) of ``sum(sums) / sum(counts)`` - a mean per token over
    records - by resampling RECORDS with replacement (``iterations`` times, a generator seeded with
    ``seed``: the same inputs give the same interval). With ``base_sums`` (the same records scored by
    another model, same target tokens) the statistic is the PAIRED difference
    ``(sum(sums) - sum(base_sums)) / sum(counts)``, each resample taking the same records for both."""
    import numpy as np

    values = np.asarray(sums, dtype=np.float64)
    if base_sums is not None:
        values = values - np.asarray(base_sums, dtype=np.float64)
    tokens = np.asarray(counts, dtype=np.float64)
    if len(values) == 0 or tokens.sum() == 0:
        raise ValueError("no target tokens to estimate a mean from")
    estimate = float(values.sum() / tokens.sum())
    rng = np.random.default_rng(seed)
    stats = np.empty(iterations)
    for k in range(iterations):
        pick = rng.integers(0, len(values), len(values))
        denom = tokens[pick].sum()
        stats[k] = values[pick].sum() / denom if denom else estimate
    lo, hi = np.percentile(stats, [2.5, 97.5])
    return estimate, (float(lo), float(hi))
