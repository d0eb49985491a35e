"""Deterministic global batches, split into per-rank micro-batches.

The examples of optimizer step ``s`` depend only on (seed, epoch, s): the same on 1 rank or 16,
so a recipe means the same everywhere and a resumed run continues on exactly the next batch.
Each global batch is cut into ``world x accumulation`` micro-batches; rank r takes micro-batch
``m * world + r`` for m = 0..accumulation-1. The loss is normalised by the number of target tokens
of the WHOLE global batch, which every rank computes locally from the labels.

A micro-batch is either right-padded (:func:`collate`) or packed (:func:`collate_packed`,
``train.packing``): the same examples, the same target tokens, no pad tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data.collate import collate  # noqa: F401 - the padded micro-batch, declared with the data
from ..data.tokenize import IGNORE_INDEX


@dataclass
class BatchPlan:
    num_examples: int
    global_batch: int
    micro_batch: int
    world: int
    seed: int

    @property
    def accumulation(self) -> int:
        return self.global_batch // (self.micro_batch * self.world)

    @property
    def steps_per_epoch(self) -> int:
        """Full global batches per epoch (the remainder of an epoch is not used)."""
        return self.num_examples // self.global_batch

    def epoch_order(self, epoch: int) -> torch.Tensor:
        return torch.randperm(
            self.num_examples, generator=torch.Generator().manual_seed(self.seed * 1000 + epoch)
        )

    def global_indices(self, step: int) -> list[int]:
        epoch, k = divmod(step, self.steps_per_epoch)
        return self.epoch_order(epoch)[k * self.global_batch : (k + 1) * self.global_batch].tolist()

    def micro_indices(self, step: int, rank: int) -> list[list[int]]:
        g = self.global_indices(step)
        m = self.micro_batch
        return [
            g[(i * self.world + rank) * m : (i * self.world + rank + 1) * m] for i in range(self.accumulation)
        ]


def target_tokens(labels: list[int]) -> int:
    """Tokens that carry loss after the causal shift (labels[1:] not ignored)."""
    return sum(1 for t in labels[1:] if t != IGNORE_INDEX)


def pack_rows(lengths: list[int]) -> list[list[int]]:
    """Example indices per row: first-fit decreasing into rows as long as the longest example, so a
    packed micro-batch never has more rows, or longer rows, than the padded one. Rows, not one long
    row: attention over a row costs its length squared (the masked-out blocks included on CPU)."""
    capacity = max(lengths)
    rows, free = [], []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):  # stable: ties keep their order
        for r, room in enumerate(free):
            if lengths[i] <= room:
                rows[r].append(i)
                free[r] -= lengths[i]
                break
        else:
            rows.append([i])
            free.append(capacity - lengths[i])
    return rows


def collate_packed(examples: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """The examples concatenated into rows (:func:`pack_rows`); ``position_ids`` restart at 0 per
    example, and a row shorter than the longest is filled by one pad segment that also restarts at
    0 (its own sequence, no targets). With no attention_mask and no cache, transformers turns the
    position ids into a block-causal mask: attention stays inside each example. Each example's first
    label is ignored, so the shifted loss never predicts an example's first token from the previous
    example's last one: the same target tokens as :func:`collate` (whose shift drops position 0 of
    every row), hence the same loss."""
    rows = []
    for row in pack_rows([len(e["input_ids"]) for e in examples]):
        ids, labels, positions = [], [], []
        for i in row:
            e = examples[i]
            ids.extend(e["input_ids"])
            labels.extend([IGNORE_INDEX, *e["labels"][1:]][: len(e["labels"])])
            positions.extend(range(len(e["input_ids"])))
        rows.append((ids, labels, positions))
    width = max(len(ids) for ids, _, _ in rows)
    out = {
        k: torch.empty((len(rows), width), dtype=torch.long) for k in ("input_ids", "labels", "position_ids")
    }
    for r, (ids, labels, positions) in enumerate(rows):
        pad = width - len(ids)
        out["input_ids"][r] = torch.tensor(ids + [pad_id] * pad)
        out["labels"][r] = torch.tensor(labels + [IGNORE_INDEX] * pad)
        out["position_ids"][r] = torch.tensor(positions + list(range(pad)))
    return out


def micro_batch(examples: list[dict], pad_id: int, packing: bool) -> dict[str, torch.Tensor]:
    """The model inputs and labels of one micro-batch, packed or right-padded."""
    return collate_packed(examples, pad_id) if packing else collate(examples, pad_id)
