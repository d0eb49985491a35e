"""Which rows or columns to train: ``first`` (paper default), seeded ``random``, and Wanda-scored
``max`` / ``min`` / ``mixed``.

Wanda score (Sun et al.), as used by the RoCoFT ablations: ``S_ij = |W_ij| * ||X_j||_2`` where X
are the layer's input activations on calibration batches. A row's score sums S over its columns,
a column's score sums S over its rows. Input norms are accumulated by forward hooks on the
targeted linears as one running sum of squares per input feature (padding positions excluded
when the batch carries an attention mask), so calibration memory is O(sum of in_features), no
matter how many batches stream through.

Index *groups* handle fused projections: a plain linear has one group (all its rows); BLOOM's
fused ``query_key_value`` in row mode has three (its query, key and value rows), and r indices
are chosen in each.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator

import torch
from torch import nn

from ..errors import RoCoFTError
from .config import SCORED_SELECTIONS, SELECTIONS  # noqa: F401 - declared with the config
from .placement import ROW


def row_groups(out_features: int, fused_parts: int = 0, num_heads: int = 0) -> list[torch.Tensor]:
    """Fused-row index groups. ``fused_parts = 0``: one group, all rows in order.

    For a per-head interleaved fused projection (rows laid out ``(num_heads, parts, head_dim)``)
    group p lists part p's rows in its logical order (head 0 dims 0.., head 1 dims 0.., ...).
    """
    if not fused_parts:
        return [torch.arange(out_features)]
    if num_heads <= 0 or out_features % (num_heads * fused_parts):
        raise RoCoFTError(
            f"cannot split {out_features} fused rows into {fused_parts} parts of {num_heads} heads; "
            "check the model config (n_head / hidden_size)."
        )
    layout = torch.arange(out_features).view(num_heads, fused_parts, -1)
    return [layout[:, p, :].reshape(-1) for p in range(fused_parts)]


def _stable_seed(seed: int, name: str) -> int:
    return (int(seed) * 1_000_003 + zlib.crc32(name.encode())) % (2**63 - 1)


def pick(
    scores: torch.Tensor | None, n: int, rank: int, selection: str, seed: int, name: str
) -> torch.Tensor:
    """Positions (0..n-1, sorted) of ``rank`` items out of ``n`` by ``selection``."""
    if rank > n:
        raise RoCoFTError(f"{name}: rank {rank} exceeds the {n} available rows/columns; use rank <= {n}.")
    if selection == "first":
        chosen = torch.arange(rank)
    elif selection == "random":
        gen = torch.Generator().manual_seed(_stable_seed(seed, name))
        chosen = torch.randperm(n, generator=gen)[:rank]
    elif selection in SCORED_SELECTIONS:
        if scores is None:
            raise RoCoFTError(f"{name}: selection {selection!r} needs calibration statistics.")
        order = torch.argsort(scores.double(), descending=True, stable=True)
        if selection == "max":
            chosen = order[:rank]
        elif selection == "min":
            chosen = order[n - rank :]
        else:
            top = (rank + 1) // 2
            chosen = torch.cat([order[:top], order[n - (rank - top) :]]) if rank - top else order[:top]
    else:
        raise RoCoFTError(f"unknown selection {selection!r}; choose one of {', '.join(SELECTIONS)}.")
    return torch.sort(chosen).values


def random_entries(numel: int, count: int, seed: int, name: str) -> torch.Tensor:
    """``count`` distinct flat positions of a weight with ``numel`` entries, sorted; seeded by ``seed``
    and the module's name, so every rank and every reload draws the same mask."""
    if not 1 <= count <= numel:
        raise RoCoFTError(f"{name}: {count} entries do not fit a weight of {numel} entries.")
    gen = torch.Generator().manual_seed(_stable_seed(seed, name))
    return torch.sort(torch.randperm(numel, generator=gen)[:count]).values


