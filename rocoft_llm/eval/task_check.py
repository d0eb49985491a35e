"""Checking `eval`'s task list before any model is loaded: seconds of file checks instead of a failure
after minutes of loading a 7B model. Separate from ``tasks`` (generation) and ``harness`` (lm-eval) because
it needs both."""

from __future__ import annotations

from .harness import offline_task
from .tasks import resolve_tasks


def check_task_specs(specs: list[str], harness: str, llm_adapters_dir: str | None) -> None:
    """Every task resolves (ids known, files found) - `eval` checks this before it loads any model."""
    for spec in specs:
        if harness == "generation":
            resolve_tasks(spec, llm_adapters_dir)
        elif not spec.startswith("lm-eval:"):
            offline_task(spec, llm_adapters_dir)
