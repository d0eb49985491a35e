"""Learning-rate schedules from ``transformers.get_scheduler``: linear warmup from 0, then cosine or linear
decay to 0, or constant. (The step-0 learning rate is 0 during warmup, as in the HF Trainer.)"""

from __future__ import annotations

#: recipe train.scheduler -> transformers scheduler name (constant keeps the warmup)
SCHEDULER_NAMES = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}


def make_scheduler(optimizer, kind: str, warmup: int, total: int):
    from transformers import get_scheduler

    return get_scheduler(SCHEDULER_NAMES[kind], optimizer, num_warmup_steps=warmup, num_training_steps=total)
