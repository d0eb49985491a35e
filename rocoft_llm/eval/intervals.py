"""95% Wilson score intervals for accuracies (sound at small n and near 0% / 100%)."""

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