def wanda_scores(weight: torch.Tensor, input_norm: torch.Tensor, mode: str) -> torch.Tensor:
    """Row scores (out,) or column scores (in,) of ``S_ij = |W_ij| * ||X_j||``."""
    w = weight.detach().abs().float()
    xn = input_norm.to(w.device).float()
    if mode == ROW:
        return w @ xn
    return w.sum(0) * xn


def scored_indices(
    weight: torch.Tensor,
    mode: str,
    rank: int,
    selection: str,
    seed: int,
    name: str,
    input_norm: torch.Tensor | None = None,
    groups: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """Selected row (mode ``row``) or column indices of one weight, sorted, ``rank`` per group."""
    n = weight.shape[0] if mode == ROW else weight.shape[1]
    scores = (
        wanda_scores(weight, input_norm, mode)
        if selection in SCORED_SELECTIONS and input_norm is not None
        else None
    )
    if mode != ROW or not groups:
        groups = [torch.arange(n)]
    picked = []
    for g, members in enumerate(groups):
        sub = scores[members] if scores is not None else None
        pos = pick(sub, len(members), rank, selection, seed, f"{name}[{g}]" if len(groups) > 1 else name)
        picked.append(members[pos])
    return torch.sort(torch.cat(picked)).values


class InputNormCollector:
    """Forward hooks accumulating, per targeted linear, the sum over tokens of x_j^2.

    Use as a context manager around calibration forwards; :meth:`set_mask` (called by
    :func:`run_calibration`) excludes padded positions.
    """

    def __init__(self, modules: dict[str, nn.Module]):
        self.modules = modules
        self.sumsq: dict[str, torch.Tensor] = {}
        self._mask: torch.Tensor | None = None
        self._handles = []

    def set_mask(self, mask: torch.Tensor | None) -> None:
        self._mask = mask

    def _hook(self, name: str):
        def hook(_module, args, _output):
            x = args[0].detach()
            x2 = x.float().pow(2)
            if self._mask is not None and tuple(self._mask.shape) == tuple(x.shape[:-1]):
                x2 = x2 * self._mask.to(x2.device, x2.dtype).unsqueeze(-1)
            total = x2.reshape(-1, x2.shape[-1]).sum(0)
            if name in self.sumsq:
                self.sumsq[name] += total
            else:
                self.sumsq[name] = total

        return hook

    def __enter__(self) -> InputNormCollector:
        for name, module in self.modules.items():
            self._handles.append(module.register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def norms(self) -> dict[str, torch.Tensor]:
        return {k: v.sqrt().cpu() for k, v in self.sumsq.items()}


def _batches_on_device(batches: Iterable[dict], device: torch.device) -> Iterator[dict]:
    for batch in batches:
        if not isinstance(batch, dict):
            raise RoCoFTError(
                f"calibration batches must be dicts of tensors (input_ids, attention_mask), got {type(batch).__name__}."
            )
        yield {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


def run_calibration(
    model: nn.Module,
    modules: dict[str, nn.Module],
    batches: Iterable[dict],
    max_batches: int | None = None,
    progress: bool = False,
) -> dict[str, torch.Tensor]:
    """Stream calibration batches through ``model`` and return ``||X_j||_2`` per targeted module."""
    device = next(model.parameters()).device
    collector = InputNormCollector(modules)
    was_training = model.training
    model.eval()
    n = 0
    iterator = _batches_on_device(batches, device)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc="calibration", total=max_batches, unit="batch")
    with collector, torch.no_grad():
        for batch in iterator:
            if max_batches is not None and n >= max_batches:
                break
            collector.set_mask(batch.get("attention_mask"))
            inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask")}
            model(**inputs)
            n += 1
    model.train(was_training)
    if n == 0:
        raise RoCoFTError("calibration produced no batches: pass at least one batch of input_ids.")
    missing = sorted(set(modules) - set(collector.sumsq))
    if missing:
        raise RoCoFTError(
            f"calibration forward never reached {len(missing)} targeted module(s), e.g. {missing[0]}."
        )
    return collector.norms()
