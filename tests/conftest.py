"""Suite-wide fixtures, and the order and threads that let `make test` run on 2 workers.

`make test` runs pytest-xdist with two workers and `--dist loadfile` (a file's tests, and so its
module fixtures, stay on one worker). Much of the suite waits rather than computes (process start-up,
imports, torchrun rendezvous, SLURM scheduling), so two workers on two cores finish well before one.
Two things make that work:

- files holding `slow`, `distributed` or `slurm_real` tests are handed out first, most of them first,
  so the long files do not end up alone at the end with the other worker idle;
- each worker computes on one thread (torch in-process, OMP_NUM_THREADS for what it starts), so two
  workers never put four busy threads on two cores.

Without xdist (`pytest` alone, `-n 0`) the order is the same and threads are left as they are."""

import os
from collections import Counter

import pytest

from tests.helpers.paths import SHARED_DATA

HEAVY_MARKERS = ("slow", "distributed", "slurm_real")

if os.environ.get("PYTEST_XDIST_WORKER"):
    import torch

    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by every subprocess a test starts
    torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    """Stable-sort the files by how many heavy tests they hold (most first): xdist's `loadfile`
    hands files out in this order (with `--no-loadscope-reorder`)."""
    heavy = Counter(item.path for item in items if any(item.get_closest_marker(m) for m in HEAVY_MARKERS))
    items.sort(key=lambda item: -heavy[item.path])


@pytest.fixture
def shared_data():
    """The real LLM-Adapters test files beside the checkout; tests using them skip when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is not present")
    return SHARED_DATA
